"""The engine: the only code that puts a contact in an operator's hands.

Every assignment happens while holding the operator's row lock, and operators are
always locked through `lock_operators`, in id order, so loads cannot race and flows
that share operators cannot deadlock. Who may take a contact and who is chosen is
eligibility.py's; this module locks, reads and writes. Every change of an existing
contact's status or operator is stored by `store_change` (a new contact's by
queries.insert_contact), which keeps the operators' loads and the contact's history
with it.
"""

import random
from collections import defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Case, Q, Value, When
from django.utils import timezone

from distribution import eligibility, events, picking, queries
from distribution.eligibility import Decision
from distribution.models import (
    Contact,
    ContactHistory,
    Operator,
    OperatorSourceWeight,
    OverflowWeight,
    Source,
)
from events.outbox import record

Action = ContactHistory.Action

# Holds no state of its own, so gunicorn's workers, forked from one preloaded app, do
# not all draw the same sequence.
_rng = random.SystemRandom()


@dataclass
class Assignment:
    """The engine's answer: who gets the contact (or nobody) and why."""

    operator: Operator | None
    decision: Decision
    # Sticky 'require': nobody yet, the contact waits for the lead's own operator.
    waits_for: int | None = None


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


def lead_owner(
    *, source: Source, lead_id: int, now: datetime, contact_id: int | None = None
) -> int | None:
    """The lead's own operator for a contact of `source` (the one the lead's last contact
    went to within the source's sticky days; never `contact_id` itself), None where the
    source is not sticky."""
    if source.sticky == eligibility.STICKY_OFF:
        return None
    return queries.lead_owner(
        lead_id=lead_id,
        since=now - timedelta(days=source.sticky_days),
        exclude_contact_id=contact_id,
    )


def choose_operator(
    *,
    source: Source,
    exclude_operator_id: int | None = None,
    missed_by: Collection[int] = (),
    locked_ids: list[int] | None = None,
    now: datetime | None = None,
    owner_id: int | None = None,
    sticky: str | None = None,
) -> Assignment:
    """Pick an operator for a contact of `source`; call inside transaction.atomic.

    1. Lock every operator on the source and the lead's own operator (`owner_id`), in id
       order, unless the caller already holds the locks it may choose among
       (`locked_ids`). The locks are held until the caller commits, so the load it
       stores is read by the next pick.
    2. Read their loads and weights in a second statement: under READ COMMITTED it sees
       what earlier lock holders committed; the first one might not.
    3. eligibility.choose gives it to the owner where the source is sticky (`sticky`,
       else the source's own setting) and the owner can take it, or leaves out who
       cannot take it and picks by the strategy.
    """
    if locked_ids is None:
        locked_ids = lock_operators(operator_ids=[owner_id], source=source)
    now = now or timezone.now()
    states = queries.operator_states(source_id=source.pk, operator_ids=locked_ids, now=now)
    owner = next((state for state in states if state.operator_id == owner_id), None)
    # Only locked operators on the source may be chosen: one on it since the lock is
    # ignored here.
    choice = eligibility.choose(
        source.strategy,
        [state for state in states if state.weight is not None],
        rng=_rng,
        exclude_operator_id=exclude_operator_id,
        missed_by=missed_by,
        units=source.load_units,
        owner=owner,
        sticky=sticky or source.sticky,
    )
    queries.save_round_robin_credits(source_id=source.pk, credits=choice.credits)
    operator = None if choice.chosen is None else queries.operator_of(choice.chosen)
    return Assignment(operator=operator, decision=choice.decision, waits_for=choice.waits_for)


def restart_round_robin(*, source_ids: Iterable[int]) -> None:
    """Credits earned under old weights would skew the new shares: start a new cycle.
    The caller holds the locks of the sources' operators."""
    OperatorSourceWeight.objects.filter(source_id__in=list(source_ids)).update(round_robin_credit=0)


@dataclass(frozen=True)
class Before:
    """What a contact held before a change: whose load it was in, and how much."""

    operator_id: int | None
    status: str
    units: int

    @classmethod
    def of(cls, contact: Contact) -> "Before":
        return cls(contact.operator_id, contact.status, contact.load_units)


# Every field a change of status or operator may set.
_CHANGE_FIELDS = [
    "status",
    "operator",
    "assigned_at",
    "offer_expires_at",
    "decision",
    "flagged_at",
    "closed_at",
    "load_units",
    "by_owner",
    "waits_for",
    "waits_until",
]
# The steps whose decision is worth keeping: someone (or nobody) was chosen.
_DECIDED = {
    Action.QUEUED,
    Action.WAITS_FOR_OWNER,
    Action.ASSIGNED,
    Action.OFFERED,
    Action.REQUEUED,
    Action.REASSIGNED,
}


def store_change(
    contact: Contact, action: str, *, before: Before, at: datetime, detail: str = ""
) -> None:
    """Store a change of an existing contact's status or operator (made on `contact`,
    which the caller locked, as were `before` it): the contact's row, the loads of the
    operators it left and joined, and its history step. The caller holds both
    operators' locks: the loads change only under them.

    The one path that changes an existing contact's status; queries.insert_contact does
    the same for a new one.
    """
    contact.save(update_fields=_CHANGE_FIELDS)
    deltas: dict[int, int] = defaultdict(int)
    if before.operator_id is not None and before.status in Contact.LOAD_STATUSES:
        deltas[before.operator_id] -= before.units
    given = action in ContactHistory.GIVEN
    if contact.operator_id is not None and contact.status in Contact.LOAD_STATUSES:
        deltas[contact.operator_id] += contact.load_units
    queries.add_loads(deltas, given_to=contact.operator_id if given else None, at=at)
    queries.insert_history([history_step(contact, action, at=at, detail=detail, before=before)])


def history_step(
    contact: Contact, action: str, *, at: datetime, detail: str = "", before: Before | None = None
) -> ContactHistory:
    """The history step of a change: who has the contact after it (for a pass, who had
    it), and the decision where one was made."""
    passed = action in (Action.DECLINED, Action.EXPIRED, Action.WITHDRAWN)
    return ContactHistory(
        contact_id=contact.pk,
        at=at,
        action=action,
        status=contact.status,
        operator_id=before.operator_id if passed and before else contact.operator_id,
        decision=contact.decision if action in _DECIDED else {},
        detail=detail[:500],
    )


def given_action(contact: Contact) -> str:
    """The history step of a contact just handed over (hand_over)."""
    if contact.status == Contact.Status.OFFERED:
        return Action.OFFERED
    if contact.status == Contact.Status.OPEN:
        return Action.ASSIGNED
    return Action.WAITS_FOR_OWNER if contact.waits_for_id else Action.QUEUED


def hand_over(contact: Contact, assignment: Assignment, now: datetime | None = None) -> None:
    """Set (not save) a contact's operator and status after a decision: open, offered
    (the source makes offers) or, with no operator, waiting (for the lead's own operator,
    where the assignment says so). Times by `now`, else by the database's clock for an
    offer's deadline and the host's otherwise."""
    operator, source = assignment.operator, contact.source
    contact.operator, contact.decision = operator, assignment.decision.as_json()
    contact.by_owner = operator is not None and assignment.decision.strategy == eligibility.STICKY
    contact.waits_for_id = contact.waits_until = contact.offer_expires_at = None
    if operator is None:
        contact.status, contact.assigned_at = Contact.Status.WAITING, None
        if assignment.waits_for is not None:
            contact.waits_for_id = assignment.waits_for
            contact.waits_until = (now or timezone.now()) + timedelta(
                seconds=source.sticky_wait_seconds
            )
        return
    contact.load_units = source.load_units
    timeout = source.accept_timeout_seconds
    if now is None:
        now = queries.database_now() if timeout is not None else timezone.now()
    contact.assigned_at = now
    if timeout is None:
        contact.status = Contact.Status.OPEN
    else:
        contact.status = Contact.Status.OFFERED
        contact.offer_expires_at = now + timedelta(seconds=timeout)


def drain_waiting_for_operator(
    *, operator_id: int, trigger: str, now: datetime | None = None
) -> int:
    """Give the waiting contacts this operator can serve to it, up to its room (in load
    units) and its burst limit: open, or offered where the source makes offers.

    First those waiting for it as their lead's own operator, then by the source's
    priority, then oldest first. Contacts it declined or let expire are left for others,
    as are those still waiting for another operator. Runs in the caller's transaction,
    right after the event that freed capacity (`trigger`: contact_closed,
    operator_updated, weights_changed, ...). Waiting rows locked by a concurrent drain
    are skipped rather than waited for. Returns how many contacts were given.
    """
    # The operator's lock makes the room we compute hold until commit.
    lock_operators(operator_ids=[operator_id])
    clock = now
    now = now or timezone.now()
    states = queries.operator_states(source_id=None, operator_ids=[operator_id], now=now)
    if not states:
        return 0
    [state] = states
    room = eligibility.room(state)
    burst_room = eligibility.burst_room(state)
    slots = room if burst_room is None else min(room, burst_room)
    if slots <= 0:
        return 0
    source_ids = OperatorSourceWeight.objects.filter(operator_id=operator_id).values("source_id")
    waiting = (
        Contact.objects.select_for_update(skip_locked=True, of=("self",))
        .select_related("lead", "source")
        .filter(status=Contact.Status.WAITING, source_id__in=source_ids)
        .filter(Q(waits_for__isnull=True) | Q(waits_for=operator_id) | Q(waits_until__lte=now))
        .exclude(offer_misses__operator_id=operator_id)
        .order_by(
            Case(When(waits_for=operator_id, then=Value(0)), default=Value(1)),
            "-source__priority",
            "created_at",
            "id",
        )
    )
    operator = queries.operator_of(state)
    decision = eligibility.waiting_queue_decision(state, trigger=trigger)
    given: list[Contact] = []
    # One at a time, the first that fits the room left: a contact too big for it does
    # not hold up smaller ones behind it. A given one is no longer waiting.
    while len(given) < slots:
        contact = waiting.filter(source__load_units__lte=room).first()
        if contact is None:
            break
        before = Before.of(contact)
        reserved = contact.waits_for_id == operator_id  # its lead's own operator
        chosen = replace(decision, strategy=eligibility.STICKY) if reserved else decision
        hand_over(contact, Assignment(operator, chosen), now=clock)
        store_change(contact, given_action(contact), before=before, at=now, detail=trigger)
        room -= contact.load_units
        given.append(contact)
    record(
        [
            event
            for contact in given
            for event in events.contact_events(contact, events.given(contact))
        ],
        at=now,
    )
    return len(given)


def drain_waiting_queue() -> int:
    """Give every waiting contact that someone can take now, by its source's rule.

    For cron and recovery (`manage.py drain_waiting`): sources by priority, contacts
    oldest first, one transaction each, until a source has nobody eligible left.
    Contacts still waiting for their lead's own operator are left to wait.
    """
    given = 0
    now = timezone.now()
    waiting = Contact.objects.filter(status=Contact.Status.WAITING).filter(
        Q(waits_until__isnull=True) | Q(waits_until__lte=now)
    )
    source_ids = waiting.order_by("source_id").values_list("source_id", flat=True).distinct()
    for source in Source.objects.filter(id__in=list(source_ids)).order_by("-priority", "id"):
        in_order = waiting.filter(source=source).order_by("created_at", "id")
        for contact_id in in_order.values_list("id", flat=True):
            outcome = _give_waiting(contact_id)
            if outcome is None:
                break
            given += outcome
    return given


@transaction.atomic
def _give_waiting(
    contact_id: int, *, now: datetime | None = None, overflow: bool = False
) -> bool | None:
    """Give one waiting contact by its source's rule (the lead's own operator first
    where the source is sticky) or, with `overflow`, to one of its overflow operators:
    whether it was given, None when nobody could take any contact of the source now.
    A sticky wait that was due ends here: it goes by the rule, at its place in line."""
    clock = now  # times by the caller's clock, else as hand_over sets them
    now = now or timezone.now()
    contact = (
        Contact.objects.select_for_update(skip_locked=True, of=("self",))
        .select_related("lead", "source")
        .filter(pk=contact_id, status=Contact.Status.WAITING)
        .first()
    )
    if contact is None:
        return False  # taken meanwhile
    if contact.waits_until is not None and contact.waits_until > now:
        return False  # still waiting for its lead's own operator
    missed_by = missed_offers(contact)
    if overflow:
        assignment = _choose_overflow(contact, missed_by=missed_by, now=now)
        trigger = "overflow"
    else:
        owner_id = lead_owner(
            source=contact.source,
            lead_id=contact.lead_id,
            now=now,
            contact_id=contact.pk,
        )
        # Its wait for the owner, if any, is over: the owner only if it can take it now.
        assignment = choose_operator(
            source=contact.source,
            missed_by=missed_by,
            owner_id=owner_id,
            sticky=sticky_after_arrival(contact.source),
            now=now,
        )
        trigger = "owner_wait_ended" if contact.waits_for_id else ""
    if assignment.operator is None:
        if contact.waits_for_id is not None:  # the wait ended: back in line, unreserved
            before = Before.of(contact)
            hand_over(contact, assignment, now=clock)
            store_change(contact, Action.QUEUED, before=before, at=now, detail=trigger)
        # Left out only for having passed on this contact: later contacts may still go.
        passed = eligibility.Reason.MISSED_OFFER
        return False if any(c.left_out == passed for c in assignment.decision.candidates) else None
    before = Before.of(contact)
    hand_over(contact, assignment, now=clock)
    store_change(contact, given_action(contact), before=before, at=now, detail=trigger)
    record(events.contact_events(contact, events.given(contact)), at=contact.assigned_at)
    return True


def sticky_after_arrival(source: Source) -> str:
    """Sticky as it applies after a contact's first decision: a 'require' wait happens
    once, at arrival; afterwards the owner is preferred, never waited for."""
    return (
        eligibility.STICKY_OFF
        if source.sticky == eligibility.STICKY_OFF
        else eligibility.STICKY_PREFER
    )


def _choose_overflow(contact: Contact, *, missed_by: Collection[int], now: datetime) -> Assignment:
    """One of the source's overflow operators by their overflow weights (weighted random),
    under their locks."""
    ids = OverflowWeight.objects.filter(source_id=contact.source_id).values_list(
        "operator_id", flat=True
    )
    locked_ids = lock_operators(operator_ids=list(ids))
    states = queries.operator_states(
        source_id=contact.source_id, operator_ids=locked_ids, now=now, overflow=True
    )
    choice = eligibility.choose(
        picking.WEIGHTED_RANDOM,
        [state for state in states if state.weight is not None],
        rng=_rng,
        missed_by=missed_by,
        units=contact.source.load_units,
    )
    decision = replace(choice.decision, strategy=eligibility.OVERFLOW)
    operator = None if choice.chosen is None else queries.operator_of(choice.chosen)
    return Assignment(operator=operator, decision=decision)


def end_owner_waits(now: datetime) -> int:
    """The worker's pass: contacts whose wait for their lead's own operator is over go
    by their source's rule (or wait in line, unreserved), one transaction each; how
    many were given."""
    due = Contact.objects.filter(
        status=Contact.Status.WAITING, waits_until__isnull=False, waits_until__lte=now
    ).order_by("waits_until", "id")
    return sum(
        bool(_give_waiting(contact_id, now=now))
        for contact_id in list(due.values_list("id", flat=True))
    )


def overflow_waiting(now: datetime) -> int:
    """The worker's pass: contacts that waited past their source's overflow time go to
    the source's overflow operators who can take them, oldest first, one transaction
    each; how many were given."""
    given = 0
    sources = Source.objects.filter(
        overflow_after_seconds__isnull=False, overflow_weights__isnull=False
    ).distinct()
    for source in sources.order_by("-priority", "id"):
        overdue = Contact.objects.filter(
            source=source,
            status=Contact.Status.WAITING,
            created_at__lte=now - timedelta(seconds=source.overflow_after_seconds),
        ).filter(Q(waits_until__isnull=True) | Q(waits_until__lte=now))
        for contact_id in list(overdue.order_by("created_at", "id").values_list("id", flat=True)):
            outcome = _give_waiting(contact_id, now=now, overflow=True)
            if outcome is None:
                break
            given += outcome
    return given


def missed_offers(contact: Contact) -> set[int]:
    """The operators who declined this contact or let its offer expire."""
    return set(contact.offer_misses.values_list("operator_id", flat=True))


def give(contact: Contact, assignment: Assignment, *, action: str | None = None) -> None:
    """Hand an existing contact (locked by the caller, with its lead and source, and the
    operators it leaves and joins) to the assignment's operator: open, or offered where
    its source makes offers."""
    moved = contact.operator_id is not None
    before = Before.of(contact)
    hand_over(contact, assignment)
    action = action or (Action.REASSIGNED if moved else given_action(contact))
    store_change(contact, action, before=before, at=contact.assigned_at)
    event = events.REASSIGNED if moved else events.given(contact)
    record(events.contact_events(contact, event), at=contact.assigned_at)
