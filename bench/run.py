"""`make bench`: the intake under load on PostgreSQL, from an empty database to 1M contacts.

For each history size (0, 100k and 1M stored contacts by default):
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

    .venv/bin/python -m bench.run [--duration 10] [--history 0,100000,1000000]
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
    args = parser.parse_args()
    histories = sorted(int(size) for size in args.history.split(","))
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    setup_django()
    print(f"{os.cpu_count()} cores; load average before: {os.getloadavg()[0]:.1f}", flush=True)
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
    print(f"load average after: {os.getloadavg()[0]:.1f}")


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


def prepare(history: int, keys_file: Path) -> Path:
    """Migrate, seed, free half the operators from their limits, write the bots' keys."""
    from django.core.management import call_command
    from django.db import connections

    from distribution.models import Operator, Source
    from distribution.operators import update_operator
    from distribution.sources import create_source_key

    call_command("migrate", verbosity=0)
    started = time.monotonic()
    call_command("seed", contacts=history, stdout=io.StringIO(), **SETUP)
    psql("VACUUM ANALYZE", DATABASE)
    # The seed's WAL would otherwise trigger a checkpoint during the measured runs (and
    # full-page writes after it), more of both the more history was seeded.
    psql("CHECKPOINT", DATABASE)
    # And the operating system's write-back of it, for the same reason.
    subprocess.run(["sync"], check=True)
    print(f"history {history:>9}: seeded in {time.monotonic() - started:.0f} s", flush=True)
    for operator in Operator.objects.order_by("id")[::2]:
        update_operator(operator=operator, max_open_contacts=OUT_OF_REACH)
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


class Bench:
    """Runs the load process and keeps what every run received (for the invariants)."""

    def __init__(self, *, port: int, keys_file: Path, duration: float) -> None:
        self.port, self.keys_file, self.duration = port, keys_file, duration
        self.server = 0  # gunicorn's master, once started
        self.created = 0  # 201s received over every run, warm-ups and probe included
        self.runs = 0
        self.cpu = 0.0
        self.elapsed = 0.0

    def intake(self, concurrency: int, seconds: float | None = None) -> dict:
        close_bench_contacts()
        result = self._load("intake", concurrency, seconds)
        self.created += result["statuses"].get("201", 0)
        result["rate"] = result["statuses"].get("201", 0) / result["elapsed"]
        return result

    def health(self, concurrency: int) -> dict:
        result = self._load("health", concurrency, None)
        result["rate"] = result["statuses"].get("200", 0) / result["elapsed"]
        return result

    def client_cpu(self) -> float:
        """The load process's CPU time as a share of the wall time it ran."""
        return self.cpu / self.elapsed if self.elapsed else 0.0

    def _load(self, kind: str, concurrency: int, seconds: float | None) -> dict:
        self.runs += 1
        command = [sys.executable, "-m", "bench.load", kind, "--port", str(self.port)]
        command += ["--concurrency", str(concurrency), "--duration", str(seconds or self.duration)]
        command += ["--keys", str(self.keys_file), "--leads", str(SETUP["leads"])]
        command += ["--tag", f"{os.getpid()}-{self.runs}"]
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


def close_bench_contacts() -> None:
    """Close what earlier runs opened, as operators would: an intake-only run otherwise
    leaves the operators without a binding limit more open contacts to count each run.

    Then vacuum, as autovacuum would on a server configured as usual (it is off on
    this machine). Otherwise every closed contact leaves a dead entry in the partial
    index of open contacts, which each later load count visits: after a few runs
    that was 2 ms of PostgreSQL's CPU per count, more than the whole intake costs.
    """
    psql(
        "UPDATE leads_contact SET status = 'closed', closed_at = now() "
        "WHERE status = 'open' AND decision->>'strategy' <> 'seeded'",
        DATABASE,
    )
    psql("VACUUM ANALYZE leads_contact", DATABASE)


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
    requests = Requests("intake", keys, SETUP["leads"], f"probe{os.getpid()}")
    client = Client()
    counts = []
    statements: Counter = Counter()
    for _ in range(PROBE_REQUESTS):
        head, body = requests.next().split(b"\r\n\r\n", 1)
        key = next(line for line in head.split(b"\r\n") if line.startswith(b"Authorization"))
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
    """Read from the database: operators over their limit, contacts stored since seeding."""
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
    return {
        "over_limit": over_limit,
        "stored": stored,
        "created": created,
        "waiting": waiting,
        "at_limit": int(at_limit),
    }


def format_check(check: dict) -> str:
    verdict = "OK" if check["over_limit"] == 0 and check["stored"] == check["created"] else "FAIL"
    return (
        f"operators over limit: {check['over_limit']}; contacts stored {check['stored']} / "
        f"201s received {check['created']} ({check['waiting']} waiting, "
        f"{check['at_limit']} with a candidate left out at its limit)  {verdict}"
    )


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
    kinds = ", ".join(f"{kind} {count:.2f}" for kind, count in queries["kinds"].items())
    print(
        f"SQL round trips per intake request: {queries['mean']:.2f} "
        f"(min {queries['min']}, max {queries['max']}; {kinds})"
    )
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
