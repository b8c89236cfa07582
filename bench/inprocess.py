"""CPU per intake in this process, through the WSGI app as gunicorn calls it: for
measuring one change at a time, with less noise than the load runs of bench.run.

Seeds a fresh bench database as bench.run does for an empty history,
then for each of --rounds rounds closes the contacts earlier rounds opened (and
vacuums), sends --requests intakes of bench.load's mix one after another, and prints
the CPU per intake of this process and of its PostgreSQL backend. --profile prints
cProfile's heaviest functions (by CPU) for one round instead. Drops the database at
the end. `--mix` measures bench.run's `mix` instead: its database (100k stored
contacts, sources of two sizes) and its intake (a third from returning leads).

    .venv/bin/python -m bench.inprocess [--rounds 3] [--requests 2000] [--profile] [--mix]
"""

import argparse
import cProfile
import io
import os
import pstats
import sys
import time
from pathlib import Path

from bench import run

WARMUP_REQUESTS = 300


def main() -> None:
    parser = argparse.ArgumentParser(description="In-process CPU per intake on PostgreSQL.")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--profile", action="store_true", help="cProfile one round.")
    parser.add_argument("--mix", action="store_true", help="bench.run's mix.")
    args = parser.parse_args()
    run.setup_django()
    with run.seeded_database(run.MIX_HISTORY if args.mix else 0) as keys:
        if args.mix:
            print(run.set_source_units(), flush=True)
        measure(keys, args)


def measure(keys: Path, args: argparse.Namespace) -> None:
    from django.db import connection

    from bench.load import Requests, read_keys
    from crm.wsgi import application

    returning = run.MIX_RETURNING if args.mix else None
    tag = f"ip{os.getpid()}"
    requests = Requests("intake", read_keys(str(keys)), run.SETUP["leads"], tag, returning)

    def intake() -> None:
        status = []
        body = b"".join(application(environ(requests.next()), lambda s, h: status.append(s)))
        if not status[0].startswith("201"):
            raise SystemExit(f"intake answered {status[0]}: {body[:300]!r}")

    for number in range(1, args.rounds + 1):
        run.close_bench_contacts()
        for _ in range(WARMUP_REQUESTS):
            intake()
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            (backend,) = cursor.fetchone()
        if args.profile:
            profiler = cProfile.Profile(time.process_time)
            profiler.runcall(lambda: [intake() for _ in range(args.requests)])
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(50)
            return
        app, db = time.process_time(), run.process_cpu(backend)
        for _ in range(args.requests):
            intake()
        app_ms = (time.process_time() - app) / args.requests * 1000
        db_ms = (run.process_cpu(backend) - db) / args.requests * 1000
        print(f"round {number}: app {app_ms:.2f} ms, db {db_ms:.2f} ms CPU per intake", flush=True)


def environ(raw: bytes) -> dict:
    """The WSGI environ gunicorn would build for bench.load's raw request."""
    head, body = raw.split(b"\r\n\r\n", 1)
    request_line, *headers = head.decode().split("\r\n")
    method, path, _ = request_line.split()
    env = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8500",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.url_scheme": "http",
        "wsgi.version": (1, 0),
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    for line in headers:
        name, value = line.split(": ", 1)
        name = name.upper().replace("-", "_")
        env[name if name in ("CONTENT_TYPE", "CONTENT_LENGTH") else f"HTTP_{name}"] = value
    return env


if __name__ == "__main__":
    main()
