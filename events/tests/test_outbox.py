from datetime import UTC, datetime

import pytest
from django.db import transaction

from events.models import Event
from events.outbox import NewEvent, record, record_after_insert

pytestmark = pytest.mark.django_db(transaction=True)  # real commits and rollbacks

AT = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def test_events_are_written_only_inside_a_transaction():
    with pytest.raises(RuntimeError, match="in the transaction of their change"):
        record([NewEvent("contact.closed", {})], at=AT)

    assert not Event.objects.exists()


def test_events_of_a_rolled_back_change_are_gone_with_it():
    with transaction.atomic():
        record([NewEvent("contact.created", {"contact": {"id": 1}}, scope="bot")], at=AT)
        transaction.set_rollback(True)
    with transaction.atomic():
        record([NewEvent("contact.closed", {"contact": {"id": 2}}, scope="bot")], at=AT)

    [event] = Event.objects.all()
    assert event.as_body() == {
        "id": event.pk,
        "type": "contact.closed",
        "timestamp": "2026-12-04T12:00:00+00:00",
        "data": {"contact": {"id": 2}},
    }


def test_the_written_rows_are_what_the_orm_would_write():
    data = {"contact": {"id": 7, "payload": {"text": "Привет", "n": [1, 2.5, None]}}}
    with transaction.atomic():
        record([NewEvent("contact.created", data, scope="tg"), NewEvent("x.y", {})], at=AT)
        Event.objects.bulk_create(
            [
                Event(type="contact.created", occurred_at=AT, scope="tg", data=data),
                Event(type="x.y", occurred_at=AT, scope="", data={}),
            ]
        )

    rows = list(Event.objects.order_by("id").values("type", "occurred_at", "scope", "data"))
    assert rows[:2] == rows[2:]
    assert rows[0]["data"] == data and rows[0]["occurred_at"] == AT


def test_events_after_an_insert_carry_its_new_id_in_their_order():
    """As the intake writes a contact and its events (one statement on PostgreSQL)."""
    parent = (
        "INSERT INTO events_event (type, occurred_at, scope, data) VALUES (%s, %s, %s, %s) "
        "RETURNING id"
    )
    data = {"contact": {"id": None, "status": "open"}}
    with transaction.atomic():
        new_id = record_after_insert(
            parent,
            ["parent", AT, "", '{"parent": true}'],
            [NewEvent("contact.created", data, "tg"), NewEvent("contact.assigned", data, "tg")],
            at=AT,
            id_path=["contact", "id"],
        )

    children = list(Event.objects.exclude(pk=new_id).order_by("id"))
    assert [event.type for event in children] == ["contact.created", "contact.assigned"]
    assert [event.data for event in children] == [{"contact": {"id": new_id, "status": "open"}}] * 2
    assert Event.objects.get(pk=new_id).type == "parent"
