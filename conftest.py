import os

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.factories import StaffUserFactory


@pytest.fixture
def staff_user(db):
    return StaffUserFactory()


@pytest.fixture
def api(staff_user) -> APIClient:
    """An API client authenticated as staff with a DRF token, as a bot or script would be."""
    client = APIClient()
    token = Token.objects.create(user=staff_user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """With REQUIRE_FULL_SUITE=1 (CI on PostgreSQL) a skipped test is a failed test."""
    report = yield
    if report.skipped and os.environ.get("REQUIRE_FULL_SUITE") == "1":
        report.outcome = "failed"
        report.longrepr = f"skipped, but REQUIRE_FULL_SUITE=1 forbids skips: {report.longrepr}"
    return report
