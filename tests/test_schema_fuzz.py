"""Schema-driven fuzzing: schemathesis makes requests, valid and invalid, from the
app's own /api/schema/ and sends them to the app in process, logged in as staff.
Every answer must be below 500 and match what the schema documents for it.

Bounded (examples per operation, derandomized) so it costs well under a minute on
either database and fails the same way on every run.
"""

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from crm.wsgi import application
from distribution.contacts import close_contact, register_contact
from distribution.models import Source
from distribution.operators import create_operator
from distribution.sources import set_source_weights
from events.webhooks import create_endpoint
from leads.identity import build_identity

# The schema view needs no database, so loading it while collecting is safe.
schema = schemathesis.openapi.from_wsgi("/api/schema/", application)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture(autouse=True)
def keep_the_test_connection():
    """Called directly, the WSGI app closes the database connection after each request,
    and the test's transaction with it; Django's test client unhooks the same signal."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def world(db) -> dict[str, list[int]]:
    """Rows for the generated requests to act on: the ids of each collection."""
    ivan = create_operator(name="Ivan", max_open_contacts=2)
    maria = create_operator(name="Maria", max_open_contacts=1)
    idle = create_operator(name="Idle", is_active=False)
    telegram = Source.objects.create(code="telegram", name="Telegram")
    site = Source.objects.create(code="site", name="Site", strategy=Source.Strategy.ROUND_ROBIN)
    set_source_weights(source=telegram, weights={ivan.pk: 3, maria.pk: 1})
    set_source_weights(source=site, weights={maria.pk: 1, idle.pk: 2})
    contacts = [
        register_contact(
            source=(telegram, site)[number % 2],
            identity=build_identity(phone=f"+7916000{number:04d}", email=f"l{number}@x.org"),
            payload={"text": "Hello"},
        )
        for number in range(6)
    ]
    close_contact(contact=contacts[0])
    return {
        "operators": [ivan.pk, maria.pk, idle.pk],
        "sources": [telegram.pk, site.pk],
        "leads": sorted({contact.lead_id for contact in contacts}),
        "contacts": [contact.pk for contact in contacts],
        "webhooks": [create_endpoint(url="https://hooks.example.com/crm", sources=["site"]).pk],
    }


@pytest.fixture
def staff_headers(staff_user) -> dict[str, str]:
    token = Token.objects.create(user=staff_user)
    return {"Authorization": f"Token {token.key}"}


@schema.parametrize()
@settings(
    max_examples=25,
    derandomize=True,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_generated_requests_get_documented_answers(case, world, staff_headers):
    # Most generated ids name nothing: point the non-negative ones at existing rows,
    # so updates, closes and reassignments run too (negative and odd ones stay 404s).
    object_id = (case.path_parameters or {}).get("id")
    if type(object_id) is int and object_id >= 0:
        ids = world[case.operation.path.split("/")[2]]
        case.path_parameters["id"] = ids[object_id % len(ids)]
    case.call_and_validate(headers=staff_headers, checks=CHECKS)
