"""gunicorn settings for production (the Docker image and the benchmark use this file).

Sync workers: each request is a short transaction that holds operator row locks, and
a threaded worker would hold them while waiting for the GIL (slower when measured for
issue 5). Worker count and the rest come from the environment so the same file serves
any host size.
"""

import multiprocessing
import os

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8000')}"
# One worker per core and one more. The intake is CPU-bound in Python (about 10 ms of a
# worker's CPU per contact, 2-3 ms of PostgreSQL's; see README, Benchmark): the extra
# worker runs while another waits on a round trip to PostgreSQL. More workers only add
# context switches and transactions queueing on the same operator rows, and PostgreSQL
# itself, on the same cores, does best with few connections. On 2 cores, at 32 clients,
# 2/3/4/6 workers gave 90-126/117-138/121-125/117-142 contacts/s: no gain past 3.
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() + 1))
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
