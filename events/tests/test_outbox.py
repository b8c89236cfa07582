from datetime import UTC, datetime

import pytest
from django.db import transaction

from events.models import Event
from events.outbox import NewEvent, record

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
