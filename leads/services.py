"""Contact flows: intake, closing and reassigning. Assignment itself is the engine's."""

import hashlib
import json
from dataclasses import asdict
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from crm.errors import Conflict
from distribution.models import Operator, Source
from distribution.services import (
    assert_assignable,
    choose_operator,
    drain_waiting_for_operator,
)
from leads.identity import IDENTIFIER_FIELDS, LeadIdentity
from leads.models import Contact, IdempotencyKey, Lead

# A racing request can take a new lead's identifiers first; matching again then finds
# the winner's row. Three tries cover a lead whose identifiers race with several others.
LEAD_MATCH_ATTEMPTS = 3
# What matching needs of a lead (its created_at is left to load when asked for).
LEAD_FIELDS = ["id", "external_id", "phone", "email", "name"]
SELECT_LEADS = f"SELECT {', '.join(LEAD_FIELDS)} FROM {Lead._meta.db_table}"
# ON CONFLICT DO NOTHING: when a racing request inserted one of the identifiers first,
# nothing is written and nothing fails, so the intake's transaction needs no savepoint
# (two round trips) to recover from an IntegrityError. PostgreSQL and SQLite 3.35+.
INSERT_LEAD = (
    f"INSERT INTO {Lead._meta.db_table} (external_id, phone, email, name, created_at)"
    " VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING id"
)


@transaction.atomic
def register_contact(
    *, source: Source, identity: LeadIdentity, payload: dict[str, Any] | None = None
) -> Contact:
    """Store a contact from `source` and hand it to an operator, in one transaction.

    1. Find the lead by external_id, then phone, then email, or create it.
    2. Ask the engine for an operator (locks the source's operators until commit).
    3. Insert the contact `open` with that operator, or `waiting` with none.
    """
    lead, conflicts = find_or_create_lead(identity=identity)
    assignment = choose_operator(source=source)
    now = timezone.now()
    contact = Contact(
        lead=lead,
        source=source,
        operator=assignment.operator,
        status=Contact.Status.OPEN if assignment.operator else Contact.Status.WAITING,
        payload=payload or {},
        decision=assignment.decision,
        lead_conflicts=conflicts,
        created_at=now,
        assigned_at=now if assignment.operator else None,
    )
    _insert_contact(contact)
    return contact


# Every column but the id, in the model's order. The statement is what save() sends;
# written once here because composing it took save() about 0.3 ms of CPU per contact.
CONTACT_FIELDS = [field for field in Contact._meta.concrete_fields if not field.primary_key]
INSERT_CONTACT = (
    f"INSERT INTO {Contact._meta.db_table} ({', '.join(f.column for f in CONTACT_FIELDS)})"
    f" VALUES ({', '.join(['%s'] * len(CONTACT_FIELDS))}) RETURNING id"
)


def _insert_contact(contact: Contact) -> None:
    """Insert a new contact as save() would, converting each value the field's own way."""
    values = [
        field.get_db_prep_save(field.pre_save(contact, add=True), connection)
        for field in CONTACT_FIELDS
    ]
    with connection.cursor() as cursor:
        cursor.execute(INSERT_CONTACT, values)
        (contact.pk,) = cursor.fetchone()
    contact._state.adding = False
    contact._state.db = connection.alias


def find_or_create_lead(*, identity: LeadIdentity) -> tuple[Lead, list[dict[str, Any]]]:
    """The lead these identifiers belong to, and the identifiers that could not be attached.

    Identifiers the found lead lacks are added to it, unless another lead owns them:
    those, and values that differ from the lead's own, are reported, never moved.
    """
    for _ in range(LEAD_MATCH_ATTEMPTS):
        found = _match_or_create_lead(identity)
        if found is not None:
            return found
    raise IntegrityError("A lead's identifiers kept being taken by racing requests.")


def _match_or_create_lead(identity: LeadIdentity) -> tuple[Lead, list[dict[str, Any]]] | None:
    """The lead and its conflicts; None when a racing request took an identifier first."""
    given = identity.identifiers()
    # Plain SQL, about 0.5 ms of CPU less than composing the same OR of filters. The
    # column names are IDENTIFIER_FIELDS, never input.
    conditions = " OR ".join(f"{identifier} = %s" for identifier in given)
    with connection.cursor() as cursor:
        cursor.execute(f"{SELECT_LEADS} WHERE {conditions}", list(given.values()))
        matches = [Lead.from_db(connection.alias, LEAD_FIELDS, row) for row in cursor.fetchall()]
    if not matches:
        lead = _insert_lead(identity)
        return None if lead is None else (lead, [])
    lead, conflicts, changed = _merge_identity(identity, matches)
    if changed:
        try:
            # The one write here that can fail on a unique index (an identifier added
            # by a racing request meanwhile): the savepoint keeps the transaction usable.
            with transaction.atomic():
                lead.save(update_fields=changed)
        except IntegrityError:
            return None
    return lead, conflicts


def _merge_identity(
    identity: LeadIdentity, matches: list[Lead]
) -> tuple[Lead, list[dict[str, Any]], list[str]]:
    """The lead matched first, its conflicts, and the fields set on it (not yet saved)."""
    given = identity.identifiers()
    owner = {
        identifier: next((lead for lead in matches if getattr(lead, identifier) == value), None)
        for identifier, value in given.items()
    }
    lead = next(owner[identifier] for identifier in IDENTIFIER_FIELDS if owner.get(identifier))
    conflicts = []
    changed = []
    for identifier, value in given.items():
        current = getattr(lead, identifier)
        if current == value:
            continue
        if owner[identifier] is not None:
            conflicts.append(
                {
                    "field": identifier,
                    "reason": "belongs_to_other_lead",
                    "lead_id": owner[identifier].pk,
                }
            )
        elif current:
            conflicts.append({"field": identifier, "reason": "differs_from_lead"})
        else:
            setattr(lead, identifier, value)
            changed.append(identifier)
    if identity.name and not lead.name:
        lead.name = identity.name
        changed.append("name")
    return lead, conflicts, changed


def _insert_lead(identity: LeadIdentity) -> Lead | None:
    """A new lead with these identifiers; None if a racing request inserted one first."""
    values = [identity.external_id, identity.phone, identity.email, identity.name]
    created_at = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(INSERT_LEAD, [*values, connection.ops.adapt_datetimefield_value(created_at)])
        row = cursor.fetchone()
    if row is None:
        return None
    fields = ["id", "external_id", "phone", "email", "name", "created_at"]
    return Lead.from_db(connection.alias, fields, [row[0], *values, created_at])


def close_contact(*, contact: Contact) -> Contact:
    """Close a waiting or open contact; an operator's freed place goes to the queue at once."""
    with transaction.atomic():
        # A conditional update, so two concurrent closes cannot both succeed.
        closed = Contact.objects.filter(
            pk=contact.pk, status__in=[Contact.Status.WAITING, Contact.Status.OPEN]
        ).update(status=Contact.Status.CLOSED, closed_at=timezone.now())
        if not closed:
            raise Conflict("This contact is already closed.")
        # Read back with everything the answer shows, before the commit: a query after
        # it could fail (the database going away) and answer an error for a close
        # that was stored.
        contact = Contact.objects.select_related("lead", "source", "operator").get(pk=contact.pk)
        if contact.operator_id is not None:
            drain_waiting_for_operator(operator_id=contact.operator_id, trigger="contact_closed")
    return contact


@transaction.atomic
def reassign_contact(*, contact: Contact, operator: Operator | None = None) -> Contact:
    """Move a waiting or open contact to `operator`, or to whoever the source's rule picks.

    Raises Conflict with the reason when the named operator cannot take it (inactive,
    not on the source, at the limit) or, with no operator named, when nobody else can.
    The previous operator's freed place then goes to the waiting queue.
    """
    # The lead too, so the answer needs no query after the commit (see close_contact).
    contact = (
        Contact.objects.select_for_update(of=("self",))
        .select_related("source", "lead")
        .get(pk=contact.pk)
    )
    if contact.status == Contact.Status.CLOSED:
        raise Conflict("A closed contact cannot be reassigned.")
    previous_operator_id = contact.operator_id
    # Every operator this may touch, locked up front in id order: the engine's order.
    involved = Q(weights__source=contact.source) | Q(pk=previous_operator_id)
    if operator is not None:
        involved |= Q(pk=operator.pk)
    list(Operator.objects.select_for_update(of=("self",)).filter(involved).order_by("id"))
    if operator is None:
        assignment = choose_operator(
            source=contact.source, exclude_operator_id=previous_operator_id
        )
        if assignment.operator is None:
            raise Conflict("No other operator on this source is active and under the limit.")
        new_operator, decision = assignment.operator, assignment.decision
    else:
        if operator.pk == previous_operator_id:
            raise Conflict(f"The contact is already with {operator.name}.")
        new_operator = Operator.objects.get(pk=operator.pk)
        assert_assignable(operator=new_operator, source=contact.source)
        decision = {
            "strategy": "manual",
            "candidates": [],
            "chosen_operator_id": new_operator.pk,
        }
    contact.operator = new_operator
    contact.status = Contact.Status.OPEN
    contact.assigned_at = timezone.now()
    contact.decision = decision
    contact.save(update_fields=["operator", "status", "assigned_at", "decision"])
    if previous_operator_id is not None:
        drain_waiting_for_operator(operator_id=previous_operator_id, trigger="contact_reassigned")
    return contact


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
        raise Conflict("This idempotency key was already used for a different request.")
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
