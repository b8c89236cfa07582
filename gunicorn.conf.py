"""gunicorn settings for production (the Docker image and the benchmark use this file).

Sync workers: each request is a short transaction that holds operator row locks, and
a threaded worker would hold them while waiting for the GIL (slower when measured for
issue 5). Worker count and the rest come from the environment so the same file serves
any host size.
"""

import multiprocessing
import os

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8000')}"
# One worker per core and one more. The intake is CPU-bound in Python (about 2.5 ms of a
# worker's CPU per contact, 0.9 ms of PostgreSQL's; see bench/README.md): the extra
# worker runs while another waits on a round trip to PostgreSQL. More workers only add
# context switches and transactions queueing on the same operator rows, and PostgreSQL
# itself, on the same cores, does best with few connections. On 2 cores, at 32 clients
# (`WEB_CONCURRENCY=N make bench BENCH_ARGS="--history 0 --concurrency 32"`), 2/3/4/5/6
# workers gave 499-504/503-520/480-536/461-474/443-450 contacts/s.
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() + 1))
worker_class = "sync"
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 20
# The app is imported once, in the master, and forked into each worker: a worker that
# is recycled or replaced after a crash starts at once rather than spending about 0.3 s
# of CPU importing Django while requests queue. Nothing connects to the database at
# import time, so no connection is shared across a fork. New code needs a restart of
# gunicorn (a new container); a HUP would fork the old code again.
preload_app = True
# Recycle workers now and then so a slow leak cannot grow without bound.
max_requests = 20_000
max_requests_jitter = 2_000
# The app writes one JSON line per request (core.middleware). gunicorn's access log, off
# unless GUNICORN_ACCESS_LOG names a file or "-", would add another with the query
# string, where a lead search may carry a phone number.
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None
errorlog = "-"
