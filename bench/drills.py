"""Reliability drills: gunicorn on a fresh PostgreSQL database, loaded while things break.

    python -m bench.drills ci                 # outage, kill and cluster, ~1.5 min (.ci/run)
    python -m bench.drills outage             # or kill, or cluster: one drill
    python -m bench.drills soak --minutes 10  # on demand: memory and invariants over time

- outage: PostgreSQL is stopped for a few seconds under load and started again. While
  it is down every answer is a quick 503 with a JSON body; afterwards the app serves
  again by itself.
- kill: gunicorn workers are SIGKILLed mid-request under load; the master replaces them.
- cluster: two gunicorn instances on one database, clients on both, sources sharing
  operators, no 5xx, no deadlock (pg_stat_database.deadlocks).
- soak: contacts opened and closed for a long time, workers never recycled; the RSS of
  every gunicorn process is sampled as it goes.

Every drill ends with the same checks, read from the database: each 201 the clients saw
is stored exactly once and each failed intake stored nothing (every intake is a new lead,
its external id the request's name); no lead without its contact; no operator over its
limit; no waiting contact that an operator with room could take. The clients are
bench.load's exchanges, recording every answer. Exits 1 when a check fails.

The outage drill stops the local PostgreSQL cluster, and with it everything else using
it: it waits until no other session is connected, and always starts PostgreSQL again.
"""

import argparse
import contextlib
import json
import os
import random
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bench.load import Exchange, percentile
from bench.run import ENVIRONMENT, ensure_postgres, gunicorn, psql

DATABASE = "crm_drill"
PORT = 8600
# Eight operators with small limits over six sources of three or four each, every
# operator on two or three sources: limits bind, contacts wait, and sources share
# operators (the deadlock-prone layout).
LIMITS = [4, 6, 3, 5, 4, 6, 3, 5]
SOURCES = {
    "drill-a": {0: 3, 1: 1, 2: 2},
    "drill-b": {2: 1, 3: 2, 4: 1},
    "drill-c": {4: 2, 5: 1, 0: 1},
    "drill-d": {1: 2, 3: 1, 5: 2, 6: 1},
    "drill-e": {6: 2, 7: 1, 0: 1},
    "drill-f": {7: 3, 2: 1, 5: 1},
}
# A client closes one of the contacts it made this often, so capacity keeps appearing.
CLOSE_SHARE = 0.3
# While PostgreSQL is stopped, an answer slower than this is a hang, not a quick 503.
QUICK_ANSWER_SECONDS = 10
UNAVAILABLE = {"detail": "The database is unavailable; retry shortly."}


@dataclass
class Outcome:
    kind: str  # "intake" or "close"
    ref: str | int  # the intake's lead external id, or the closed contact's id
    port: int
    status: int | str  # HTTP status, or bench.load's "connect" / "closed"
    started: float  # seconds since the load began
    seconds: float
    body: dict | None


@dataclass
class World:
    keys: list[str]  # one bot key per source
    token: str  # a member of staff's, for closing


class Traffic:
    """What the clients send: contacts from new leads with the bots' keys, and closes
    of contacts they made (by staff) in CLOSE_SHARE of the requests."""

    def __init__(self, world: World, tag: str) -> None:
        self.world, self.tag = world, tag
        self.rng = random.Random(tag)
        self.sent = 0
        self.made: list[int] = []

    def next(self) -> tuple[str, str | int, bytes]:
        if self.made and self.rng.random() < CLOSE_SHARE:
            contact_id = self.made.pop(self.rng.randrange(len(self.made)))
            auth = f"Token {self.world.token}"
            return "close", contact_id, http_post(f"/api/contacts/{contact_id}/close/", auth, {})
        self.sent += 1
        external_id = f"{self.tag}-{self.sent}"
        body = {"lead": {"external_id": external_id}, "payload": {"text": "Hello"}}
        auth = f"Bearer {self.rng.choice(self.world.keys)}"
        return "intake", external_id, http_post("/api/contacts/", auth, body)

    def answered(self, outcome: Outcome) -> None:
        if outcome.kind == "intake" and outcome.status == 201:
            self.made.append(outcome.body["id"])


def http_post(path: str, authorization: str, body: dict) -> bytes:
    data = json.dumps(body).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        f"Authorization: {authorization}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(data)}\r\n\r\n"
    )
    return head.encode() + data


@dataclass
class Load:
    """Closed-loop clients (as bench.load's) on one or more ports, in a thread."""

    ports: list[int]
    concurrency: int
    seconds: float
    traffic: Traffic
    outcomes: list[Outcome] = field(default_factory=list)
    started: float = 0.0

    def run(self) -> None:
        selector = selectors.DefaultSelector()
        self.started = time.perf_counter()
        deadline = self.started + self.seconds
        for client in range(self.concurrency):
            self._send(selector, client)
        while selector.get_map():
            for key, events in selector.select(timeout=1):
                exchange = key.data
                if not exchange.ready(events):
                    continue
                self._record(exchange)
                if time.perf_counter() < deadline:
                    self._send(selector, exchange.client)

    def now(self) -> float:
        return time.perf_counter() - self.started

    @contextlib.contextmanager
    def in_background(self) -> Iterator[None]:
        thread = threading.Thread(target=self.run)
        thread.start()
        time.sleep(0.1)  # let `started` be set before the caller times anything
        try:
            yield
        finally:
            thread.join()

    def _send(self, selector: selectors.BaseSelector, client: int) -> None:
        kind, ref, request = self.traffic.next()
        port = self.ports[client % len(self.ports)]
        exchange = Exchange(selector, port, request)
        exchange.client, exchange.kind, exchange.ref, exchange.port = client, kind, ref, port
        exchange.offset = exchange.started - self.started

    def _record(self, exchange: Exchange) -> None:
        body = None
        end = exchange.buffer.find(b"\r\n\r\n")
        if isinstance(exchange.status, int) and end >= 0:
            with contextlib.suppress(ValueError):
                body = json.loads(bytes(exchange.buffer[end + 4 :]))
        outcome = Outcome(
            kind=exchange.kind,
            ref=exchange.ref,
            port=exchange.port,
            status=exchange.status,
            started=exchange.offset,
            seconds=time.perf_counter() - exchange.started,
            body=body,
        )
        self.traffic.answered(outcome)
        self.outcomes.append(outcome)


class Checks:
    """Collects the failed checks; prints each as it goes."""

    def __init__(self) -> None:
        self.failed: list[str] = []

    def expect(self, ok: bool, what: str) -> None:
        print(f"  {'ok  ' if ok else 'FAIL'} {what}", flush=True)
        if not ok:
            self.failed.append(what)


def statuses(outcomes: list[Outcome], kind: str | None = None) -> Counter:
    return Counter(o.status for o in outcomes if kind is None or o.kind == kind)


def check_database(checks: Checks, outcomes: list[Outcome], *, lost_answers: bool) -> None:
    """What the clients saw against what the database holds.

    `lost_answers`: a request whose connection was cut (a killed worker) may have
    committed or not; either is fine, half of it is not.
    """
    from django.db import connections

    from distribution.models import Contact, Operator
    from leads.models import Lead

    connections.close_all()  # the outage drill broke this process's connection too
    stored = Counter(Contact.objects.values_list("lead__external_id", flat=True))
    intakes = [o for o in outcomes if o.kind == "intake"]
    accepted = [o.ref for o in intakes if o.status in (200, 201)]
    refused = [o.ref for o in intakes if isinstance(o.status, int) and o.status >= 400]
    cut = [o.ref for o in intakes if not isinstance(o.status, int)]
    checks.expect(
        all(stored[ref] == 1 for ref in accepted),
        f"each of the {len(accepted)} accepted contacts is stored exactly once",
    )
    checks.expect(
        not any(stored[ref] for ref in refused),
        f"none of the {len(refused)} refused intakes stored anything",
    )
    committed = sum(stored[ref] for ref in cut)
    checks.expect(
        lost_answers or not cut, f"{len(cut)} intakes cut off ({committed} of them committed)"
    )
    checks.expect(
        sum(stored.values()) == len(accepted) + committed,
        f"{sum(stored.values())} contacts stored: the accepted ones and the committed cut-off ones",
    )
    checks.expect(
        not Lead.objects.filter(contacts__isnull=True).exists(), "no lead without its contact"
    )
    closes = [o for o in outcomes if o.kind == "close"]
    closed = set(Contact.objects.filter(status="closed").values_list("id", flat=True))
    checks.expect(
        all(o.ref in closed for o in closes if o.status == 200)
        and not any(o.ref in closed for o in closes if o.status == 503),
        f"each of the {len(closes)} closes is stored as answered",
    )
    operators = Operator.objects.with_load()
    over = operators.over_limit().count()
    checks.expect(over == 0, f"operators over their limit: {over}")
    idle = operators.filter(is_active=True).at_limit(False)
    waiting = Contact.objects.filter(status="waiting")
    stuck = waiting.filter(source__weights__operator__in=idle).distinct().count()
    checks.expect(
        stuck == 0,
        f"waiting contacts an operator with room could take: {stuck} (of {waiting.count()})",
    )


def report_load(outcomes: list[Outcome], seconds: float) -> None:
    ms = [o.seconds * 1000 for o in sorted(outcomes, key=lambda o: o.seconds)]
    print(
        f"  {len(outcomes)} requests in {seconds:.1f} s ({len(outcomes) / seconds:.0f}/s), "
        f"p50 {percentile(ms, 50):.0f} ms, p99 {percentile(ms, 99):.0f} ms, "
        f"max {ms[-1]:.0f} ms; intake {dict(statuses(outcomes, 'intake'))}, "
        f"close {dict(statuses(outcomes, 'close'))}",
        flush=True,
    )


# --- The world and the servers ---------------------------------------------------------


@contextlib.contextmanager
def drill_database() -> Iterator[World]:
    """A fresh database with the drill's operators, sources, keys and a staff token."""
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connections
    from rest_framework.authtoken.models import Token

    from distribution.models import Source
    from distribution.operators import create_operator
    from distribution.sources import create_source_key, set_source_weights

    psql(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
    psql(f"CREATE DATABASE {DATABASE}")
    try:
        call_command("migrate", verbosity=0)
        operators = [
            create_operator(name=f"Drill operator {n}", max_open_contacts=limit)
            for n, limit in enumerate(LIMITS)
        ]
        keys = []
        for number, (code, weights) in enumerate(SOURCES.items()):
            strategy = (
                Source.Strategy.ROUND_ROBIN if number % 2 else Source.Strategy.WEIGHTED_RANDOM
            )
            source = Source.objects.create(code=code, name=code, strategy=strategy)
            set_source_weights(
                source=source, weights={operators[i].pk: w for i, w in weights.items()}
            )
            keys.append(create_source_key(source=source, name="drill")[1])
        staff = get_user_model().objects.create_user("drill", is_staff=True)
        yield World(keys=keys, token=Token.objects.create(user=staff).key)
    finally:
        connections.close_all()
        psql(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")


def gunicorn_processes() -> dict[int, list[int]]:
    """The gunicorn masters this process started, each with its workers' pids."""
    masters = [pid for pid in children(os.getpid()) if b"gunicorn" in cmdline(pid)]
    return {master: children(master) for master in masters}


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError):
            found += [int(child) for child in (task / "children").read_text().split()]
    return found


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return b""


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


# --- PostgreSQL, stopped and started ---------------------------------------------------


def pg_ctl(action: str) -> None:
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", action], check=True
    )


def postgres_ready() -> bool:
    return subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1", "-p", "5432"]).returncode == 0


def wait_for_others_to_leave(seconds: float = 180) -> None:
    """Stopping PostgreSQL would break anyone else's work: wait until nobody else is on.
    CI has the machine to itself (its own test run is over), so it does not wait."""
    query = (
        "SELECT string_agg(DISTINCT datname, ', ') FROM pg_stat_activity "
        "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() "
        f"AND datname IS NOT NULL AND datname <> '{DATABASE}'"
    )
    deadline = time.monotonic() + seconds
    while (others := psql(query)) and os.environ.get("CI") != "true":
        if time.monotonic() > deadline:
            raise SystemExit(f"other sessions use PostgreSQL ({others}); not stopping it")
        print(f"  waiting for other sessions to leave PostgreSQL: {others}", flush=True)
        time.sleep(5)


@contextlib.contextmanager
def postgres_restored() -> Iterator[None]:
    """Whatever happens in the block, PostgreSQL is running after it."""
    try:
        yield
    finally:
        if not postgres_ready():
            print("  starting PostgreSQL again", flush=True)
            pg_ctl("start")
            ensure_postgres()


# --- The drills ------------------------------------------------------------------------


def drill_outage(checks: Checks, world: World) -> None:
    """Load for 3 s, PostgreSQL stopped for 4 s, load on for 8 s after it is back."""
    print("outage: PostgreSQL stopped and started under load (1 instance, 16 clients)")
    wait_for_others_to_leave()
    load = Load([PORT], concurrency=16, seconds=15, traffic=Traffic(world, "outage"))
    with gunicorn(PORT), postgres_restored(), load.in_background():
        time.sleep(3)
        stopping = load.now()
        pg_ctl("stop")
        stopped = load.now()
        time.sleep(4)
        pg_ctl("start")
        back = load.now()
    print(
        f"  PostgreSQL stopping at {stopping:.1f} s, down at {stopped:.1f} s, "
        f"accepting again at {back:.1f} s"
    )
    outcomes = load.outcomes
    report_load(outcomes, load.seconds)
    unavailable = [o for o in outcomes if o.status == 503]
    checks.expect(
        set(statuses(outcomes)) <= {200, 201, 503}, "every answer is a 200, a 201 or a 503"
    )
    checks.expect(
        bool(unavailable) and all(o.body == UNAVAILABLE for o in unavailable),
        f"{len(unavailable)} answers were 503 with {json.dumps(UNAVAILABLE)}",
    )
    down = [o for o in outcomes if stopped <= o.started <= back - 0.5]
    slowest = max((o.seconds for o in down), default=0.0)
    checks.expect(
        slowest < QUICK_ANSWER_SECONDS,
        f"while it was down: {len(down)} answers, slowest {slowest * 1000:.0f} ms",
    )
    after = [o for o in outcomes if o.started > back + 1]
    checks.expect(
        bool(after) and all(o.status in (200, 201) for o in after),
        f"from 1 s after it was back every answer succeeded ({len(after)} requests)",
    )
    check_database(checks, outcomes, lost_answers=False)


def drill_kill(checks: Checks, world: World) -> None:
    """A worker SIGKILLed every second for 10 s under load."""
    print("kill: a gunicorn worker SIGKILLed every second (1 instance, 3 workers, 16 clients)")
    os.environ["WEB_CONCURRENCY"] = "3"
    load = Load([PORT], concurrency=16, seconds=12, traffic=Traffic(world, "kill"))
    rng = random.Random(1)
    killed = 0
    with gunicorn(PORT):
        with load.in_background():
            for _ in range(10):
                time.sleep(1)
                [workers] = gunicorn_processes().values()
                if workers:
                    os.kill(rng.choice(workers), signal.SIGKILL)
                    killed += 1
            last_kill = load.now()
        # The load is over: a transaction still open now was a killed worker's.
        stale = psql(
            "SELECT count(*) FROM pg_stat_activity "
            f"WHERE datname = '{DATABASE}' AND state LIKE 'idle in transaction%'",
        )
    outcomes = load.outcomes
    print(f"  {killed} workers killed")
    report_load(outcomes, load.seconds)
    checks.expect(
        set(statuses(outcomes)) <= {200, 201, "closed"},
        "every answer is a success, or a connection cut by a kill",
    )
    after = [o for o in outcomes if o.started > last_kill + 0.5]
    checks.expect(
        bool(after) and all(o.status in (200, 201) for o in after),
        f"after the last kill every answer succeeded ({len(after)} requests)",
    )
    checks.expect(stale == "0", f"transactions left open by killed workers: {stale}")
    check_database(checks, outcomes, lost_answers=True)


def drill_cluster(checks: Checks, world: World) -> None:
    """Two instances, 2 workers each, 32 clients spread over both, for 15 s."""
    print("cluster: two gunicorn instances on one database (2 workers each, 32 clients)")
    os.environ["WEB_CONCURRENCY"] = "2"
    deadlocks = f"SELECT deadlocks FROM pg_stat_database WHERE datname = '{DATABASE}'"
    before = int(psql(deadlocks))
    load = Load([PORT, PORT + 1], concurrency=32, seconds=15, traffic=Traffic(world, "cluster"))
    with gunicorn(PORT), gunicorn(PORT + 1):
        load.run()
    outcomes = load.outcomes
    report_load(outcomes, load.seconds)
    checks.expect(
        set(statuses(outcomes)) <= {200, 201}, "every answer is a 200 or a 201: no 5xx, no error"
    )
    print(f"  requests per instance (port): {dict(Counter(o.port for o in outcomes))}")
    after = int(psql(deadlocks))
    checks.expect(after == before, f"deadlocks: {after - before}")
    check_database(checks, outcomes, lost_answers=False)


def drill_soak(checks: Checks, world: World, minutes: float) -> None:
    """Contacts opened and closed for `minutes`; RSS of each gunicorn process sampled."""
    print(f"soak: {minutes:g} minutes, 1 instance, 3 workers never recycled, 8 clients")
    os.environ["WEB_CONCURRENCY"] = "3"
    # Recycling would hide a leak: every worker lives through the whole soak.
    os.environ["GUNICORN_CMD_ARGS"] = "--max-requests 0"
    load = Load([PORT], concurrency=8, seconds=minutes * 60, traffic=Traffic(world, "soak"))
    samples: list[tuple[float, int, list[float]]] = []
    with gunicorn(PORT), load.in_background():
        started = load.now()
        while load.now() < started + load.seconds:
            processes = gunicorn_processes()
            pids = [pid for master, workers in processes.items() for pid in [master, *workers]]
            samples.append((load.now(), len(load.outcomes), [rss_mb(pid) for pid in pids]))
            print(
                f"  {samples[-1][0]:6.0f} s {samples[-1][1]:>8} requests  RSS MB "
                + " ".join(f"{mb:6.1f}" for mb in samples[-1][2]),
                flush=True,
            )
            time.sleep(min(30, max(1, minutes * 60 / 20)))
    report_load(load.outcomes, load.seconds)
    warm = next(sample for sample in samples if sample[0] >= min(60, load.seconds / 5))
    end = samples[-1]
    growth = [late - early for early, late in zip(warm[2], end[2], strict=True)]
    checks.expect(
        len(end[2]) == len(warm[2]) and max(growth) < 0.1 * max(warm[2]) + 5,
        f"RSS from {warm[0]:.0f} s to {end[0]:.0f} s, per process (master first): "
        + ", ".join(
            f"{early:.1f} -> {late:.1f} MB" for early, late in zip(warm[2], end[2], strict=True)
        ),
    )
    checks.expect(set(statuses(load.outcomes)) <= {200, 201}, "every answer is a 200 or a 201")
    check_database(checks, load.outcomes, lost_answers=False)


DRILLS: dict[str, Callable[[Checks, World], None]] = {
    "outage": drill_outage,
    "kill": drill_kill,
    "cluster": drill_cluster,
}


def main() -> None:
    parser = argparse.ArgumentParser(description="Reliability drills on PostgreSQL.")
    parser.add_argument("drill", choices=[*DRILLS, "ci", "soak"])
    parser.add_argument("--minutes", type=float, default=10, help="How long the soak runs.")
    args = parser.parse_args()
    # SIGTERM (a CI timeout) unwinds like an error, so PostgreSQL is started again.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("drills: terminated"))
    os.environ.update(
        {
            **ENVIRONMENT,
            "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{DATABASE}",
            "HOST": "127.0.0.1",
            "WEB_CONCURRENCY": "3",
        }
    )
    ensure_postgres()

    import django

    django.setup()
    names = list(DRILLS) if args.drill == "ci" else [args.drill]
    checks = Checks()
    started = time.monotonic()
    for name in names:
        with drill_database() as world:
            if name == "soak":
                drill_soak(checks, world, args.minutes)
            else:
                DRILLS[name](checks, world)
    took = time.monotonic() - started
    if checks.failed:
        sys.exit(f"drills: {len(checks.failed)} check(s) failed in {took:.0f} s")
    print(f"drills: all checks passed in {took:.0f} s")


if __name__ == "__main__":
    main()
