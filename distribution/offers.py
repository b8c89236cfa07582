"""Offers: a contact of a source with an accept timeout is offered to its operator, who
accepts it (it opens), declines it or lets it expire (it goes back to the queue, at its
first-arrival place, and on to someone else by the source's rule).

Accepting and expiring race for the same row: each is one conditional change of an
`offered` row (an UPDATE for accept, a row lock that skips rows being accepted for the
expiry), so exactly one of them wins. Deadlines are compared by the database's clock
(queries.database_now). Every flow here locks the contact before any operator, as
closing and reassigning do.
"""

from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext

from core.errors import Conflict
from distribution import events, queries
from distribution.contacts import NO_LONGER_YOURS
from distribution.engine import (
    Action,
    Before,
    choose_operator,
    drain_waiting_for_operator,
    given_action,
    hand_over,
    lead_owner,
    lock_operators,
    sticky_after_arrival,
    store_change,
)
from distribution.models import Contact, OfferMiss, Operator, StatusReason
from distribution.statuses import record_status
from events.outbox import record

WITHDRAWN = "withdrawn"  # a requeue's `why` when the operator stopped taking work


def accept_offer(
    *, contact: Contact, by_operator: Operator, now: datetime | None = None
) -> Contact:
    """The operator takes the contact it was offered: it opens. Accepting again is a
    no-op; an offer that expired, was withdrawn or moved raises Conflict with why."""
    now = now or queries.database_now()
    with transaction.atomic():
        # Waits for an expiry holding the row, then reads the row as that left it.
        accepting = (
            Contact.objects.select_for_update(of=("self",))
            .select_related("lead", "source", "operator")
            .filter(
                pk=contact.pk,
                status=Contact.Status.OFFERED,
                operator=by_operator,
                offer_expires_at__gt=now,
            )
            .first()
        )
        if accepting is None:
            current = _with_relations(contact.pk)
            if current.status == Contact.Status.OPEN and current.operator_id == by_operator.pk:
                return current
            raise Conflict(_not_accepted(current, by_operator))
        before = Before.of(accepting)
        accepting.status, accepting.offer_expires_at = Contact.Status.OPEN, None
        # Offered to open with the same operator: the load stays, no operator lock needed.
        store_change(accepting, Action.ACCEPTED, before=before, at=now)
        # The streak of let-expire offers ends with an answer.
        Operator.objects.filter(pk=by_operator.pk, missed_offers_in_row__gt=0).update(
            missed_offers_in_row=0
        )
        record(events.contact_events(accepting, events.ACCEPTED), at=now)
    return accepting


def decline_offer(
    *, contact: Contact, by_operator: Operator, reason: str = "", now: datetime | None = None
) -> Contact:
    """The operator passes on the contact it was offered: it goes back to the queue and
    to someone else, never again to this operator by the rules."""
    now = now or queries.database_now()
    with transaction.atomic():
        locked = _locked(contact.pk)
        if locked.status != Contact.Status.OFFERED or locked.operator_id != by_operator.pk:
            raise Conflict(_not_accepted(locked, by_operator))
        _requeue(locked, missed=OfferMiss.Kind.DECLINED, reason=reason, now=now)
    return locked


def expire_offers(now: datetime) -> int:
    """The worker's pass: requeue every offer past its deadline at `now` (the database's
    clock), one transaction each, and any offer whose operator stopped taking work
    (a withdrawal lost to a crash). Offers being accepted right now are skipped: the
    accept wins those. Returns how many offers ended."""
    ended = withdraw_offers()
    while True:
        with transaction.atomic():
            locked = _claim(Q(offer_expires_at__lte=now))
            if locked is None:
                return ended
            _requeue(locked, missed=OfferMiss.Kind.EXPIRED, reason="", now=now)
        ended += 1


def withdraw_offers(operator_id: int | None = None) -> int:
    """Requeue the pending offers of this operator (None: of every operator) if it is
    not taking work (inactive, away or offline); how many."""
    held = ~Q(operator__is_active=True, operator__status=Operator.Status.AVAILABLE)
    if operator_id is not None:
        held &= Q(operator_id=operator_id)
    withdrawn = 0
    ids = Contact.objects.filter(held, status=Contact.Status.OFFERED).values_list("id", flat=True)
    for contact_id in list(ids):
        with transaction.atomic():
            locked = _claim(Q(pk=contact_id) & held)
            if locked is None:
                continue
            _requeue(locked, missed=None, reason=WITHDRAWN, now=timezone.now())
        withdrawn += 1
    return withdrawn


def _claim(condition: Q) -> Contact | None:
    """The first offered contact matching `condition`, locked unless another transaction
    holds it (an accept in flight, another worker's expiry)."""
    return (
        Contact.objects.select_for_update(skip_locked=True, of=("self",))
        .select_related("lead", "source", "operator")
        .filter(condition, status=Contact.Status.OFFERED)
        .order_by("offer_expires_at", "id")
        .first()
    )


def _requeue(contact: Contact, *, missed: str | None, reason: str, now: datetime) -> None:
    """Put a locked offered contact back in the queue and offer it to someone else by
    its source's rule (it waits if nobody can take it). `missed`: the operator declined
    it or let it expire (an OfferMiss), None when the offer was withdrawn."""
    operator = contact.operator
    owner_id = lead_owner(
        source=contact.source, lead_id=contact.lead_id, now=now, contact_id=contact.pk
    )
    # Operators first: the miss's foreign key takes a share lock on the operator's row,
    # which must not come before the locks lock_operators takes in id order.
    locked_ids = lock_operators(operator_ids=[operator.pk, owner_id], source=contact.source)
    passed: list = []
    if missed is not None:
        OfferMiss.objects.create(
            contact=contact, operator=operator, kind=missed, reason=reason, at=now
        )
        passed = events.contact_events(
            contact,
            events.DECLINED if missed == OfferMiss.Kind.DECLINED else events.OFFER_EXPIRED,
            detail={"reason": reason},
        )
    misses = list(contact.offer_misses.values_list("operator_id", flat=True))
    if missed is not None:
        _count_miss(operator.pk, expired=missed == OfferMiss.Kind.EXPIRED, now=now)

    before = Before.of(contact)
    contact.status, contact.operator, contact.assigned_at, contact.offer_expires_at = (
        Contact.Status.WAITING,
        None,
        None,
        None,
    )
    store_change(contact, _PASSED[missed or reason], before=before, at=now, detail=reason)
    happened = passed + events.contact_events(
        contact, events.REQUEUED, detail={"why": missed or reason}
    )
    if contact.flagged_at is None and len(misses) >= contact.source.max_offers:
        contact.flagged_at = now
        happened += events.contact_events(contact, events.FLAGGED, detail={"misses": len(misses)})
    assignment = choose_operator(
        source=contact.source,
        missed_by=set(misses),
        locked_ids=locked_ids,
        owner_id=owner_id,
        sticky=sticky_after_arrival(contact.source),
        now=now,
    )
    before = Before.of(contact)
    hand_over(contact, assignment, now=now)
    action = given_action(contact) if assignment.operator is not None else Action.REQUEUED
    store_change(contact, action, before=before, at=now)
    if assignment.operator is not None:
        happened += events.contact_events(contact, events.OFFERED)
    record(happened, at=now)
    # The place it held is free: its own queue (not this contact) may fill it.
    drain_waiting_for_operator(
        operator_id=operator.pk, trigger=f"offer_{missed or reason}", now=now
    )


_PASSED = {
    OfferMiss.Kind.DECLINED: Action.DECLINED,
    OfferMiss.Kind.EXPIRED: Action.EXPIRED,
    WITHDRAWN: Action.WITHDRAWN,
}


def _count_miss(operator_id: int, *, expired: bool, now: datetime) -> None:
    """An expiry extends the operator's streak of unanswered offers, and at
    OFFER_MISSES_BEFORE_AWAY sets it away (its other offers are withdrawn after the
    commit); a decline is an answer and ends the streak. Under the operator's lock."""
    operator = Operator.objects.get(pk=operator_id)
    operator.missed_offers_in_row = operator.missed_offers_in_row + 1 if expired else 0
    fields = ["missed_offers_in_row"]
    if (
        operator.missed_offers_in_row >= settings.OFFER_MISSES_BEFORE_AWAY
        and operator.status == Operator.Status.AVAILABLE
    ):
        record_status(operator, Operator.Status.AWAY, now=now, reason=StatusReason.MISSED_OFFERS)
        fields += ["status", "status_changed_at"]
        transaction.on_commit(lambda: withdraw_offers(operator_id=operator_id))
    operator.save(update_fields=fields)


def _locked(contact_id: int) -> Contact:
    return (
        Contact.objects.select_for_update(of=("self",))
        .select_related("lead", "source", "operator")
        .get(pk=contact_id)
    )


def _with_relations(contact_id: int) -> Contact:
    return Contact.objects.select_related("lead", "source", "operator").get(pk=contact_id)


def _not_accepted(current: Contact, operator: Operator) -> str:
    """Why an operator's answer to an offer cannot be taken, as the operator reads it."""
    if current.status == Contact.Status.CLOSED:
        return gettext("This contact is closed.")
    if current.operator_id == operator.pk and current.status == Contact.Status.OPEN:
        return gettext("You have accepted this contact already: hand it back instead.")
    if current.operator_id == operator.pk:  # offered, past its deadline
        return gettext("This offer has expired: the contact goes back to the queue.")
    if current.status == Contact.Status.WAITING:
        return gettext(
            "This offer has ended (expired or withdrawn): the contact is back in the queue."
        )
    return str(NO_LONGER_YOURS)
