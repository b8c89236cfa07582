import os
from html.parser import HTMLParser

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from distribution.models import Source
from distribution.sources import create_source_key
from tests.factories import StaffUserFactory


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    # The production hasher takes ~0.3 s per password on purpose; tests make many users.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


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


@pytest.fixture
def bot_client(db):
    """`bot_client(source)`: an API client for that source's bot, with a new API key."""

    def make(source: Source) -> APIClient:
        _, key = create_source_key(source=source)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
        return client

    return make


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """With REQUIRE_FULL_SUITE=1 (CI on PostgreSQL) a skipped test is a failed test."""
    report = yield
    if report.skipped and os.environ.get("REQUIRE_FULL_SUITE") == "1":
        report.outcome = "failed"
        report.longrepr = f"skipped, but REQUIRE_FULL_SUITE=1 forbids skips: {report.longrepr}"
    return report


class _FormReader(HTMLParser):
    """What a browser would submit for the first form with the given id (no buttons)."""

    def __init__(self, form_id: str) -> None:
        super().__init__()
        self.form_id = form_id
        self.inside = False
        self.data: dict[str, list[str]] = {}
        self.select: str | None = None
        self.select_first: str | None = None
        self.textarea: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = {key: value or "" for key, value in attrs}
        if tag == "form":
            self.inside = attr.get("id") == self.form_id
        if not self.inside or ("name" not in attr and tag != "option"):
            return
        if tag == "input" and attr.get("type") not in {"submit", "button", "file"}:
            if attr.get("type") not in {"checkbox", "radio"}:
                self.data.setdefault(attr["name"], []).append(attr.get("value", ""))
            elif "checked" in attr:
                self.data.setdefault(attr["name"], []).append(attr.get("value", "on"))
        elif tag == "select":
            self.select, self.select_first = attr["name"], None
        elif tag == "option" and self.select is not None:
            if self.select_first is None:
                self.select_first = attr.get("value", "")
            if "selected" in attr:
                self.data.setdefault(self.select, []).append(attr.get("value", ""))
        elif tag == "textarea":
            self.textarea = attr["name"]
            self.data[self.textarea] = [""]

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.inside = False
        elif tag == "select" and self.select is not None:
            self.data.setdefault(self.select, [self.select_first or ""])
            self.select = None
        elif tag == "textarea":
            self.textarea = None

    def handle_data(self, data: str) -> None:
        if self.textarea is not None:
            self.data[self.textarea][0] += data


@pytest.fixture
def form_data():
    """Read an HTML form out of a response as the browser would post it, to edit and send."""

    def read(response, form_id: str) -> dict[str, list[str]]:
        reader = _FormReader(form_id)
        reader.feed(response.content.decode())
        assert reader.data, f"no form {form_id!r} in the page"
        return reader.data

    return read
