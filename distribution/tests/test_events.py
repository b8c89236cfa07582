"""Every change a contact or an operator goes through leaves an event in its own
transaction, and /api/events/ reads them after a cursor, scoped for bots."""

import pytest
from django.db import transaction

from core.errors import Conflict
from distribution import operators
from distribution.api.serializers import ContactSerializer
from distribution.contacts import close_contact, reassign_contact, register_contact
from distribution.models import Contact
from events.models import Event
from leads.identity import build_identity
from tests.factories import (
    ContactFactory,
    OperatorFactory,
    OperatorSourceWeightFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_settling(settings):
    settings.EVENT_FEED_SETTLE_SECONDS = 0


def types() -> list[str]:
    return list(Event.objects.values_list("type", flat=True))


def intake(source, phone="+79161234567") -> Contact:
    return register_contact(source=source, identity=build_identity(phone=phone))


def test_an_assigned_intake_is_created_then_assigned_and_a_waiting_one_only_created():
    weight = OperatorSourceWeightFactory(operator__max_open_contacts=1)

    given = intake(weight.source, "+79161234567")
    waiting = intake(weight.source, "+79161234568")

    events = list(Event.objects.all())
    assert [(e.type, e.data["contact"]["id"]) for e in events] == [
        ("contact.created", given.pk),
        ("contact.assigned", given.pk),
        ("contact.created", waiting.pk),
    ]
    assert events[1].data["contact"]["operator"] == {
        "id": weight.operator.pk,
        "name": weight.operator.name,
    }
    assert {e.scope for e in events} == {weight.source.code}


def test_an_events_contact_is_the_apis_without_the_decision():
    weight = OperatorSourceWeightFactory()
    contact = intake(weight.source)
    api = ContactSerializer(
        Contact.objects.select_related("lead", "source", "operator").get(pk=contact.pk)
    ).data

    assigned = Event.objects.get(type="contact.assigned")

    assert "decision" not in assigned.data["contact"]
    assert assigned.data["contact"] == {k: v for k, v in api.items() if k != "decision"}


def test_closing_drains_and_each_step_has_its_event():
    weight = OperatorSourceWeightFactory(operator__max_open_contacts=1)
    first = intake(weight.source, "+79161234567")
    second = intake(weight.source, "+79161234568")  # waits
    Event.objects.all().delete()

    close_contact(contact=first)

    assert [(e.type, e.data["contact"]["id"]) for e in Event.objects.all()] == [
        ("contact.closed", first.pk),
        ("contact.assigned", second.pk),
    ]


def test_a_reassignment_is_reassigned_and_a_refused_one_leaves_no_event():
    weight = OperatorSourceWeightFactory()
    maria = OperatorSourceWeightFactory(source=weight.source).operator
    contact = ContactFactory(open=True, operator=weight.operator, source=weight.source)

    reassign_contact(contact=contact, operator=maria)
    with pytest.raises(Conflict):
        reassign_contact(contact=contact, operator=maria)  # already hers

    assert types() == ["contact.reassigned"]
    assert Event.objects.get().data["contact"]["operator"]["id"] == maria.pk


def test_a_status_change_is_an_event_no_bot_reads():
    ivan = OperatorFactory(name="Ivan")

    operators.set_operator_status(operator=ivan, status="away")
    operators.set_operator_status(operator=ivan, status="away")  # no change, no event

    event = Event.objects.get()
    assert (event.type, event.scope) == ("operator.status_changed", "")
    assert event.data["operator"]["status"] == "away"
    assert event.data["operator"]["previous_status"] == "available"


def test_a_change_that_rolls_back_leaves_no_event():
    weight = OperatorSourceWeightFactory()

    with transaction.atomic():
        intake(weight.source)
        transaction.set_rollback(True)

    assert types() == []


# The feed


def test_staff_read_every_event_after_the_cursor_a_page_at_a_time(api, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "PAGE_SIZE": 2}
    source = OperatorSourceWeightFactory().source
    intake(source, "+79161234567")
    intake(source, "+79161234568")
    ids = list(Event.objects.values_list("id", flat=True))

    first = api.get("/api/events/").json()
    second = api.get(f"/api/events/?after={first['after']}").json()
    last = api.get(f"/api/events/?after={second['after']}").json()

    assert [e["id"] for e in first["results"] + second["results"]] == ids
    assert first["results"][0]["type"] == "contact.created"
    assert set(first["results"][0]) == {"id", "type", "timestamp", "data"}
    assert last == {"results": [], "after": ids[-1]}


def test_a_bot_reads_only_its_own_sources_contact_events(bot_client):
    mine = OperatorSourceWeightFactory(source__code="telegram-bot").source
    other = OperatorSourceWeightFactory(source__code="site-form").source
    intake(mine, "+79161234567")
    intake(other, "+79161234568")
    operators.set_operator_status(operator=OperatorFactory(), status="away")

    results = bot_client(mine).get("/api/events/").json()["results"]

    assert [e["type"] for e in results] == ["contact.created", "contact.assigned"]
    assert {e["data"]["contact"]["source"]["code"] for e in results} == {"telegram-bot"}
    assert all("decision" not in e["data"]["contact"] for e in results)


def test_events_younger_than_the_settling_time_wait_for_the_next_read(api, settings):
    settings.EVENT_FEED_SETTLE_SECONDS = 60
    intake(OperatorSourceWeightFactory().source)

    assert api.get("/api/events/").json() == {"results": [], "after": 0}


def test_the_feed_refuses_a_bad_cursor_operators_and_strangers(api, client):
    bad = api.get("/api/events/?after=-1")
    assert bad.status_code == 400
    assert list(bad.json()) == ["after"]

    client.force_login(OperatorFactory(user=UserFactory()).user)
    assert client.get("/api/events/").status_code == 403
    client.logout()
    assert client.get("/api/events/").status_code == 401
