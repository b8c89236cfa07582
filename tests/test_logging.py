"""What the logs say, read from a fresh process's stderr as an operator of the service
would read it (the settings configure logging at import)."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PRODUCTION_ENV = {
    "PRODUCTION": "1",
    "SECRET_KEY": "test-only-production-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
    "ALLOWED_HOSTS": "crm.example.com",
    "DEBUG": "0",
}
# One request through the whole stack (middleware, logging), no database needed.
REQUEST = """
import django
django.setup()
from django.test import Client
Client(raise_request_exception=False).get({path!r}, HTTP_HOST={host!r})
"""


def stderr_of_one_request(path: str, host: str, **env: str) -> str:
    base = {k: v for k, v in os.environ.items() if k not in PRODUCTION_ENV}
    result = subprocess.run(
        [sys.executable, "-c", REQUEST.format(path=path, host=host)],
        cwd=ROOT,
        env={**base, "DJANGO_SETTINGS_MODULE": "crm.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stderr


def test_a_4xx_in_development_is_one_line():
    stderr = stderr_of_one_request("/api/contacts/", "localhost", DEBUG="1")

    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert '"status": 401' in lines[0]


def test_a_foreign_host_in_production_is_one_warning_line():
    stderr = stderr_of_one_request("/health/", "evil.example.net", **PRODUCTION_ENV)

    refused = [line for line in stderr.splitlines() if "evil.example.net" in line]
    assert len(refused) == 1, stderr
    assert refused[0].startswith("Invalid HTTP_HOST header: 'evil.example.net'")
    assert "Traceback" not in stderr
    assert '"status": 400' in stderr  # and the request's own line, as for any request
