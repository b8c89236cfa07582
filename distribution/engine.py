"""The engine: the only code that puts a contact in an operator's hands.

Every assignment happens while holding the operator's row lock, and operators are
always locked through `lock_operators`, in id order, so load counts cannot race and
flows that share operators cannot deadlock. Who may take a contact and who is chosen
is eligibility.py's; this module locks, reads and writes.
"""

import random
from collections import defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

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
    missed_by: Collection[int] = (),
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
        source.strategy,
        states,
        rng=_rng,
        exclude_operator_id=exclude_operator_id,
        missed_by=missed_by,
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
    """Give the oldest waiting contacts this operator can serve to it, up to its room:
    open, or offered where the source makes offers. Contacts it declined or let expire
    are left for others.

    Runs in the caller's transaction, right after the event that freed capacity
    (`trigger`: contact_closed, operator_updated, weights_changed, ...). Waiting rows
    locked by a concurrent drain are skipped rather than waited for. Returns how many
    contacts were given.
    """
    # The operator's lock makes the room we compute hold until commit.
    lock_operators(operator_ids=[operator_id])
    clock = now
    now = now or timezone.now()
    states = queries.operator_states(source_id=None, operator_ids=[operator_id], now=now)
    room = eligibility.room(states[0]) if states else 0
    if room <= 0:
        return 0
    source_ids = OperatorSourceWeight.objects.filter(operator_id=operator_id).values("source_id")
    waiting = list(
        Contact.objects.select_for_update(skip_locked=True, of=("self",))
        .filter(status=Contact.Status.WAITING, source_id__in=source_ids)
        .exclude(offer_misses__operator_id=operator_id)
        .order_by("created_at", "id")
        .values_list("id", "source__accept_timeout_seconds")[:room]
    )
    if not waiting:
        return 0
    by_timeout: dict[int | None, list[int]] = defaultdict(list)
    for contact_id, timeout in waiting:
        by_timeout[timeout].append(contact_id)
    decision = eligibility.waiting_queue_decision(states[0], trigger=trigger).as_json()
    # Deadlines by the caller's clock, else the database's (queries.database_now).
    offering = set(by_timeout) - {None}
    deadline_clock = clock or (queries.database_now() if offering else now)
    for timeout, ids in by_timeout.items():
        Contact.objects.filter(id__in=ids).update(
            operator_id=operator_id,
            decision=decision,
            **_handing_over(timeout, now, deadline_clock),
        )
    given = Contact.objects.filter(id__in=[contact_id for contact_id, _ in waiting])
    record(
        [
            event
            for contact in given.select_related("lead", "source", "operator")
            for event in events.contact_events(contact, events.given(contact))
        ],
        at=now,
    )
    return len(waiting)


def _handing_over(timeout: int | None, now: datetime, deadline_clock: datetime) -> dict:
    """The fields of a contact given to an operator: open, or offered until a deadline
    by the database's clock when its source makes offers (`timeout` seconds)."""
    if timeout is None:
        return {"status": Contact.Status.OPEN, "assigned_at": now, "offer_expires_at": None}
    return {
        "status": Contact.Status.OFFERED,
        "assigned_at": deadline_clock,
        "offer_expires_at": deadline_clock + timedelta(seconds=timeout),
    }


def hand_over(
    contact: Contact, operator: Operator | None, decision: Decision, now: datetime | None = None
) -> None:
    """Set (not save) a contact's operator and status after a decision: open, offered
    (the source makes offers) or, with no operator, waiting. Times by `now`, else by the
    database's clock for an offer's deadline and the host's otherwise."""
    contact.operator, contact.decision = operator, decision.as_json()
    timeout = contact.source.accept_timeout_seconds
    if operator is None:
        contact.status, contact.assigned_at, contact.offer_expires_at = (
            Contact.Status.WAITING,
            None,
            None,
        )
        return
    if now is None:
        now = queries.database_now() if timeout is not None else timezone.now()
    for field, value in _handing_over(timeout, now, now).items():
        setattr(contact, field, value)


def drain_waiting_queue() -> int:
    """Give every waiting contact that someone can take now, by its source's rule.

    For cron and recovery (`manage.py drain_waiting`): contacts go oldest first, one
    transaction each, until a source has nobody eligible left.
    """
    given = 0
    source_ids = (
        Contact.objects.filter(status=Contact.Status.WAITING)
        .order_by("source_id")
        .values_list("source_id", flat=True)
        .distinct()
    )
    for source in Source.objects.filter(id__in=list(source_ids)).order_by("id"):
        waiting_ids = Contact.objects.filter(source=source, status=Contact.Status.WAITING)
        for contact_id in waiting_ids.order_by("created_at", "id").values_list("id", flat=True):
            outcome = _give_waiting(contact_id)
            if outcome is None:
                break
            given += outcome
    return given


@transaction.atomic
def _give_waiting(contact_id: int) -> bool | None:
    """Give one waiting contact by its source's rule: whether it was given, None when
    nobody on the source could take any contact now."""
    contact = (
        Contact.objects.select_for_update(skip_locked=True, of=("self",))
        .select_related("lead", "source")
        .filter(pk=contact_id, status=Contact.Status.WAITING)
        .first()
    )
    if contact is None:
        return False  # taken meanwhile
    missed_by = missed_offers(contact)
    assignment = choose_operator(source=contact.source, missed_by=missed_by)
    if assignment.operator is None:
        # Left out only for having passed on this contact: later contacts may still go.
        passed = eligibility.Reason.MISSED_OFFER
        return False if any(c.left_out == passed for c in assignment.decision.candidates) else None
    give(contact, assignment)
    return True


def missed_offers(contact: Contact) -> set[int]:
    """The operators who declined this contact or let its offer expire."""
    return set(contact.offer_misses.values_list("operator_id", flat=True))


def give(contact: Contact, assignment: Assignment) -> None:
    """Hand an existing contact (locked by the caller, with its lead and source) to the
    assignment's operator: open, or offered where its source makes offers."""
    moved = contact.operator_id is not None
    hand_over(contact, assignment.operator, assignment.decision)
    contact.save(
        update_fields=["status", "operator", "assigned_at", "offer_expires_at", "decision"]
    )
    event = events.REASSIGNED if moved else events.given(contact)
    record(events.contact_events(contact, event), at=contact.assigned_at)
