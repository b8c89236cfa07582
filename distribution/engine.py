"""The engine: the only code that puts a contact in an operator's hands.

Every assignment happens while holding the operator's row lock, and operators are
always locked through `lock_operators`, in id order, so load counts cannot race and
flows that share operators cannot deadlock. Who may take a contact and who is chosen
is eligibility.py's; this module locks, reads and writes.
"""

import random
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from distribution import eligibility, events, queries
from distribution.eligibility import Decision
from distribution.models import Contact, Operator, OperatorSourceWeight, Source
from events.outbox import record

# Holds no state of its own, so gunicorn's workers, forked from one preloaded app, do
# not all draw the same sequence.
_rng = random.SystemRandom()


@dataclass
class Assignment:
    """The engine's answer: who gets the contact (or nobody) and why."""

    operator: Operator | None
    decision: Decision


def lock_operators(
    *, operator_ids: Iterable[int | None] = (), source: Source | None = None
) -> list[int]:
    """Lock these operators and, with `source`, every operator on it, in id order, until
    the caller's transaction ends; the ids locked. Every flow that changes what an
    operator may take locks through here, so all of them take locks in one order.

    A transaction takes all the locks it needs in one call: a second call that reached
    an operator below one it already holds (a weight added meanwhile) could close a
    circle with a transaction that locked in order. Later calls name held ids only.
    """
    ids = sorted({operator_id for operator_id in operator_ids if operator_id is not None})
    return queries.lock_operators(operator_ids=ids, source_id=None if source is None else source.pk)


def choose_operator(
    *,
    source: Source,
    exclude_operator_id: int | None = None,
    locked_ids: list[int] | None = None,
    now: datetime | None = None,
) -> Assignment:
    """Pick an operator for a new contact of `source`; call inside transaction.atomic.

    1. Lock every operator on the source, in id order, unless the caller already holds
       the locks it may choose among (`locked_ids`). The locks are held until the caller
       commits, so the contact it inserts is counted by the next pick.
    2. Read their loads and weights in a second statement: under READ COMMITTED it sees
       what earlier lock holders committed; the first one might not.
    3. eligibility.choose leaves out who cannot take it and picks by the strategy.
    """
    if locked_ids is None:
        locked_ids = lock_operators(source=source)
    # Only locked operators on the source may be chosen: one on it since the lock is
    # ignored here.
    states = [
        state
        for state in queries.operator_states(
            source_id=source.pk, operator_ids=locked_ids, now=now or timezone.now()
        )
        if state.weight is not None
    ]
    choice = eligibility.choose(
        source.strategy, states, rng=_rng, exclude_operator_id=exclude_operator_id
    )
    queries.save_round_robin_credits(source_id=source.pk, credits=choice.credits)
    operator = None if choice.chosen is None else queries.operator_of(choice.chosen)
    return Assignment(operator=operator, decision=choice.decision)


def restart_round_robin(*, source_ids: Iterable[int]) -> None:
    """Credits earned under old weights would skew the new shares: start a new cycle.
    The caller holds the locks of the sources' operators."""
    OperatorSourceWeight.objects.filter(source_id__in=list(source_ids)).update(round_robin_credit=0)


def drain_waiting_for_operator(
    *, operator_id: int, trigger: str, now: datetime | None = None
) -> int:
    """Give the oldest waiting contacts this operator can serve to it, up to its room.

    Runs in the caller's transaction, right after the event that freed capacity
    (`trigger`: contact_closed, operator_updated, weights_changed, ...). Waiting rows
    locked by a concurrent drain are skipped rather than waited for. Returns how many
    contacts were assigned.
    """
    # The operator's lock makes the room we compute hold until commit.
    lock_operators(operator_ids=[operator_id])
    now = now or timezone.now()
    states = queries.operator_states(source_id=None, operator_ids=[operator_id], now=now)
    room = eligibility.room(states[0]) if states else 0
    if room <= 0:
        return 0
    source_ids = OperatorSourceWeight.objects.filter(operator_id=operator_id).values("source_id")
    waiting_ids = list(
        Contact.objects.select_for_update(skip_locked=True)
        .filter(status=Contact.Status.WAITING, source_id__in=source_ids)
        .order_by("created_at", "id")
        .values_list("id", flat=True)[:room]
    )
    if not waiting_ids:
        return 0
    decision = eligibility.waiting_queue_decision(states[0], trigger=trigger)
    assigned = Contact.objects.filter(id__in=waiting_ids).update(
        status=Contact.Status.OPEN,
        operator_id=operator_id,
        assigned_at=now,
        decision=decision.as_json(),
    )
    given = Contact.objects.filter(id__in=waiting_ids).select_related("lead", "source", "operator")
    record([e for c in given for e in events.contact_events(c, events.ASSIGNED)], at=now)
    return assigned


def drain_waiting_queue() -> int:
    """Assign every waiting contact that someone can take now, by its source's rule.

    For cron and recovery (`manage.py drain_waiting`): contacts go oldest first, one
    transaction each, until a source has nobody eligible left.
    """
    assigned = 0
    source_ids = (
        Contact.objects.filter(status=Contact.Status.WAITING)
        .order_by("source_id")
        .values_list("source_id", flat=True)
        .distinct()
    )
    for source in Source.objects.filter(id__in=list(source_ids)).order_by("id"):
        while _assign_oldest_waiting(source):
            assigned += 1
    return assigned


@transaction.atomic
def _assign_oldest_waiting(source: Source) -> bool:
    contact = (
        Contact.objects.select_for_update(skip_locked=True, of=("self",))
        .select_related("lead", "source")
        .filter(source=source, status=Contact.Status.WAITING)
        .order_by("created_at", "id")
        .first()
    )
    if contact is None:
        return False
    assignment = choose_operator(source=source)
    if assignment.operator is None:
        return False
    give(contact, assignment)
    return True


def give(contact: Contact, assignment: Assignment) -> None:
    """Hand an existing contact (locked by the caller, with its lead and source) to the
    assignment's operator."""
    moved = contact.operator_id is not None
    contact.status = Contact.Status.OPEN
    contact.operator = assignment.operator
    contact.assigned_at = timezone.now()
    contact.decision = assignment.decision.as_json()
    contact.save(update_fields=["status", "operator", "assigned_at", "decision"])
    event = events.REASSIGNED if moved else events.ASSIGNED
    record(events.contact_events(contact, event), at=contact.assigned_at)
