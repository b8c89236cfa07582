"""A contact's steps as its operator reads them on the desk: its own work only.

The same rule as the API's history for an operator's login: no decisions (they name
other operators and their loads), and another operator is only "another operator",
without its name or its reason for passing on the contact. Reads only.
"""

from dataclasses import dataclass
from datetime import datetime

from django.utils.functional import Promise
from django.utils.translation import gettext as _

from distribution.models import Contact, ContactHistory, Operator

Action = ContactHistory.Action


@dataclass(frozen=True)
class Step:
    at: datetime
    action: str
    label: str | Promise
    status: str  # the contact's status after the step, as the desk shows statuses
    who: str  # "you", "another operator", or "" for nobody
    note: str  # the operator's own reason for declining; nothing else is shown


def operator_timeline(contact: Contact, operator: Operator) -> list[Step]:
    """The contact's steps, oldest first, as `operator` (who holds it now) may see them."""
    # In the order they were written, under the contact's lock: the order they happened
    # in, also where two steps share a moment (the index history_by_contact).
    steps = ContactHistory.objects.filter(contact=contact).order_by("id")
    return [_step(step, operator) for step in steps]


def _step(step: ContactHistory, operator: Operator) -> Step:
    own = step.operator_id == operator.pk
    if own:
        who = _("you")
    elif step.operator_id is not None:
        who = _("another operator")
    else:
        who = ""
    return Step(
        at=step.at,
        action=step.action,
        label=step.get_action_display(),
        status=step.get_status_display(),
        who=who,
        note=step.detail if own and step.action == Action.DECLINED else "",
    )
