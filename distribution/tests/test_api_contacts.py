from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from distribution import contacts
from distribution.api.serializers import ContactSerializer
from distribution.models import Contact
from leads.models import Lead
from tests.factories import (
    ContactFactory,
    LeadFactory,
    OperatorFactory,
    OperatorSourceWeightFactory,
    SourceFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

CONTACT = {"lead": {"phone": "+79161234567", "name": "Anna"}, "payload": {"text": "Hi"}}


def test_contact_list_is_paginated_in_fixed_queries(api, django_assert_max_num_queries):
    for _ in range(20):
        ContactFactory(open=True)
        ContactFactory()

    with django_assert_max_num_queries(3):
        response = api.get("/api/contacts/")

    assert response.status_code == 200
    assert response.data["count"] == 40
    first = response.data["results"][0]
    assert set(first["lead"]) == {"id", "external_id", "phone", "email", "name"}
    assert set(first["source"]) == {"id", "code"}


@pytest.fixture
def assorted_contacts():
    """Contacts of two sources, two operators and two leads, on different days."""
    now = timezone.now()
    telegram, site = SourceFactory(), SourceFactory()
    ivan, maria = OperatorFactory(), OperatorFactory()
    anna, oleg = LeadFactory(), LeadFactory()
    return {
        "old": ContactFactory(source=telegram, lead=anna, created_at=now - timedelta(days=10)),
        "ivan": ContactFactory(source=telegram, lead=anna, open=True, operator=ivan),
        "maria": ContactFactory(source=site, lead=oleg, open=True, operator=maria),
        "closed": ContactFactory(
            source=site,
            lead=oleg,
            open=True,
            operator=ivan,
            status=Contact.Status.CLOSED,
            closed_at=now,
        ),
    }


@pytest.mark.parametrize(
    ("make_params", "expected"),
    [
        (lambda c: {"status": "open"}, {"ivan", "maria"}),
        (lambda c: {"status": "waiting"}, {"old"}),
        (lambda c: {"source": c["maria"].source_id}, {"maria", "closed"}),
        (lambda c: {"operator": c["ivan"].operator_id}, {"ivan", "closed"}),
        (lambda c: {"lead": c["old"].lead_id}, {"old", "ivan"}),
        (
            lambda c: {"created_after": (timezone.now() - timedelta(days=1)).isoformat()},
            {"ivan", "maria", "closed"},
        ),
        (
            lambda c: {"created_before": (timezone.now() - timedelta(days=1)).isoformat()},
            {"old"},
        ),
        (
            lambda c: {"status": "open", "operator": c["ivan"].operator_id},
            {"ivan"},
        ),
    ],
)
def test_contact_list_filters(api, assorted_contacts, make_params, expected):
    response = api.get("/api/contacts/", make_params(assorted_contacts))

    assert response.status_code == 200
    ids = {contact["id"] for contact in response.data["results"]}
    assert ids == {assorted_contacts[name].pk for name in expected}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "lost"}, "status"),
        ({"source": "telegram"}, "source"),
        ({"operator": 999999}, "operator"),
        ({"lead": -1}, "lead"),
        # Keyed by the parameter sent, not by an internal name ("created").
        ({"created_after": "last week"}, "created_after"),
        ({"created_before": "foo"}, "created_before"),
        # Valid where written, out of range once the database gets them in UTC.
        ({"created_after": "9999-12-31T23:59:59-14:00"}, "created_after"),
        ({"created_before": "0001-01-01T00:00:00+05:00"}, "created_before"),
    ],
)
def test_bad_contact_filters_are_400(api, params, field):
    response = api.get("/api/contacts/", params)

    assert response.status_code == 400
    assert set(response.data) == {field}


def test_a_page_past_the_end_is_404(api):
    response = api.get("/api/contacts/", {"page": 5})

    assert response.status_code == 404
    assert set(response.data) == {"detail"}


@pytest.fixture
def shared_source():
    """A source served by two operators, each with room."""
    source = SourceFactory()
    first = OperatorSourceWeightFactory(source=source).operator
    second = OperatorSourceWeightFactory(source=source).operator
    return source, first, second


def test_reassign_to_a_named_operator(api, shared_source):
    source, first, second = shared_source
    contact = ContactFactory(source=source, open=True, operator=first)

    response = api.post(f"/api/contacts/{contact.pk}/reassign/", {"operator": second.pk})

    assert response.status_code == 200
    assert response.data["operator"]["id"] == second.pk
    contact.refresh_from_db()
    assert (contact.status, contact.operator_id) == (Contact.Status.OPEN, second.pk)


def test_reassign_without_an_operator_follows_the_sources_rule(api, shared_source):
    source, first, second = shared_source
    contact = ContactFactory(source=source, open=True, operator=first)

    response = api.post(f"/api/contacts/{contact.pk}/reassign/", {})

    assert response.status_code == 200
    contact.refresh_from_db()
    assert contact.operator_id == second.pk


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"is_active": False}, "is inactive"),
        ({"max_open_contacts": 0}, "is at the limit"),
    ],
)
def test_reassign_to_an_operator_who_cannot_take_it_is_409(api, shared_source, change, reason):
    source, first, second = shared_source
    for attribute, value in change.items():
        setattr(second, attribute, value)
    second.save()
    contact = ContactFactory(source=source, open=True, operator=first)

    response = api.post(f"/api/contacts/{contact.pk}/reassign/", {"operator": second.pk})

    assert response.status_code == 409
    assert reason in response.data["detail"]
    contact.refresh_from_db()
    assert contact.operator_id == first.pk


def test_reassign_to_an_operator_off_the_source_is_409(api, shared_source):
    source, first, _ = shared_source
    stranger = OperatorFactory()
    contact = ContactFactory(source=source, open=True, operator=first)

    response = api.post(f"/api/contacts/{contact.pk}/reassign/", {"operator": stranger.pk})

    assert response.status_code == 409
    assert f"does not serve the source {source.code}" in response.data["detail"]


def test_reassign_a_closed_contact_is_409(api, shared_source):
    source, first, second = shared_source
    contact = ContactFactory(
        source=source,
        open=True,
        operator=first,
        status=Contact.Status.CLOSED,
        closed_at=timezone.now(),
    )

    response = api.post(f"/api/contacts/{contact.pk}/reassign/", {"operator": second.pk})

    assert response.status_code == 409
    contact.refresh_from_db()
    assert (contact.status, contact.operator_id) == (Contact.Status.CLOSED, first.pk)


@pytest.mark.parametrize("operator", [999999, "ivan", [1]])
def test_reassign_to_a_bad_operator_id_is_400(api, shared_source, operator):
    source, first, _ = shared_source
    contact = ContactFactory(source=source, open=True, operator=first)

    response = api.post(f"/api/contacts/{contact.pk}/reassign/", {"operator": operator})

    assert response.status_code == 400
    assert "operator" in response.data


def test_close_then_close_again(api):
    contact = ContactFactory(open=True)

    closed = api.post(f"/api/contacts/{contact.pk}/close/")
    again = api.post(f"/api/contacts/{contact.pk}/close/")

    assert closed.status_code == 200
    assert again.status_code == 409
    assert set(again.data) == {"detail"}
    contact.refresh_from_db()
    assert contact.status == Contact.Status.CLOSED


@pytest.mark.parametrize("flow", ["close", "reassign"])
def test_the_answer_to_a_close_or_reassign_needs_no_query_after_the_commit(
    flow, shared_source, django_assert_num_queries
):
    """A query after the commit fails if the database goes away just then, and the
    client is told about an error for a change that was stored (the outage drill)."""
    source, first, _ = shared_source
    contact = Contact.objects.get(pk=ContactFactory(source=source, open=True, operator=first).pk)

    if flow == "close":
        changed = contacts.close_contact(contact=contact)
    else:
        changed = contacts.reassign_contact(contact=contact)

    with django_assert_num_queries(0):
        answer = ContactSerializer(changed).data
    assert answer["lead"]["id"] == contact.lead_id


def test_staff_must_name_the_source(api):
    response = api.post("/api/contacts/", CONTACT)

    assert response.status_code == 400
    assert response.data == {"source": ["This field is required."]}
    assert not Contact.objects.exists()


@pytest.mark.parametrize("source", ["telegram\u0000", 5, ["telegram"]])
def test_a_source_no_code_can_be_is_400(api, source):
    SourceFactory(code="telegram")

    response = api.post("/api/contacts/", {**CONTACT, "source": source})

    assert response.status_code == 400
    assert response.data == {"source": ["Invalid value."]}
    assert not Contact.objects.exists()


@pytest.mark.parametrize(
    "payload",
    [
        {"text": "NUL \u0000 inside"},
        {"nested": [{"key\u0000": 1}]},
        [1, 2],
        "text",
    ],
)
def test_payloads_a_database_cannot_store_are_400(api, payload):
    source = SourceFactory()

    response = api.post("/api/contacts/", {**CONTACT, "source": source.code, "payload": payload})

    assert response.status_code == 400
    assert "payload" in response.data
    assert not Contact.objects.exists()


@pytest.mark.parametrize(
    "body",
    [
        b'{"source": "s", "lead": {"name": "\\ud800"}}',
        b'{"source": "s", "payload": ' + b'{"a": ' * 40 + b"1" + b"}" * 40 + b"}",
        b"[" * 50_000 + b"]" * 50_000,
        b'{"source": "s", "lead": {"phone": "+79161234567"}, "payload": {"x": 1e400}}',
        b'{"source": ',
    ],
)
def test_unparsable_bodies_are_400_in_the_error_shape(api, body):
    SourceFactory(code="s")

    response = api.generic("POST", "/api/contacts/", body, content_type="application/json")

    assert response.status_code == 400
    assert set(response.json()) == {"detail"}
    assert not Lead.objects.exists()


def test_a_bot_may_leave_out_its_source(bot_client):
    source = SourceFactory()

    response = bot_client(source).post("/api/contacts/", CONTACT)

    assert response.status_code == 201
    assert response.data["source"]["code"] == source.code
    assert Contact.objects.get(pk=response.data["id"]).source == source


def test_a_bot_naming_its_own_source_is_fine(bot_client):
    source = SourceFactory()

    response = bot_client(source).post("/api/contacts/", {**CONTACT, "source": source.code})

    assert response.status_code == 201


@pytest.mark.parametrize("named", ["other-bot", "no-such-source", 5])
def test_a_bot_cannot_send_contacts_for_another_source(bot_client, named):
    mine = SourceFactory()
    SourceFactory(code="other-bot")

    response = bot_client(mine).post("/api/contacts/", {**CONTACT, "source": named})

    assert response.status_code == 403
    assert response.data == {"detail": "This API key may only act for its own source."}
    assert not Contact.objects.exists()
    assert not Lead.objects.exists()


def test_a_bot_of_an_inactive_source_is_refused(bot_client):
    source = SourceFactory(is_active=False)

    response = bot_client(source).post("/api/contacts/", CONTACT)

    assert response.status_code == 400
    assert "source" in response.data
    assert not Contact.objects.exists()


def test_a_bot_reads_only_its_own_sources_contacts(bot_client):
    mine, theirs = ContactFactory(), ContactFactory()
    bot = bot_client(mine.source)

    listed = bot.get("/api/contacts/")
    filtered = bot.get("/api/contacts/", {"source": theirs.source_id})

    assert [contact["id"] for contact in listed.data["results"]] == [mine.pk]
    assert filtered.data["results"] == []
    assert bot.get(f"/api/contacts/{mine.pk}/").status_code == 200
    assert bot.get(f"/api/contacts/{theirs.pk}/").status_code == 404


def test_a_bot_cannot_close_or_reassign(bot_client, shared_source):
    source, first, second = shared_source
    contact = ContactFactory(source=source, open=True, operator=first)
    bot = bot_client(source)

    closed = bot.post(f"/api/contacts/{contact.pk}/close/")
    reassigned = bot.post(f"/api/contacts/{contact.pk}/reassign/", {"operator": second.pk})

    assert (closed.status_code, reassigned.status_code) == (403, 403)
    contact.refresh_from_db()
    assert (contact.status, contact.operator_id) == (Contact.Status.OPEN, first.pk)


def test_anonymous_cannot_send_or_read_contacts(db):
    source = SourceFactory()
    client = APIClient()

    sent = client.post("/api/contacts/", {**CONTACT, "source": source.code}, format="json")
    listed = client.get("/api/contacts/")

    assert (sent.status_code, listed.status_code) == (401, 401)
    assert sent["WWW-Authenticate"] == 'Bearer realm="api"'
    assert not Contact.objects.exists()


def test_a_bot_sees_its_contact_and_its_operator_but_not_the_decision(bot_client, api):
    source = SourceFactory()
    ivan = OperatorFactory(name="Ivan")
    OperatorSourceWeightFactory(source=source, operator=ivan)
    OperatorSourceWeightFactory(source=source, operator__name="Maria", operator__is_active=False)
    bot = bot_client(source)

    created = bot.post("/api/contacts/", CONTACT, format="json")
    read = bot.get(f"/api/contacts/{created.data['id']}/")
    listed = bot.get("/api/contacts/")

    assert created.status_code == 201
    for body in (created.data, read.data, listed.data["results"][0]):
        assert body["operator"] == {"id": ivan.pk, "name": "Ivan"}
        assert body["decision"] is None
    assert "Maria" not in created.content.decode() + read.content.decode()
    # Staff still read why it went to Ivan and not to Maria.
    staff_view = api.get(f"/api/contacts/{created.data['id']}/").data
    assert {c["name"] for c in staff_view["decision"]["candidates"]} == {"Ivan", "Maria"}


def test_an_operator_reads_its_contacts_without_the_decision():
    operator = OperatorFactory(user=UserFactory())
    contact = ContactFactory(open=True, operator=operator, decision={"strategy": "manual"})
    client = APIClient()
    client.force_authenticate(operator.user)

    mine = client.get("/api/me/contacts/").data["results"]
    closed = client.post(f"/api/contacts/{contact.pk}/close/").data

    assert [row["decision"] for row in mine] == [None]
    assert closed["decision"] is None
