"""An operator's status history: the one place a status changes and is remembered."""

from datetime import datetime

from distribution import events
from distribution.models import Operator, OperatorStatusChange
from events.outbox import record


def record_status(operator: Operator, status: str, *, now: datetime, reason: str = "") -> bool:
    """Set a locked operator's status (not saved) and keep it in the history, with the
    service's `reason` when a person did not choose it; whether it changed."""
    if operator.status == status:
        return False
    previous = operator.status
    operator.status, operator.status_changed_at = status, now
    OperatorStatusChange.objects.create(
        operator=operator, status=status, changed_at=now, reason=reason
    )
    record([events.status_event(operator, previous=previous, reason=reason)], at=now)
    return True
