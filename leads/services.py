"""Finding or creating the lead a contact comes from."""

from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from leads import queries
from leads.identity import IDENTIFIER_FIELDS, LeadIdentity
from leads.models import Lead

# A racing request can take a new lead's identifiers first; matching again then finds
# the winner's row. Three tries cover a lead whose identifiers race with several others.
LEAD_MATCH_ATTEMPTS = 3


def find_or_create_lead(*, identity: LeadIdentity) -> tuple[Lead, list[dict[str, Any]]]:
    """The lead these identifiers belong to, and the identifiers that could not be attached.

    Identifiers the found lead lacks are added to it, unless another lead owns them:
    those, and values that differ from the lead's own, are reported, never moved.
    Runs in the caller's transaction, which holds the lead's row lock until it ends
    (found leads are locked, a new one is the inserter's).
    """
    for _ in range(LEAD_MATCH_ATTEMPTS):
        found = _match_or_create_lead(identity)
        if found is not None:
            return found
    raise IntegrityError("A lead's identifiers kept being taken by racing requests.")


def _match_or_create_lead(identity: LeadIdentity) -> tuple[Lead, list[dict[str, Any]]] | None:
    """The lead and its conflicts; None when a racing request took an identifier first."""
    matches = queries.leads_with_any(identity.identifiers())
    if not matches:
        lead = queries.insert_lead(
            external_id=identity.external_id,
            phone=identity.phone,
            email=identity.email,
            name=identity.name,
            now=timezone.now(),
        )
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
