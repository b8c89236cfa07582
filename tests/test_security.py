"""Access and configuration: production settings refuse unsafe values and pass Django's
deployment checks, HTTPS-only cookies and headers, admin login lockout, and no
credential ever written to a log."""

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from distribution.models import Contact
from distribution.sources import create_source_key, revoke_source_key
from tests.factories import OperatorFactory, OperatorSourceWeightFactory, SourceFactory

ROOT = Path(__file__).resolve().parent.parent
PRODUCTION_ENV = {
    "PRODUCTION": "1",
    "SECRET_KEY": "test-only-production-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
    "ALLOWED_HOSTS": "crm.example.com",
    "DEBUG": "0",
}


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    """manage.py in a fresh process with the given environment (the settings are read
    at import, so each configuration needs its own process)."""
    base = {k: v for k, v in os.environ.items() if k not in PRODUCTION_ENV and k != "HTTPS_ONLY"}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"DEBUG": "1"}, "DEBUG is on"),
        ({"SECRET_KEY": ""}, "SECRET_KEY is not set"),
        ({"SECRET_KEY": "dev-only-insecure-secret-key-change-me"}, "SECRET_KEY is not set"),
        # .env.example's placeholder, copied without a change.
        ({"SECRET_KEY": "replace-with-a-long-random-string"}, "SECRET_KEY is not set"),
        ({"ALLOWED_HOSTS": ""}, "ALLOWED_HOSTS is empty"),
    ],
)
def test_production_settings_refuse_to_start_when_unsafe(change, problem):
    result = manage("check", **{**PRODUCTION_ENV, **change})

    assert result.returncode != 0
    assert f"PRODUCTION=1 refuses to start: {problem}" in result.stderr


def test_production_settings_pass_the_deployment_checks():
    result = manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION_ENV)

    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_the_docker_build_can_collect_static_files_in_production_mode():
    # The Dockerfile's build step: PRODUCTION=1 from the image, a throwaway key.
    result = manage(
        "collectstatic", "--noinput", "--dry-run", PRODUCTION="1", SECRET_KEY="collectstatic-only"
    )

    assert result.returncode == 0, result.stderr


def test_without_the_production_flag_the_defaults_still_start():
    assert manage("check").returncode == 0


@pytest.fixture
def https_only(settings):
    """What HTTPS_ONLY (on with PRODUCTION=1) sets, for requests in this process."""
    settings.SECURE_SSL_REDIRECT = True
    settings.SESSION_COOKIE_SECURE = True
    settings.CSRF_COOKIE_SECURE = True
    settings.SECURE_HSTS_SECONDS = 31_536_000
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    settings.SECURE_HSTS_PRELOAD = True


def test_https_only_redirects_plain_http_except_the_health_check(db, https_only):
    client = Client()

    redirect = client.get("/api/contacts/")
    health = client.get("/health/")

    assert redirect.status_code == 301
    assert redirect["Location"] == "https://testserver/api/contacts/"
    assert health.status_code == 200


def test_https_answers_carry_the_security_headers(db, https_only):
    response = Client().get("/admin/login/", secure=True)

    assert response.status_code == 200
    assert response["Strict-Transport-Security"] == ("max-age=31536000; includeSubDomains; preload")
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"
    assert response.cookies["csrftoken"]["secure"]


def admin_login(client: Client, password: str) -> int:
    response = client.post("/admin/login/?next=/admin/", {"username": "boss", "password": password})
    return response.status_code


def test_admin_login_locks_a_username_and_address_after_repeated_failures(
    django_user_model, settings
):
    django_user_model.objects.create_user("boss", password="right-password", is_staff=True)
    attacker = Client(REMOTE_ADDR="203.0.113.9")

    failures = [admin_login(attacker, f"guess-{n}") for n in range(settings.AXES_FAILURE_LIMIT)]

    assert failures[:-1] == [200] * (settings.AXES_FAILURE_LIMIT - 1)  # the form again
    assert failures[-1] == 429
    # Locked: even the right password is refused from there.
    assert admin_login(attacker, "right-password") == 429
    assert "_auth_user_id" not in attacker.session
    # The same member of staff elsewhere is not locked out.
    elsewhere = Client(REMOTE_ADDR="198.51.100.7")
    assert admin_login(elsewhere, "right-password") == 302
    assert "_auth_user_id" in elsewhere.session


def test_credentials_never_reach_the_logs(db, staff_user, caplog):
    source = SourceFactory(code="bot")
    OperatorSourceWeightFactory(source=source, operator=OperatorFactory())
    _, key = create_source_key(source=source)
    api_key, revoked = create_source_key(source=source)
    revoke_source_key(api_key=api_key)
    token = Token.objects.create(user=staff_user).key
    body = {"lead": {"phone": "+79161234567"}, "payload": {"text": "Hi"}}
    caplog.set_level(logging.DEBUG)

    statuses = [
        APIClient(headers={"Authorization": auth}).post("/api/contacts/", data, format="json")
        for auth, data in [
            (f"Bearer {key}", body),
            (f"Bearer {key}", {"lead": {}}),
            (f"Bearer {revoked}", body),
            (f"Bearer {key}x", body),
            (f"Token {token}", body),
            (f"Token {token}", {**body, "source": "bot"}),
        ]
    ]

    assert [response.status_code for response in statuses] == [201, 400, 401, 401, 400, 201]
    assert Contact.objects.count() == 2
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "/api/contacts/" in logged
    for secret in (key, revoked, token, key.partition(".")[2], revoked.partition(".")[2]):
        assert secret not in logged


def test_a_sqlite_database_url_serves_a_migrated_file(tmp_path):
    database = tmp_path / "crm.sqlite3"

    migrated = manage("migrate", "--noinput", DATABASE_URL=f"sqlite:///{database}")
    checked = manage("check", DATABASE_URL=f"sqlite:///{database}")

    assert migrated.returncode == 0, migrated.stderr
    assert checked.returncode == 0, checked.stderr
    assert database.stat().st_size > 0


def test_a_database_url_of_another_kind_is_refused_with_the_kinds_it_takes():
    result = manage("check", DATABASE_URL="mysql://crm@127.0.0.1/crm")

    assert result.returncode != 0
    assert "DATABASE_URL must be postgres://" in result.stderr
    assert "sqlite:///" in result.stderr
