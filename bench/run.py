"""`make bench`: the intake under load on PostgreSQL, from an empty database to 1M contacts,
as open contacts pile up, and with returning leads and sources of two sizes.

Three scenarios (`--scenarios`, all three by default). `scaling`, for each history
size (0, 100k and 1M stored contacts by default):
1. create a fresh database, migrate, and seed it with the `seed` command: 60 operators,
   30 sources with 5 operators each drawn from all (so sources share operators),
   200k leads and the history; then raise every other operator's limit out of reach
   (through `update_operator`), so limits bind for some operators and not for others;
   one API key per source (`create_source_key`);
2. start gunicorn with gunicorn.conf.py and the Docker image's settings (PRODUCTION=1,
   DEBUG off; plain HTTP as in docker-compose);
3. from a separate load process (bench/load.py): a warm-up, then the intake at 32
   concurrent clients for the scaling figure; on the largest database also the full
   sweep: intake and /health/ at each concurrency. Before each intake run the contacts
   earlier runs opened are closed, as operators would close them, so every run starts
   from the seeded loads;
4. stop gunicorn, count SQL round trips per intake in-process with Django's query
   counter, and check the invariants from the database;
5. drop the database.

`pileup`: four operators with limits out of reach on a fresh database; 200 intakes
open 200 contacts, then 9,800 more in ten windows of 980, nothing closed and nothing
vacuumed in between, until 10,000 are open: contacts/s and server CPU per contact in
each window, and the last window's rate over the first's.

`mix`: the `scaling` setup with 100k stored contacts and every other source's contacts
costing 3 load units (where the code has Source.load_units); a third of the intakes
from leads sent earlier in the run, back to the source they came through, the rest new
leads; then the sticky lookup's plan (where the code has queries._owner_statement).

    .venv/bin/python -m bench.run [--duration 10] [--history 0,100000,1000000]
        [--scenarios scaling,pileup,mix]
"""

import argparse
import contextlib
import io
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import warnings
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATABASE = "crm_bench"
PG = ["psql", "-h", "127.0.0.1", "-p", "5432", "-U", "postgres", "-X", "-q", "-A", "-t"]
SETUP = {"operators": 60, "sources": 30, "weights_per_source": 5, "leads": 200_000, "seed": 1}
# An operator whose limit the bench raises to this never reaches it in a run.
OUT_OF_REACH = 1_000_000
SCALING_CONCURRENCY = 32
WARMUP_SECONDS = 3
PROBE_REQUESTS = 300
SCENARIOS = ("scaling", "pileup", "mix")
# pileup: open contacts from PILEUP_START to PILEUP_END on four operators, in windows.
PILEUP_SETUP = {**SETUP, "operators": 4, "sources": 2, "weights_per_source": 4}
PILEUP_START, PILEUP_END, PILEUP_WINDOWS = 200, 10_000, 10
# mix: stored contacts, share of intakes from returning leads, the big sources' units.
MIX_HISTORY = 100_000
MIX_RETURNING = 1 / 3
MIX_UNITS = 3
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

ENVIRONMENT = {
    "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{DATABASE}",
    # As the Docker image and docker-compose run it.
    "PRODUCTION": "1",
    "HTTPS_ONLY": "0",
    "DEBUG": "0",
    "SECRET_KEY": "bench-secret-key-not-for-production-0123456789abcdef",
    # testserver: the in-process query count goes through Django's test client.
    "ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
    # Bots are throttled per source; the bench sends far more than a real bot would.
    "API_BOT_THROTTLE_RATE": "1000000/min",
    "DJANGO_SETTINGS_MODULE": "crm.settings",
}


def main() -> None:
    parser = argparse.ArgumentParser(description="Intake benchmark on PostgreSQL.")
    parser.add_argument("--duration", type=float, default=10, help="Seconds per measured run.")
    parser.add_argument("--history", default="0,100000,1000000", help="Stored contacts.")
    parser.add_argument("--concurrency", default="1,8,32,64")
    parser.add_argument("--port", type=int, default=8500)
    parser.add_argument(
        "--scenarios", default=",".join(SCENARIOS), help="Of scaling, pileup and mix."
    )
    parser.add_argument(
        "--pileup-history",
        type=int,
        default=0,
        help="pileup: contacts stored (all closed, then vacuumed) before its first intake.",
    )
    args = parser.parse_args()
    scenarios = args.scenarios.split(",")
    if unknown := set(scenarios) - set(SCENARIOS):
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    setup_django()
    print(f"{os.cpu_count()} cores; load average before: {os.getloadavg()[0]:.1f}", flush=True)
    if "scaling" in scenarios:
        scale(args)
    if "pileup" in scenarios:
        pileup(args)
    if "mix" in scenarios:
        mix(args)
    print(f"load average after: {os.getloadavg()[0]:.1f}")


def scale(args: argparse.Namespace) -> None:
    """Intake at 32 clients by stored contacts; the sweep on the largest database."""
    histories = sorted(int(size) for size in args.history.split(","))
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    scaling: dict[int, dict] = {}
    for history in histories:
        with seeded_database(history) as keys_file:
            bench = Bench(port=args.port, keys_file=keys_file, duration=args.duration)
            with gunicorn(args.port) as server:
                bench.server = server.pid
                bench.intake(SCALING_CONCURRENCY, seconds=WARMUP_SECONDS)
                scaling[history] = bench.intake(SCALING_CONCURRENCY)
                sweep = (
                    [(c, bench.intake(c), bench.health(c)) for c in concurrencies]
                    if history == histories[-1]
                    else []
                )
            queries = count_queries(bench)
            check = check_invariants(bench.created)
            if sweep:
                print_sweep(history, sweep, queries, check, bench.client_cpu())
            print(f"history {history:>9}: {format_check(check)}", flush=True)
    print_scaling(scaling)


def pileup(args: argparse.Namespace) -> None:
    """Intake while open contacts pile up: four operators with limits out of reach, the
    bench's intake at 32 clients, nothing closed or vacuumed between the windows. The
    rate should not depend on how many contacts are open."""
    step = (PILEUP_END - PILEUP_START) // PILEUP_WINDOWS
    with (
        fresh_database(),
        tempfile.TemporaryDirectory(prefix="crm-bench-") as keys,
    ):
        history = args.pileup_history
        keys_file = prepare(history, Path(keys) / "keys.txt", setup=PILEUP_SETUP, pileup=True)
        if history:
            close_bench_contacts(seeded=True)
        bench = Bench(port=args.port, keys_file=keys_file, duration=args.duration)
        with gunicorn(args.port) as server:
            bench.server = server.pid
            # The first PILEUP_START open contacts, and the workers' warm-up.
            bench.intake(SCALING_CONCURRENCY, requests=PILEUP_START, close=False)
            windows = []
            for _ in range(PILEUP_WINDOWS):
                opened = open_contacts()
                windows.append(
                    (opened, bench.intake(SCALING_CONCURRENCY, requests=step, close=False))
                )
            opened = open_contacts()
        queries = count_queries(bench)
        check = check_invariants(bench.created)
    print(
        f"\nPile-up: intake at {SCALING_CONCURRENCY} clients on {PILEUP_SETUP['operators']} "
        f"operators with limits out of reach, {history} closed contacts stored before, "
        "nothing closed or vacuumed in between:"
    )
    print(f"{'open at start':>13} {'contacts/s':>10} {'p99 ms':>7} {'app ms':>6} {'db ms':>5}")
    for at_start, result in windows:
        print(
            f"{at_start:>13} {result['rate']:>10.0f} {result['p99'] * 1000:>7.1f} "
            f"{result['app_cpu'] * 1000:>6.2f} {result['db_cpu'] * 1000:>5.2f}"
        )
    results = [result for _, result in windows]
    print(f"{opened} open at the end; {end_over_start(results[:1], results[-1:], 'window')}")
    print(f"{' ' * len(str(opened))} {end_over_start(results[:2], results[-2:], 'two windows')}")
    print(f"SQL round trips per intake request: {format_queries(queries)}")
    print(f"Invariants: {format_check(check)}\n", flush=True)


def end_over_start(start: list[dict], end: list[dict], what: str) -> str:
    """The last `what` over the first: contacts/s and server CPU per contact, in words."""

    def rate(results: list[dict]) -> float:
        return sum(r["statuses"].get("201", 0) for r in results) / sum(
            r["elapsed"] for r in results
        )

    def cpu(results: list[dict]) -> float:
        return sum((r["app_cpu"] + r["db_cpu"]) * r["requests"] for r in results) / sum(
            r["requests"] for r in results
        )

    return (
        f"last {what} over the first: contacts/s {rate(end) / rate(start) * 100:.0f}% "
        f"({rate(start):.0f} -> {rate(end):.0f}), server CPU per contact "
        f"{cpu(end) / cpu(start) * 100:.0f}% ({cpu(start) * 1000:.2f} -> {cpu(end) * 1000:.2f} ms)"
    )


def mix(args: argparse.Namespace) -> None:
    """Intake with returning leads (sticky, where the code has it) and sources of two
    sizes, on the scaling setup with MIX_HISTORY stored contacts."""
    with seeded_database(MIX_HISTORY) as keys_file:
        units = set_source_units()
        bench = Bench(
            port=args.port,
            keys_file=keys_file,
            duration=args.duration,
            pool=keys_file.parent / "pool.json",
        )
        with gunicorn(args.port) as server:
            bench.server = server.pid
            bench.intake(SCALING_CONCURRENCY, seconds=WARMUP_SECONDS)
            result = bench.intake(SCALING_CONCURRENCY)
        queries = count_queries(bench)
        check = check_invariants(bench.created)
        owners = by_owner()
        plan = explain_owner()
    print(
        f"\nMix: intake at {SCALING_CONCURRENCY} clients, {MIX_HISTORY} stored contacts, "
        f"{MIX_RETURNING:.0%} from returning leads; {units}:"
    )
    print(
        f"{result['rate']:.0f} contacts/s, p50 {result['p50'] * 1000:.1f} ms, p99 "
        f"{result['p99'] * 1000:.1f} ms, app ms {result['app_cpu'] * 1000:.2f}, db ms "
        f"{result['db_cpu'] * 1000:.2f}; {result['returning'] / result['requests']:.0%} "
        f"from returning leads{owners}"
    )
    print(f"SQL round trips per intake request: {format_queries(queries)}")
    print(f"Invariants: {format_check(check)}")
    if plan:
        print("The sticky lookup (queries.lead_owner), EXPLAIN (ANALYZE, BUFFERS):")
        print(f"  {plan[0]}")
        print("\n".join(f"    {line}" for line in plan[1:]))
    print(flush=True)


def setup_django() -> None:
    """Django in this process, with the settings the bench serves gunicorn with."""
    os.environ.update(ENVIRONMENT)
    ensure_postgres()
    import django

    # WhiteNoise warns that static files were never collected; the bench serves none.
    warnings.filterwarnings("ignore", message="No directory at")
    django.setup()
    # In-process requests (the probe, bench.inprocess) would each print a request line.
    logging.getLogger("crm.requests").setLevel(logging.WARNING)


@contextlib.contextmanager
def seeded_database(history: int) -> Iterator[Path]:
    """A fresh bench database seeded with `history` contacts (see `prepare`), dropped
    at the end; yields the file of the bots' keys."""
    with fresh_database(), tempfile.TemporaryDirectory(prefix="crm-bench-") as keys:
        yield prepare(history, Path(keys) / "keys.txt")


def ensure_postgres() -> None:
    """Start the local cluster if it is down, as .ci/run does."""
    if subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1", "-p", "5432"]).returncode == 0:
        return
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"], check=True
    )
    for _ in range(30):
        if subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1", "-p", "5432"]).returncode == 0:
            return
        time.sleep(1)
    raise SystemExit("PostgreSQL did not start on 127.0.0.1:5432")


@contextlib.contextmanager
def fresh_database() -> Iterator[None]:
    from django.db import connections

    psql(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
    psql(f"CREATE DATABASE {DATABASE}")
    try:
        yield
    finally:
        connections.close_all()
        psql(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")


def psql(sql: str, database: str = "postgres") -> str:
    return subprocess.run(
        [*PG, "-d", database, "-c", sql], check=True, capture_output=True, text=True
    ).stdout.strip()


def prepare(history: int, keys_file: Path, setup: dict = SETUP, pileup: bool = False) -> Path:
    """Migrate, seed, free half the operators from their limits (`pileup`: all of them,
    all active), write the bots' keys."""
    from django.core.management import call_command
    from django.db import connections

    from distribution.models import Operator, Source
    from distribution.operators import update_operator
    from distribution.sources import create_source_key

    call_command("migrate", verbosity=0)
    started = time.monotonic()
    call_command("seed", contacts=history, stdout=io.StringIO(), **setup)
    # Statistics for the seeded history. An empty database is left unanalyzed, as a new
    # deployment's is (autovacuum analyzes a table from its 50th row, and again as it
    # grows): statistics saying "empty" while 10,000 contacts arrive, with autovacuum off
    # as on this machine, make PostgreSQL keep plans for an empty table (bench/README.md).
    if history:
        psql("VACUUM ANALYZE", DATABASE)
    # The seed's WAL would otherwise trigger a checkpoint during the measured runs (and
    # full-page writes after it), more of both the more history was seeded.
    psql("CHECKPOINT", DATABASE)
    # And the operating system's write-back of it, for the same reason.
    subprocess.run(["sync"], check=True)
    print(f"history {history:>9}: seeded in {time.monotonic() - started:.0f} s", flush=True)
    for operator in Operator.objects.order_by("id")[:: 1 if pileup else 2]:
        active = True if pileup else None
        update_operator(operator=operator, is_active=active, max_open_contacts=OUT_OF_REACH)
    lines = []
    for source in Source.objects.order_by("id"):
        _, key = create_source_key(source=source, name="bench")
        lines.append(f"{source.code} {key}\n")
    keys_file.write_text("".join(lines))
    # Only gunicorn's connections stay on the database, so their CPU can be read.
    connections.close_all()
    return keys_file


@contextlib.contextmanager
def gunicorn(port: int) -> Iterator[subprocess.Popen]:
    """gunicorn with the production config on 127.0.0.1:`port`, until the block ends."""
    env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(port)}
    log_path = Path(tempfile.gettempdir()) / f"crm-bench-gunicorn-{port}.log"
    with open(log_path, "w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "crm.wsgi:application", "-c", "gunicorn.conf.py"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_until_up(port, server, log_path)
            yield server
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)


def wait_until_up(port: int, server: subprocess.Popen, log_path: Path) -> None:
    for _ in range(100):
        if server.poll() is not None:
            raise SystemExit(f"gunicorn exited with {server.returncode}; see {log_path}")
        with contextlib.suppress(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health/", timeout=2)
            return
        time.sleep(0.2)
    raise SystemExit("gunicorn did not answer /health/ within 20 s")


def has_field(model: type, name: str) -> bool:
    """Whether the code measured has this field (the bench also runs on older commits)."""
    return any(field.name == name for field in model._meta.get_fields())


def set_source_units() -> str:
    """Every other source's contacts cost MIX_UNITS load units (a call beside a chat),
    through update_source, where the code has load units; what was done, in words."""
    from distribution.models import Source
    from distribution.sources import update_source

    if not has_field(Source, "load_units"):
        return "one kind of source (this code has no load units)"
    sources = list(Source.objects.order_by("id"))
    for source in sources[1::2]:
        update_source(source=source, load_units=MIX_UNITS)
    return f"{len(sources[::2])} sources at 1 load unit, {len(sources[1::2])} at {MIX_UNITS}"


def open_contacts() -> int:
    return int(psql("SELECT count(*) FROM leads_contact WHERE status = 'open'", DATABASE))


def by_owner() -> str:
    """The share of the bench's contacts given to their lead's own operator, in words."""
    from distribution.models import Contact

    if not has_field(Contact, "by_owner"):
        return ""
    stored = Contact.objects.exclude(decision__strategy="seeded")
    share = stored.filter(by_owner=True).count() / max(1, stored.count())
    return f"; {share:.0%} of the contacts went to their lead's own operator"


def explain_owner() -> list[str]:
    """EXPLAIN (ANALYZE, BUFFERS) of the sticky lookup (queries.lead_owner's statement,
    as it runs, with its values) for the lead with the most assigned contacts: the plan
    made for those values, which a connection runs the first five times, and the
    generic plan its prepared statement runs after that (prepare_threshold 5 in
    settings). Nothing where the code has no such lookup."""
    import inspect
    from datetime import timedelta

    from django.db import connection, transaction
    from django.utils import timezone
    from psycopg import sql

    from distribution import queries

    if not hasattr(queries, "lead_owner"):
        return []
    lead_id = psql(
        "SELECT lead_id FROM leads_contact WHERE operator_id IS NOT NULL "
        "GROUP BY lead_id ORDER BY count(*) DESC, lead_id LIMIT 1",
        DATABASE,
    )
    arguments = {"lead_id": int(lead_id), "since": timezone.now() - timedelta(days=30)}
    if "lock" in inspect.signature(queries.lead_owner).parameters:
        arguments["lock"] = True
    ran = []

    def keep(execute, statement, params, many, context):
        ran.append((statement, params))
        return execute(statement, params, many, context)

    lines = []
    with transaction.atomic(), connection.cursor() as cursor:
        with connection.execute_wrapper(keep):
            queries.lead_owner(**arguments)
        statement, params = ran[-1]
        lines.append(" ".join(statement.split()))
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {statement}", params)
        lines += ["for these values:", *(line for (line,) in cursor.fetchall())]
        numbered = statement.replace("%%", "\0")
        for number in range(1, len(params) + 1):
            numbered = numbered.replace("%s", f"${number}", 1)
        cursor.execute(f"PREPARE bench_owner AS {numbered.replace(chr(0), '%')}")
        cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        values = sql.SQL(", ").join(sql.Literal(value) for value in params)
        execute = sql.SQL("EXPLAIN (ANALYZE, BUFFERS) EXECUTE bench_owner({})").format(values)
        cursor.execute(execute.as_string(cursor.cursor))
        lines += ["generic:", *(line for (line,) in cursor.fetchall())]
        cursor.execute("DEALLOCATE bench_owner")
    connection.close()
    return lines


class Bench:
    """Runs the load process and keeps what every run received (for the invariants).

    With `pool` (a file of the leads sent so far) the intake is the `mix`'s: a share of
    MIX_RETURNING from leads sent earlier, the rest new leads."""

    def __init__(
        self, *, port: int, keys_file: Path, duration: float, pool: Path | None = None
    ) -> None:
        self.port, self.keys_file, self.duration = port, keys_file, duration
        self.pool = pool
        self.server = 0  # gunicorn's master, once started
        self.created = 0  # 201s received over every run, warm-ups and probe included
        self.runs = 0
        self.cpu = 0.0
        self.elapsed = 0.0

    def intake(
        self,
        concurrency: int,
        seconds: float | None = None,
        *,
        requests: int = 0,
        close: bool = True,
    ) -> dict:
        """An intake run of `seconds` (or exactly `requests` intakes), after closing what
        earlier runs opened (unless not `close`)."""
        if close:
            close_bench_contacts()
        result = self._load("intake", concurrency, seconds, requests)
        self.created += result["statuses"].get("201", 0)
        result["rate"] = result["statuses"].get("201", 0) / result["elapsed"]
        return result

    def health(self, concurrency: int) -> dict:
        result = self._load("health", concurrency, None, 0)
        result["rate"] = result["statuses"].get("200", 0) / result["elapsed"]
        return result

    def client_cpu(self) -> float:
        """The load process's CPU time as a share of the wall time it ran."""
        return self.cpu / self.elapsed if self.elapsed else 0.0

    def _load(self, kind: str, concurrency: int, seconds: float | None, requests: int) -> dict:
        self.runs += 1
        command = [sys.executable, "-m", "bench.load", kind, "--port", str(self.port)]
        command += ["--concurrency", str(concurrency), "--duration", str(seconds or self.duration)]
        command += ["--keys", str(self.keys_file), "--leads", str(SETUP["leads"])]
        command += ["--tag", f"{os.getpid()}-{self.runs}", "--requests", str(requests)]
        if self.pool and kind == "intake":
            command += ["--returning", str(MIX_RETURNING), "--pool", str(self.pool)]
        before = server_cpu(self.server)
        output = subprocess.run(command, cwd=ROOT, check=True, capture_output=True, text=True)
        after = server_cpu(self.server)
        result = json.loads(output.stdout)
        answered = max(1, result["requests"])
        result["app_cpu"] = (after[0] - before[0]) / answered
        result["db_cpu"] = (after[1] - before[1]) / answered
        self.cpu += result["cpu_seconds"]
        self.elapsed += result["elapsed"]
        return result


def close_bench_contacts(seeded: bool = False) -> None:
    """Close what earlier runs opened, as operators would: an intake-only run otherwise
    leaves the operators without a binding limit more open contacts to count each run.

    Then vacuum, as autovacuum would on a server configured as usual (it is off on
    this machine). Otherwise every closed contact leaves a dead entry in the partial
    index of open contacts, which each later load count visits: after a few runs
    that was 2 ms of PostgreSQL's CPU per count, more than the whole intake costs.

    Where the code keeps each operator's load on its row (Operator.open_load), the
    closes, made around the engine, leave it too high: it is set again from the open
    contacts, as loads.check_loads would. `seeded`: the seeded ones too.
    """
    from distribution.models import Operator

    psql(
        "UPDATE leads_contact SET status = 'closed', closed_at = now() WHERE status = 'open'"
        + ("" if seeded else " AND decision->>'strategy' <> 'seeded'"),
        DATABASE,
    )
    if has_field(Operator, "open_load"):
        psql(f"UPDATE {Operator._meta.db_table} o SET open_load = {COUNTED_LOAD}", DATABASE)
        psql(f"VACUUM ANALYZE {Operator._meta.db_table}", DATABASE)
    psql("VACUUM ANALYZE leads_contact", DATABASE)


# An operator's load counted from its contacts, for `o` (where the code has load units).
COUNTED_LOAD = (
    "COALESCE((SELECT sum(c.load_units) FROM leads_contact c WHERE c.operator_id = o.id "
    "AND c.status IN ('open', 'offered')), 0)"
)


def server_cpu(master: int) -> tuple[float, float]:
    """CPU seconds so far: gunicorn (master, live workers and reaped ones) and the
    PostgreSQL backends serving clients of the bench database (autovacuum's workers,
    which come and go between two readings, are left out)."""
    workers = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    app = sum(process_cpu(int(pid)) for pid in workers) + process_cpu(master, children=True)
    backends = psql(
        "SELECT pid FROM pg_stat_activity "
        f"WHERE datname = '{DATABASE}' AND backend_type = 'client backend'"
    ).split()
    return app, sum(process_cpu(int(pid)) for pid in backends)


def process_cpu(pid: int, children: bool = False) -> float:
    """User and system CPU seconds of a process (and of its reaped children)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except FileNotFoundError:  # exited since it was listed
        return 0.0
    # utime, stime, cutime, cstime are fields 14 to 17; [0] here is field 3.
    ticks = sum(int(value) for value in fields[11 : 15 if children else 13])
    return ticks / CLOCK_TICKS


def count_queries(bench: Bench) -> dict:
    """SQL round trips per intake request, counted by Django for the same mix of requests.

    In this process, through Django's test client (the same views and settings), since
    gunicorn's workers log no queries with DEBUG off. Django logs BEGIN, COMMIT and
    savepoints too; the one statement it does not log is the connection health check
    (`SELECT 1` before a request's first query, with CONN_HEALTH_CHECKS), added here.
    """
    from django.conf import settings
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from bench.load import Requests, read_keys

    health_check = int(settings.DATABASES["default"].get("CONN_HEALTH_CHECKS", False))
    keys = read_keys(str(bench.keys_file))
    if bench.pool:
        pool = json.loads(bench.pool.read_text())
        requests = Requests(
            "intake", keys, SETUP["leads"], f"probe{os.getpid()}", MIX_RETURNING, pool
        )
    else:
        requests = Requests("intake", keys, SETUP["leads"], f"probe{os.getpid()}")
    client = Client()
    counts = []
    statements: Counter = Counter()
    for _ in range(PROBE_REQUESTS):
        head, body = requests.next().split(b"\r\n\r\n", 1)
        key = next(line for line in head.split(b"\r\n") if line.startswith(b"Authorization"))
        # The log keeps 9000 queries: once full, a capture would count from wrong places
        # (the probes of earlier databases in the same run fill it).
        connection.queries_log.clear()
        with CaptureQueriesContext(connection) as captured:
            response = client.post(
                "/api/contacts/",
                body,
                content_type="application/json",
                headers={"Authorization": key.split(b": ", 1)[1].decode()},
            )
        assert response.status_code == 201, response.content
        bench.created += 1
        counts.append(len(captured.captured_queries) + health_check)
        statements.update(query["sql"].split()[0].upper() for query in captured.captured_queries)
    statements["SELECT 1"] = health_check * len(counts)
    return {
        "mean": sum(counts) / len(counts),
        "min": min(counts),
        "max": max(counts),
        "kinds": {kind: count / len(counts) for kind, count in statements.most_common() if count},
    }


def check_invariants(created: int) -> dict:
    """Read from the database: operators over their limit, contacts stored since seeding,
    and (where the code stores them) operators whose stored load is not their contacts'."""
    from distribution.models import Contact, Operator

    over_limit = Operator.objects.with_load().over_limit().count()
    stored = Contact.objects.exclude(decision__strategy="seeded").count()
    waiting = Contact.objects.filter(status=Contact.Status.WAITING).count()
    # Contacts for which the engine left a candidate out at its limit: limits did bind.
    at_limit = psql(
        "SELECT count(*) FROM leads_contact WHERE decision->>'strategy' <> 'seeded' "
        """AND decision->'candidates' @> '[{"left_out": "at_limit"}]'""",
        DATABASE,
    )
    drifted = None
    if has_field(Operator, "open_load"):
        drifted = int(
            psql(
                f"SELECT count(*) FROM {Operator._meta.db_table} o "
                f"WHERE o.open_load <> {COUNTED_LOAD}",
                DATABASE,
            )
        )
    return {
        "over_limit": over_limit,
        "stored": stored,
        "created": created,
        "waiting": waiting,
        "at_limit": int(at_limit),
        "drifted": drifted,
    }


def format_check(check: dict) -> str:
    ok = check["over_limit"] == 0 and check["stored"] == check["created"]
    loads = ""
    if check.get("drifted") is not None:
        ok = ok and check["drifted"] == 0
        loads = f"; stored loads off their contacts: {check['drifted']}"
    return (
        f"operators over limit: {check['over_limit']}; contacts stored {check['stored']} / "
        f"201s received {check['created']} ({check['waiting']} waiting, "
        f"{check['at_limit']} with a candidate left out at its limit){loads}  "
        f"{'OK' if ok else 'FAIL'}"
    )


def format_queries(queries: dict) -> str:
    kinds = ", ".join(f"{kind} {count:.2f}" for kind, count in queries["kinds"].items())
    return f"{queries['mean']:.2f} (min {queries['min']}, max {queries['max']}; {kinds})"


def print_sweep(
    history: int, sweep: list[tuple[int, dict, dict]], queries: dict, check: dict, cpu: float
) -> None:
    print(f"\nIntake (POST /api/contacts/) and GET /health/, {history} stored contacts:")
    print(
        f"{'clients':>7} {'contacts/s':>10} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} "
        f"{'errors':>10} {'health/s':>8} {'h p99':>6} {'ratio':>5} {'app ms':>6} {'db ms':>5}"
    )
    for concurrency, intake, health in sweep:
        errors = {s: n for s, n in intake["statuses"].items() if s != "201"}
        errors.update({f"health {s}": n for s, n in health["statuses"].items() if s != "200"})
        print(
            f"{concurrency:>7} {intake['rate']:>10.0f} {intake['p50'] * 1000:>7.1f} "
            f"{intake['p95'] * 1000:>7.1f} {intake['p99'] * 1000:>7.1f} "
            f"{json.dumps(errors) if errors else 'none':>10} {health['rate']:>8.0f} "
            f"{health['p99'] * 1000:>6.1f} {intake['rate'] / health['rate']:>5.2f} "
            f"{intake['app_cpu'] * 1000:>6.2f} {intake['db_cpu'] * 1000:>5.2f}"
        )
    print(
        "app ms / db ms: CPU per intake request of gunicorn's processes / of their "
        "PostgreSQL backends"
    )
    print(f"SQL round trips per intake request: {format_queries(queries)}")
    print(f"Load process CPU: {cpu * 100:.0f}% of one core while it ran")
    print(f"Invariants: {format_check(check)}\n", flush=True)


def print_scaling(scaling: dict[int, dict]) -> None:
    """Contacts/s by history size, and the server CPU per contact: the rate moves with
    whatever else the machine runs meanwhile, the CPU a contact costs much less."""
    print(f"Scaling: intake at {SCALING_CONCURRENCY} clients by stored contacts")
    first = next(iter(scaling.values()))
    for history, result in scaling.items():
        cpu = result["app_cpu"] + result["db_cpu"]
        first_cpu = first["app_cpu"] + first["db_cpu"]
        print(
            f"{history:>9} contacts: {result['rate']:>5.0f} contacts/s "
            f"({result['rate'] / first['rate'] * 100:.0f}% of empty), "
            f"p99 {result['p99'] * 1000:.1f} ms, server CPU {cpu * 1000:.2f} ms per contact "
            f"({cpu / first_cpu * 100:.0f}% of empty)"
        )


if __name__ == "__main__":
    main()
