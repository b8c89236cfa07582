"""Bots' throttling counts once for every process (issue 14, shared throttling): two
gunicorn instances on one database, one source's requests spread over both, one limit.

Uses a fresh database beside the configured one, as tests/test_entrypoint.py does
(PostgreSQL when DATABASE_URL is set, otherwise a SQLite file).
"""

import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from urllib.error import HTTPError

import pytest

from distribution.api.authentication import SourceKeyRateThrottle
from tests.factories import SourceFactory
from tests.test_entrypoint import (  # noqa: F401 (fixtures)
    ROOT,
    app_env,
    free_port,
    fresh_database_url,
    run_entrypoint,
    wait_for_health,
)
from tests.test_security import manage

MAKE_KEY = (
    "from distribution.models import Source;"
    "from distribution.sources import create_source_key;"
    "source = Source.objects.create(code='web', name='Web');"
    "print(create_source_key(source=source)[1])"
)


@contextmanager
def gunicorn(env: dict[str, str]) -> Iterator[str]:
    """A gunicorn instance of one worker, as production serves it; yields its base URL."""
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "crm.wsgi:application", "-c", "gunicorn.conf.py"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{env['PORT']}"
    try:
        wait_for_health(f"{base}/health/", server)
        yield base
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.communicate(timeout=30)


def status_of(url: str, key: str) -> int:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except HTTPError as error:
        return error.code


def test_two_processes_share_one_bot_throttle(app_env):  # noqa: F811 (the fixture)
    env = {**app_env, "COLLECTSTATIC": "0", "API_BOT_THROTTLE_RATE": "5/min"}
    key = run_entrypoint(env, sys.executable, "manage.py", "shell", "-c", MAKE_KEY).split()[-1]

    with ExitStack() as servers:
        bases = [
            servers.enter_context(
                gunicorn({**env, "WEB_CONCURRENCY": "1", "PORT": str(free_port())})
            )
            for _ in range(2)
        ]
        # Alternately to each process: 5 of the 10 would pass in each if each counted alone.
        statuses = [status_of(f"{bases[n % 2]}/api/contacts/", key) for n in range(10)]

    assert statuses == [200] * 5 + [429] * 5


@pytest.mark.django_db
def test_a_sources_count_starts_again_a_period_after_its_first_request(
    settings, bot_client, monkeypatch
):
    """A window and a count, not the time of every request (whose list each request
    would read and write whole): the request made 30 s into a window counts in it only."""
    settings.API_BOT_THROTTLE_RATE = "2/min"
    clock = [1000.0]
    monkeypatch.setattr(SourceKeyRateThrottle, "timer", lambda self: clock[0])
    bot = bot_client(SourceFactory())

    first = bot.get("/api/contacts/").status_code
    clock[0] += 30
    second = bot.get("/api/contacts/").status_code
    clock[0] += 15
    throttled = bot.get("/api/contacts/")
    clock[0] += 15
    next_window = [bot.get("/api/contacts/").status_code for _ in range(3)]

    assert [first, second] == [200, 200]
    assert (throttled.status_code, throttled["Retry-After"]) == (429, "15")
    assert next_window == [200, 200, 429]


SHOW_CACHE = "from django.conf import settings; print(settings.CACHES['default']['BACKEND'])"


@pytest.mark.parametrize(
    ("redis_url", "backend"),
    [
        ("", "django.core.cache.backends.db.DatabaseCache"),
        ("redis://cache.internal:6379/0", "django.core.cache.backends.redis.RedisCache"),
    ],
)
def test_the_cache_is_the_database_unless_redis_url_names_a_redis(redis_url, backend):
    result = manage("shell", "-c", SHOW_CACHE, REDIS_URL=redis_url)

    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-1] == backend


def test_a_redis_url_of_another_kind_is_refused_without_showing_its_password():
    result = manage("check", REDIS_URL="memcached://crm:s3cret@cache.internal:11211")

    assert result.returncode != 0
    assert "REDIS_URL must be redis://" in result.stderr
    assert "s3cret" not in result.stderr
