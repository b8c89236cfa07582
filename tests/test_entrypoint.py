"""The Docker image's entrypoint, run outside Docker: it migrates a fresh database,
runs a one-off command when given one, and serves the app with gunicorn.

Uses a fresh database beside the configured one (PostgreSQL when DATABASE_URL is
set, as in CI's second run; otherwise a SQLite file).
"""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.error import URLError

import dj_database_url
import psycopg
import pytest

ROOT = Path(__file__).resolve().parent.parent
ENTRYPOINT = ROOT / "scripts" / "docker-entrypoint.sh"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def fresh_database_url(tmp_path):
    configured = os.environ.get("DATABASE_URL")
    if not configured:
        yield ""
        return
    config = dj_database_url.parse(configured)
    name = f"crm_entrypoint_{os.getpid()}"
    admin_dsn = (
        f"host={config['HOST']} port={config['PORT'] or 5432} user={config['USER']} dbname=postgres"
    )
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"postgres://{config['USER']}@{config['HOST']}:{config['PORT'] or 5432}/{name}"
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def app_env(fresh_database_url, tmp_path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "DATABASE_URL", "SQLITE_"))
    }
    env.update(
        PYTHON=sys.executable,
        DATABASE_URL=fresh_database_url,
        SQLITE_PATH=str(tmp_path / "entrypoint.sqlite3"),
        SECRET_KEY="entrypoint-test-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        DEBUG="0",
        ALLOWED_HOSTS="127.0.0.1",
        HOST="127.0.0.1",
        PORT=str(free_port()),
        WEB_CONCURRENCY="2",
        GUNICORN_ACCESS_LOG="",
        # Collected from nothing, as in a fresh checkout.
        STATIC_ROOT=str(tmp_path / "static"),
    )
    return env


def run_entrypoint(env: dict[str, str], *command: str) -> str:
    result = subprocess.run(
        [str(ENTRYPOINT), *command], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def start_entrypoint(env: dict[str, str], *command: str) -> subprocess.Popen:
    """The entrypoint as a long-running process, in its own group (stopped with killpg)."""
    return subprocess.Popen(
        [str(ENTRYPOINT), *command],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def request(url: str, token: str | None = None, body: dict | None = None) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Token {token}"
    data = json.dumps(body).encode() if body is not None else None
    with urllib.request.urlopen(urllib.request.Request(url, data, headers), timeout=10) as resp:
        return resp.status, json.loads(resp.read())


def wait_for_health(url: str, server: subprocess.Popen) -> dict:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert server.poll() is None, server.communicate()[1]
        try:
            return request(url)[1]
        except (URLError, ConnectionError):
            time.sleep(0.3)
    raise AssertionError("gunicorn did not answer /health/ within 60 s")


def test_entrypoint_migrates_runs_commands_and_serves_with_gunicorn(app_env):
    setup = (
        "from distribution.models import Operator, OperatorSourceWeight, Source;"
        "s = Source.objects.create(code='web', name='Web');"
        "o = Operator.objects.create(name='Ivan', max_open_contacts=1);"
        "OperatorSourceWeight.objects.create(source=s, operator=o, weight=1)"
    )
    run_entrypoint(app_env, sys.executable, "manage.py", "shell", "-c", setup)
    run_entrypoint(
        {**app_env, "DJANGO_SUPERUSER_PASSWORD": "entrypoint-pass-1"},
        sys.executable,
        "manage.py",
        "createsuperuser",
        "--noinput",
        "--username",
        "boss",
        "--email",
        "boss@example.com",
    )
    output = run_entrypoint(app_env, sys.executable, "manage.py", "drf_create_token", "boss")
    token = output.splitlines()[-1].split()[2]  # "Generated token <key> for user boss"

    server = start_entrypoint(app_env)
    try:
        base = f"http://127.0.0.1:{app_env['PORT']}"
        assert wait_for_health(f"{base}/health/", server)["status"] == "ok"
        status, contact = request(
            f"{base}/api/contacts/", token, {"source": "web", "lead": {"phone": "+79161234567"}}
        )
        assert status == 201
        assert contact["operator"]["name"] == "Ivan"
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    assert server.returncode == 0


def fetch(url: str) -> tuple[int, str, str]:
    """Status, content type and body of a GET."""
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.headers["Content-Type"], response.read().decode()


def test_served_from_a_checkout_the_admin_has_its_styles_and_swagger_its_scripts(app_env):
    """DEBUG off, nothing collected beforehand: the entrypoint collects the static files
    and WhiteNoise serves them, so the admin is styled and Swagger UI is not blank."""
    server = start_entrypoint(app_env)
    try:
        base = f"http://127.0.0.1:{app_env['PORT']}"
        wait_for_health(f"{base}/health/", server)
        login = fetch(f"{base}/admin/login/")[2]
        docs = fetch(f"{base}/api/docs/")[2]
        stylesheets = re.findall(r'<link rel="stylesheet" href="([^"]+)"', login)
        scripts = re.findall(r'<script src="([^"]+)"', docs)
        assert stylesheets and scripts
        for path in stylesheets + scripts:
            status, content_type, _ = fetch(base + path)
            assert status == 200, path
            assert content_type.split(";")[0] in {"text/css", "text/javascript"}, path
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def test_the_worker_runs_through_the_entrypoint_and_stops_cleanly_on_sigterm(app_env):
    """As docker-compose's worker service runs it: migrate, then `run_worker`."""
    worker = start_entrypoint(app_env, sys.executable, "manage.py", "run_worker")
    try:
        deadline = time.monotonic() + 60
        # A worker that exits on its own fails below, with its log.
        while worker.poll() is None and not worker_has_beaten(app_env):
            assert time.monotonic() < deadline, "the worker wrote no heartbeat within 60 s"
            time.sleep(0.5)
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
        _, log = worker.communicate(timeout=30)
    assert worker.returncode == 0, log
    assert log.strip().splitlines()[-1] == '{"worker": "stopped"}'


def worker_has_beaten(env: dict[str, str]) -> bool:
    """Asked with manage.py itself, not through the entrypoint: another entrypoint's
    migrate, collectstatic and catalogue compiling beside the worker's own, every half
    second, is a race this test is not about. False until the worker's has migrated."""
    read = "from core.models import Heartbeat; print(Heartbeat.objects.exists())"
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", read],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    # The last word: the shell first says how many objects it imported.
    return result.stdout.split()[-1:] == ["True"]
