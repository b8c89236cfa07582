"""The intake's hot path: how many statements a bot's contact costs, and the lead race
handled without savepoints (see bench/README.md)."""

import json
from types import SimpleNamespace

import pytest
from django.db import connection
from rest_framework import serializers
from rest_framework.test import APIClient

from distribution.api import authentication
from distribution.api.serializers import ContactSerializer
from distribution.models import Contact, Source
from leads import queries
from leads.identity import build_identity
from leads.models import Lead
from leads.services import find_or_create_lead
from tests.factories import (
    ContactFactory,
    LeadFactory,
    OperatorFactory,
    OperatorSourceWeightFactory,
    SourceApiKeyFactory,
    SourceFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def hot_path_only(settings):
    """The intake's own statements, plus the key's last-used mark (one conditional
    UPDATE, at most once a minute per key and process: the memo is cleared, so every
    test pays it once). The throttle's shared cache (a few statements on the database
    cache, see tests/test_shared_throttle.py) is left out: a per-process cache here."""
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    authentication._key_use_noted.clear()
    yield
    authentication._key_use_noted.clear()


@pytest.fixture
def bot() -> tuple[APIClient, Source]:
    source = SourceFactory(code="telegram-bot")
    for _ in range(3):
        OperatorSourceWeightFactory(source=source, operator=OperatorFactory())
    key = "0123456789ab.secret-of-the-bot"
    SourceApiKeyFactory(source=source, key=key)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client, source


# PostgreSQL writes the contact's events, history step and operator's load in the
# contact's statement; SQLite in three more.
EVENTS_APART = 0 if connection.vendor == "postgresql" else 3
KEY_USE = 1  # the key's last-used mark (see hot_path_only)


@pytest.mark.parametrize(
    ("lead", "statements"),
    [
        # key, BEGIN, match (locks the lead), insert lead, find its own operator, lock
        # operators, candidates, insert contact with its events (created, assigned),
        # history and load, COMMIT
        ({"external_id": "new-lead", "email": "new@example.com"}, 9),
        # a known lead: no insert
        ({"external_id": "known"}, 8),
    ],
)
def test_a_bots_contact_takes_a_fixed_number_of_statements(
    bot, django_assert_num_queries, lead, statements
):
    client, source = bot
    LeadFactory(external_id="known")

    with django_assert_num_queries(statements + EVENTS_APART + KEY_USE):
        response = client.post(
            "/api/contacts/", {"source": source.code, "lead": lead}, format="json"
        )

    assert response.status_code == 201
    assert response.data["operator"] is not None


def test_round_robin_stores_the_credits_in_one_more_statement(bot, django_assert_num_queries):
    client, source = bot
    Source.objects.filter(pk=source.pk).update(strategy=Source.Strategy.ROUND_ROBIN)

    with django_assert_num_queries(10 + EVENTS_APART + KEY_USE):
        response = client.post(
            "/api/contacts/", {"source": source.code, "lead": {"external_id": "rr"}}, format="json"
        )

    assert response.status_code == 201


def test_a_lead_inserted_by_a_racing_request_is_found_on_the_next_match(monkeypatch):
    """The match saw no lead; before our insert, another request inserted it."""
    identity = build_identity(external_id="raced", phone="+79161234567")
    insert_lead = queries.insert_lead

    def racing_insert(**values):
        LeadFactory(external_id=None, phone="+79161234567")
        monkeypatch.setattr(queries, "insert_lead", insert_lead)
        assert insert_lead(**values) is None  # ON CONFLICT: nothing written, no error
        return None

    monkeypatch.setattr(queries, "insert_lead", racing_insert)

    lead, conflicts = find_or_create_lead(identity=identity)

    winner = Lead.objects.get(phone="+79161234567")
    assert lead == winner
    assert lead.external_id == "raced"  # the identifier it lacked was added
    assert conflicts == []
    assert Lead.objects.count() == 1


@pytest.mark.parametrize(
    "contact",
    [
        lambda: ContactFactory(open=True, lead_conflicts=[{"field": "email", "reason": "x"}]),
        lambda: ContactFactory(lead=LeadFactory(phone=None, email=None, name="")),
        lambda: ContactFactory(closed=True, payload={"text": "Привет", "n": [1, 2.5, None]}),
    ],
)
def test_the_written_out_contact_is_what_drfs_fields_give(contact):
    contact = Contact.objects.select_related("lead", "source", "operator").get(pk=contact().pk)
    # As staff read it: with the decision (bots and operators get null there).
    staff = SimpleNamespace(user=SimpleNamespace(is_staff=True))
    serializer = ContactSerializer(contact, context={"request": staff})

    generic = serializers.ModelSerializer.to_representation(serializer, contact)

    assert serializer.data == generic
    assert json.dumps(serializer.data) == json.dumps(generic)
