"""gunicorn settings for production (the Docker image and the benchmark use this file).

Sync workers: each request is a short transaction that holds operator row locks, and
a threaded worker would hold them while waiting for the GIL. Worker count and the rest
come from the environment so the same file serves any host size.
"""

import multiprocessing
import os

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2))
worker_class = "sync"
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 20
# Recycle workers now and then so a slow leak cannot grow without bound.
max_requests = 20_000
max_requests_jitter = 2_000
# The app writes one JSON line per request (crm.middleware). gunicorn's access log, off
# unless GUNICORN_ACCESS_LOG names a file or "-", would add another with the query
# string, where a lead search may carry a phone number.
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None
errorlog = "-"
