"""What PostgreSQL's backends do while the intake runs at 32 clients: a fresh bench
database (empty history), gunicorn with the production config, bench.load driving it,
and pg_stat_activity sampled every 10 ms from another connection. Prints the share of
samples per state: running a statement, waiting on a lock (another transaction's row
lock), waiting on the app inside a transaction (ClientRead while idle in
transaction), idle between transactions, or another wait.

    .venv/bin/python -m bench.waits [--seconds 10] [--concurrency 32]
"""

import argparse
import threading
import time
from collections import Counter

from bench import run

SAMPLE_SECONDS = 0.01
PORT = 8700


def main() -> None:
    parser = argparse.ArgumentParser(description="PostgreSQL backends' states under load.")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    run.setup_django()
    with run.seeded_database(0) as keys:
        bench = run.Bench(port=PORT, keys_file=keys, duration=args.seconds)
        with run.gunicorn(PORT) as server:
            bench.server = server.pid
            bench.intake(args.concurrency, seconds=run.WARMUP_SECONDS)
            states: Counter = Counter()
            done = threading.Event()
            sampler = threading.Thread(target=sample, args=(states, done))
            sampler.start()
            result = bench.intake(args.concurrency)
            done.set()
            sampler.join()
    total = sum(states.values())
    print(f"intake at {args.concurrency} clients: {result['rate']:.0f} contacts/s")
    print(f"{total} samples of the bench's backends (every {SAMPLE_SECONDS * 1000:.0f} ms):")
    for state, count in states.most_common():
        print(f"  {count / total * 100:5.1f}%  {state}")


def sample(states: Counter, done: threading.Event) -> None:
    import psycopg

    query = (
        "SELECT state, wait_event_type, wait_event FROM pg_stat_activity "
        "WHERE datname = %s AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
    )
    with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres", autocommit=True) as db:
        while not done.is_set():
            for state, wait_type, wait in db.execute(query, [run.DATABASE]).fetchall():
                states[describe(state, wait_type, wait)] += 1
            time.sleep(SAMPLE_SECONDS)


def describe(state: str, wait_type: str | None, wait: str | None) -> str:
    if state == "active" and wait_type is None:
        return "running a statement"
    if state == "active" and wait_type == "Lock":
        return f"waiting on a lock ({wait})"
    if state == "idle in transaction":
        return "in a transaction, waiting on the app"
    if state == "idle":
        return "idle between transactions"
    return f"{state}, waiting on {wait_type} ({wait})"


if __name__ == "__main__":
    main()
