"""Writing events: only inside the transaction of the change they describe, so an event
exists exactly when its change was committed."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection

from events.models import Event


@dataclass(frozen=True)
class NewEvent:
    type: str
    data: dict[str, Any]
    scope: str = ""  # the source code whose bot may read it


def record(events: list[NewEvent], *, at: datetime) -> None:
    """Insert the events in one statement, in the caller's transaction."""
    if not connection.in_atomic_block:
        raise RuntimeError("Events are written in the transaction of their change.")
    Event.objects.bulk_create(
        Event(type=event.type, occurred_at=at, scope=event.scope, data=event.data)
        for event in events
    )
