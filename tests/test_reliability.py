"""Faults the API must answer cleanly: an unreachable database is a 503 with a JSON
body, an oversized body a 413; and every request leaves one JSON log line with ids only.

A real PostgreSQL outage, killed workers and two app instances on one database are
drilled outside the suite (`python -m bench.drills`, run by .ci/run after the tests):
they stop the PostgreSQL the suite runs on.
"""

import json
import logging
from unittest import mock

import pytest
from django.db import InterfaceError, OperationalError

from distribution.models import Contact
from leads.models import Lead
from tests.factories import (
    ContactFactory,
    OperatorFactory,
    OperatorSourceWeightFactory,
    SourceFactory,
)

pytestmark = pytest.mark.django_db

BODY = {
    "source": "bot",
    "lead": {"phone": "+79161234567", "email": "anna@example.com", "name": "Anna"},
}


@pytest.fixture
def source(db):
    source = SourceFactory(code="bot")
    OperatorSourceWeightFactory(source=source, operator=OperatorFactory())
    return source


@pytest.mark.parametrize(
    "error",
    [
        OperationalError("connection failed: Connection refused"),
        OperationalError("terminating connection due to administrator command"),
        InterfaceError("connection already closed"),
    ],
)
def test_a_database_that_goes_away_is_a_503_with_a_json_body(api, source, error):
    # Where the connection breaks in a real outage: inside the intake's transaction.
    with mock.patch("distribution.contacts.choose_operator", side_effect=error):
        response = api.post("/api/contacts/", BODY, format="json")

    assert response.status_code == 503
    assert response.json() == {"detail": "The database is unavailable; retry shortly."}
    assert response["Retry-After"] == "5"
    assert not Lead.objects.exists()


def test_a_body_over_the_limit_is_a_413_before_it_is_read(api, source, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    body = {**BODY, "payload": {"text": "x" * 2000}}

    response = api.post("/api/contacts/", body, format="json")

    assert response.status_code == 413
    assert response.json() == {"detail": "The request body is over the limit of 1024 bytes."}
    assert not Contact.objects.exists()


def request_lines(caplog) -> list[dict]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == "crm.requests"]


def test_every_request_logs_one_json_line_with_ids_only(api, source, caplog):
    caplog.set_level(logging.INFO, logger="crm.requests")

    created = api.post("/api/contacts/", BODY, format="json").json()
    api.get("/api/leads/", {"search": "+79161234567"})
    api.post(f"/api/contacts/{created['id']}/close/")

    first, search, close = request_lines(caplog)
    assert set(first) == {"method", "path", "status", "duration_ms", "source", "contact"}
    assert first["method"] == "POST"
    assert first["path"] == "/api/contacts/"
    assert first["status"] == 201
    assert first["duration_ms"] >= 0
    assert (first["source"], first["contact"]) == ("bot", created["id"])
    # No query string: a search is often a phone number.
    assert search["path"] == "/api/leads/"
    assert close["path"] == f"/api/contacts/{created['id']}/close/"
    logged = json.dumps([first, search, close])
    for personal in ("+79161234567", "79161234567", "anna@example.com", "Anna"):
        assert personal not in logged


def test_a_bots_failed_request_is_logged_with_its_source(bot_client, source, caplog):
    caplog.set_level(logging.INFO, logger="crm.requests")

    bot_client(source).post("/api/contacts/", {"lead": {}}, format="json")

    [line] = request_lines(caplog)
    assert (line["status"], line["source"], line["contact"]) == (400, "bot", None)


def test_a_server_error_is_logged_as_a_500(api, caplog):
    contact = ContactFactory()
    caplog.set_level(logging.INFO, logger="crm.requests")
    api.raise_request_exception = False

    with mock.patch("distribution.contacts.close_contact", side_effect=RuntimeError("bug")):
        response = api.post(f"/api/contacts/{contact.pk}/close/")

    assert response.status_code == 500
    [line] = request_lines(caplog)
    assert line["status"] == 500
