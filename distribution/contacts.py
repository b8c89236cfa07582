"""Contact flows: intake, closing and reassigning, and the intake's idempotency keys.

Who gets a contact is the engine's to say; these flows own the transactions around it.
"""

import hashlib
import json
from dataclasses import asdict, replace
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext, gettext_lazy

from core.errors import Conflict
from distribution import eligibility, events, queries
from distribution.engine import (
    Action,
    Assignment,
    Before,
    choose_operator,
    drain_waiting_for_operator,
    give,
    given_action,
    hand_over,
    history_step,
    lead_owner,
    lock_operators,
    missed_offers,
    sticky_after_arrival,
    store_change,
)
from distribution.models import Contact, IdempotencyKey, Operator, Source
from events.outbox import record
from leads.identity import LeadIdentity
from leads.services import find_or_create_lead


@transaction.atomic
def register_contact(
    *, source: Source, identity: LeadIdentity, payload: dict[str, Any] | None = None
) -> Contact:
    """Store a contact from `source` and hand it to an operator, in one transaction.

    1. Find the lead by external_id, then phone, then email, or create it; its row stays
       locked until commit, so a second contact of the lead waits there until this one
       is stored, and then finds this one's operator.
    2. Where the source is sticky, find the lead's own operator.
    3. Ask the engine for an operator (locks the source's operators and the owner until
       commit).
    4. Insert the contact `open` (or `offered`, where the source makes offers) with that
       operator, or `waiting` with none (or for the owner), with its operator's load,
       its history step and its events.
    """
    lead, conflicts = find_or_create_lead(identity=identity)
    now = timezone.now()
    owner_id = lead_owner(source=source, lead_id=lead.pk, now=now)
    assignment = choose_operator(source=source, owner_id=owner_id, now=now)
    contact = Contact(lead=lead, source=source, payload=payload or {}, lead_conflicts=conflicts)
    hand_over(contact, assignment, now=None if assignment.operator else now)
    now = contact.created_at = contact.assigned_at or now
    happened = (events.CREATED, events.given(contact)) if assignment.operator else (events.CREATED,)
    queries.insert_contact(
        contact,
        history=history_step(contact, given_action(contact), at=now),
        events=events.contact_events(contact, *happened),
        at=now,
    )
    return contact


def close_contact(*, contact: Contact, by_operator: Operator | None = None) -> Contact:
    """Close a contact that is not closed; an operator's freed place goes to the queue at
    once.

    `by_operator`: the operator closing its own contact, refused if the contact has
    moved to someone else since the operator saw it.
    """
    with transaction.atomic():
        # The contact's lock, then its operator's (as reassigning takes them), so two
        # concurrent closes cannot both succeed and the load drops once. Read with
        # everything the answer shows, before the commit: a query after it could fail
        # (the database going away) and answer an error for a close that was stored.
        contact = (
            Contact.objects.select_for_update(of=("self",))
            .select_related("lead", "source", "operator")
            .get(pk=contact.pk)
        )
        if by_operator is not None and contact.operator_id != by_operator.pk:
            raise Conflict(str(NO_LONGER_YOURS))
        if contact.status == Contact.Status.CLOSED:
            raise Conflict(gettext("This contact is already closed."))
        lock_operators(operator_ids=[contact.operator_id])
        before = Before.of(contact)
        contact.status, contact.closed_at = Contact.Status.CLOSED, timezone.now()
        contact.offer_expires_at = contact.waits_for_id = contact.waits_until = None
        store_change(contact, Action.CLOSED, before=before, at=contact.closed_at)
        record(events.contact_events(contact, events.CLOSED), at=contact.closed_at)
        if contact.operator_id is not None:
            drain_waiting_for_operator(operator_id=contact.operator_id, trigger="contact_closed")
    return contact


@transaction.atomic
def reassign_contact(
    *, contact: Contact, operator: Operator | None = None, by_operator: Operator | None = None
) -> Contact:
    """Move a contact that is not closed to `operator`, or to whoever the source's rule
    picks (never one who declined it or let its offer expire).

    Raises Conflict with the reason when the named operator cannot take it (inactive,
    not on the source, at the limit) or, with no operator named, when nobody else can.
    The previous operator's freed place then goes to the waiting queue. `by_operator`:
    the operator handing back its own contact, refused if it has moved since.
    """
    # The lead too, so the answer needs no query after the commit (see close_contact).
    contact = (
        Contact.objects.select_for_update(of=("self",))
        .select_related("source", "lead")
        .get(pk=contact.pk)
    )
    if contact.status == Contact.Status.CLOSED:
        raise Conflict(gettext("A closed contact cannot be reassigned."))
    if by_operator is not None and contact.operator_id != by_operator.pk:
        raise Conflict(str(NO_LONGER_YOURS))
    previous_operator_id = contact.operator_id
    now = timezone.now()
    owner_id = None
    if operator is None:
        owner_id = lead_owner(
            source=contact.source,
            lead_id=contact.lead_id,
            now=now,
            contact_id=contact.pk,
        )
    # Every operator this may touch, locked up front in one statement (lock_operators).
    locked_ids = lock_operators(
        operator_ids=[previous_operator_id, operator and operator.pk, owner_id],
        source=contact.source,
    )
    if operator is None:
        assignment = choose_operator(
            source=contact.source,
            exclude_operator_id=previous_operator_id,
            missed_by=missed_offers(contact),
            locked_ids=locked_ids,
            owner_id=owner_id,
            sticky=sticky_after_arrival(contact.source),
            now=now,
        )
        if assignment.operator is None:
            raise Conflict(_nobody_can_take(has_operator=previous_operator_id is not None))
    else:
        assignment = _named_operator(contact, operator)
    give(contact, assignment)
    if previous_operator_id is not None:
        drain_waiting_for_operator(operator_id=previous_operator_id, trigger="contact_reassigned")
    return contact


NO_LONGER_YOURS = gettext_lazy("This contact is no longer yours: it has moved to another operator.")


def _nobody_can_take(*, has_operator: bool) -> str:
    if has_operator:
        return gettext(
            "No other operator on this source can take it now "
            "(active, available, on shift and under the limit)."
        )
    return gettext(
        "No operator on this source can take it now "
        "(active, available, on shift and under the limit)."
    )


def _named_operator(contact: Contact, operator: Operator) -> Assignment:
    """The assignment to the operator staff named, or Conflict saying why it cannot be."""
    states = queries.operator_states(
        source_id=contact.source_id, operator_ids=[operator.pk], now=timezone.now()
    )
    if not states:
        raise Operator.DoesNotExist  # deleted since the request named it: a 404
    # Staff's choice is not held to the burst limit, which paces the rules.
    state = replace(states[0], burst_limit=None)
    reason = eligibility.left_out_reason(
        state, exclude_operator_id=contact.operator_id, units=contact.source.load_units
    )
    if reason is not None:
        raise Conflict(eligibility.explain(reason, state, source_code=contact.source.code))
    return Assignment(
        operator=queries.operator_of(state), decision=eligibility.manual_decision(state)
    )


def register_contact_once(
    *,
    source: Source,
    key: str,
    identity: LeadIdentity,
    payload: dict[str, Any] | None = None,
) -> tuple[Contact, bool]:
    """register_contact for a request with an idempotency key, unique per source: the
    contact, and whether this call created it.

    1. A live key of this source is stored: return its contact if the request is the
       same (a retry), raise Conflict if it is not.
    2. Otherwise register the contact and store the key in one transaction. A concurrent
       request with the key waits on the key's unique index until this one commits, then
       fails there, rolls its own contact back and returns this one's (step 1).
    """
    fingerprint = _fingerprint(source, identity, payload or {})
    stored = _live_key(source=source, key=key)
    if stored is None:
        try:
            with transaction.atomic():
                contact = register_contact(source=source, identity=identity, payload=payload)
                IdempotencyKey.objects.create(
                    source=source, key=key, fingerprint=fingerprint, contact=contact
                )
            return contact, True
        except IntegrityError:
            stored = _live_key(source=source, key=key)
            if stored is None:
                raise
    if stored.fingerprint != fingerprint:
        raise Conflict(gettext("This idempotency key was already used for a different request."))
    return stored.contact, False


def _fingerprint(source: Source, identity: LeadIdentity, payload: dict[str, Any]) -> str:
    """The request as validated (identifiers normalised), so spelling a phone another
    way in a retry is still the same request."""
    request = {"source": source.code, "lead": asdict(identity), "payload": payload}
    return hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()


def _live_key(*, source: Source, key: str) -> IdempotencyKey | None:
    stored = (
        IdempotencyKey.objects.select_related(
            "contact__lead", "contact__source", "contact__operator"
        )
        .filter(source=source, key=key)
        .first()
    )
    if stored is not None and stored.created_at < timezone.now() - settings.IDEMPOTENCY_KEY_TTL:
        # Expired: forgotten now, so the unique index lets the key be stored again.
        IdempotencyKey.objects.filter(pk=stored.pk).delete()
        return None
    return stored


def purge_idempotency_keys() -> int:
    """Delete the keys older than IDEMPOTENCY_KEY_TTL (for cron); how many went."""
    cutoff = timezone.now() - settings.IDEMPOTENCY_KEY_TTL
    deleted, _ = IdempotencyKey.objects.filter(created_at__lt=cutoff).delete()
    return deleted
