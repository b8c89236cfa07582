"""The load process: closed-loop HTTP clients against one URL, printing JSON results.

`concurrency` clients each send a request, wait for the whole answer, and send the
next, for `duration` seconds. A request started before the deadline is always waited
for, so the 201s counted here are exactly the contacts the server stored (wrk drops
the requests in flight when its time is up, so its counts cannot be checked so).

gunicorn's sync workers close the connection after every answer, so each request
opens its own connection. One thread drives all the sockets with `selectors` (epoll):
about 0.2 ms of CPU a request, most of it the kernel's connect and close (wrk took 0.1
ms here, asyncio's transports over 0.4). The process reports its CPU time so the
benchmark can show it was not the bottleneck.

    python -m bench.load intake --port 8500 --concurrency 32 --duration 10 \
        --keys keys.txt --leads 200000 --tag run1

`--requests N` sends exactly N requests instead (the duration is ignored). `--returning
SHARE --pool FILE` is bench.run's `mix`: that share of the intakes come back from leads
sent earlier in the run (by any load process given the same pool file), each to the
source it first came through; the rest are new leads.
"""

import argparse
import errno
import json
import random
import selectors
import socket
import sys
import time
from collections import Counter
from dataclasses import dataclass, field

# A contact from a new lead one time in two; the rest are seeded leads writing again,
# found by external id or (when the seeder gave them one) by phone.
NEW_LEAD_SHARE = 0.5
RETURNING_BY_PHONE_SHARE = 0.5
# The seeder's leads: external id `seed-N`, phone +7916 and N in seven digits unless
# N is a multiple of 5 (see distribution/seeding.py).
SEED_PHONE_PREFIX = "+7916"
CONNECT_ERROR = "connect"
CLOSED_EARLY = "closed"


@dataclass
class Results:
    statuses: Counter = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)


class Requests:
    """Builds the raw HTTP requests: the intake's mix of leads and sources, or health.

    With `returning` (a share) the mix is bench.run's `mix` instead: that share from
    leads in `pool` ([source index, external id] of leads sent earlier, which new leads
    join), each to the source it first came through, the rest new leads. A returning
    lead is never one of the last `in_flight` sent: with that many clients, the others
    have had their answer, so the lead is stored.
    """

    def __init__(
        self,
        kind: str,
        keys: list[tuple[str, str]],
        leads: int,
        tag: str,
        returning: float | None = None,
        pool: list[list] | None = None,
        in_flight: int = 0,
    ) -> None:
        self.kind, self.keys, self.leads, self.tag = kind, keys, leads, tag
        self.returning = returning
        self.pool = [] if pool is None else pool
        self.in_flight = in_flight
        self.rng = random.Random()
        self.sent = 0
        self.returned = 0  # intakes from returning leads of the pool

    def next(self) -> bytes:
        if self.kind == "health":
            return b"GET /health/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        self.sent += 1
        if self.returning is None:
            source, lead = self.rng.randrange(len(self.keys)), self._lead()
        else:
            source, lead = self._mixed()
        code, key = self.keys[source]
        body = json.dumps(
            {
                "source": code,
                "lead": lead,
                "payload": {"text": "Hello, how much is delivery?", "n": self.sent},
            }
        ).encode()
        head = (
            "POST /api/contacts/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        return head.encode() + body

    def _mixed(self) -> tuple[int, dict[str, str]]:
        """A returning lead of the pool (to its first source) or a new one (joins it)."""
        answered = len(self.pool) - self.in_flight
        if answered > 0 and self.rng.random() < self.returning:
            self.returned += 1
            source, external_id = self.pool[self.rng.randrange(answered)]
            return source, {"external_id": external_id}
        source = self.rng.randrange(len(self.keys))
        external_id = f"bench-{self.tag}-{self.sent}"
        self.pool.append([source, external_id])
        lead = {"external_id": external_id, "email": f"{external_id}@example.com"}
        return source, {**lead, "name": "Bench lead"}

    def _lead(self) -> dict[str, str]:
        if not self.leads or self.rng.random() < NEW_LEAD_SHARE:
            return {
                "external_id": f"bench-{self.tag}-{self.sent}",
                "email": f"bench-{self.tag}-{self.sent}@example.com",
                "name": "Bench lead",
            }
        number = self.rng.randint(1, self.leads)
        if number % 5 and number < 10**7 and self.rng.random() < RETURNING_BY_PHONE_SHARE:
            return {"phone": f"{SEED_PHONE_PREFIX}{number:07d}"}
        return {"external_id": f"seed-{number}"}


class Exchange:
    """One request on its own connection: connect, send, read the whole answer, close."""

    def __init__(self, selector: selectors.BaseSelector, port: int, request: bytes) -> None:
        self.selector, self.request = selector, request
        self.buffer = bytearray()
        self.needed: int | None = None  # header and body bytes, once the header is in
        self.status: int | str = CLOSED_EARLY
        self.started = time.perf_counter()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setblocking(False)
        if self.sock.connect_ex(("127.0.0.1", port)) not in (0, errno.EINPROGRESS):
            self.status = CONNECT_ERROR
        selector.register(self.sock, selectors.EVENT_WRITE, self)

    def ready(self, events: int) -> bool:
        """Move on after `events`; True once the exchange is over (`status` is final)."""
        if events & selectors.EVENT_WRITE:
            if self.status == CONNECT_ERROR or self.sock.getsockopt(
                socket.SOL_SOCKET, socket.SO_ERROR
            ):
                self.status = CONNECT_ERROR
                return self._close()
            # A request is a few hundred bytes: one send fits in the socket buffer.
            self.sock.send(self.request)
            self.selector.modify(self.sock, selectors.EVENT_READ, self)
            return False
        try:
            data = self.sock.recv(65536)
        except ConnectionError:
            data = b""
        self.buffer += data
        if self._complete():
            return self._close()
        if not data:
            self.status = CLOSED_EARLY
            return self._close()
        return False

    def _complete(self) -> bool:
        if self.needed is None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return False
            head = bytes(self.buffer[:end]).decode("latin-1").lower().split("\r\n")
            self.status = int(head[0].split()[1])
            lengths = [line.split(":", 1)[1] for line in head if line.startswith("content-length:")]
            self.needed = end + 4 + int(lengths[0] if lengths else 0)
        return len(self.buffer) >= self.needed

    def _close(self) -> bool:
        self.selector.unregister(self.sock)
        self.sock.close()
        return True


def run(args: argparse.Namespace, requests: Requests) -> dict:
    """Drive the clients until `duration` has passed and every answer is in."""
    results = Results()
    selector = selectors.DefaultSelector()
    cpu_started = time.process_time()
    started = time.perf_counter()
    deadline = started + args.duration
    # With a number of requests: send exactly that many, however long they take.
    left = args.requests if args.requests else None

    def more() -> bool:
        nonlocal left
        if left is None:
            return time.perf_counter() < deadline
        left -= 1
        return left >= 0

    for _ in range(args.concurrency):
        if more():
            Exchange(selector, args.port, requests.next())
    while selector.get_map():
        for key, events in selector.select(timeout=1):
            exchange = key.data
            if not exchange.ready(events):
                continue
            now = time.perf_counter()
            results.latencies.append(now - exchange.started)
            results.statuses[exchange.status] += 1
            if more():
                Exchange(selector, args.port, requests.next())
    elapsed = time.perf_counter() - started
    latencies = sorted(results.latencies)
    return {
        "requests": len(latencies),
        "elapsed": elapsed,
        "statuses": {str(status): count for status, count in results.statuses.items()},
        "p50": percentile(latencies, 50),
        "p95": percentile(latencies, 95),
        "p99": percentile(latencies, 99),
        "cpu_seconds": time.process_time() - cpu_started,
        "returning": requests.returned,
    }


def percentile(sorted_values: list[float], pct: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, int(len(sorted_values) * pct / 100))
    return sorted_values[index]


def read_keys(path: str) -> list[tuple[str, str]]:
    with open(path) as lines:
        return [tuple(line.split()) for line in lines if line.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["intake", "health"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--concurrency", type=int, required=True)
    parser.add_argument("--duration", type=float, required=True)
    parser.add_argument("--keys", help="Lines of `source_code api_key` (intake).")
    parser.add_argument("--leads", type=int, default=0, help="Seeded leads seed-1..N.")
    parser.add_argument("--tag", default="x", help="Makes new leads' identifiers unique.")
    parser.add_argument("--requests", type=int, default=0, help="Send this many, not --duration.")
    parser.add_argument("--returning", type=float, help="Share from leads of --pool (mix).")
    parser.add_argument("--pool", help="JSON file of the leads sent so far (read, then written).")
    args = parser.parse_args()
    keys = read_keys(args.keys) if args.kind == "intake" else []
    pool = read_pool(args.pool) if args.pool else None
    requests = Requests(
        args.kind, keys, args.leads, args.tag, args.returning, pool, in_flight=args.concurrency
    )
    json.dump(run(args, requests), sys.stdout)
    if args.pool:
        with open(args.pool, "w") as out:
            json.dump(requests.pool, out)


def read_pool(path: str) -> list[list]:
    try:
        with open(path) as pool:
            return json.load(pool)
    except FileNotFoundError:
        return []


if __name__ == "__main__":
    main()
