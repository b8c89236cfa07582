"""Normalising lead identifiers, and matching them: pure functions, no database."""

from dataclasses import dataclass
from functools import reduce
from operator import or_

import phonenumbers
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db.models import Q
from django.utils.translation import gettext, ngettext

IDENTIFIER_FIELDS = ("external_id", "phone", "email")
MAX_EXTERNAL_ID_LENGTH = 128
MAX_EMAIL_LENGTH = 254
MAX_NAME_LENGTH = 200


class InvalidIdentity(ValueError):
    """Bad lead identifiers; `errors` maps a field name to its messages."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__(errors)
        self.errors = errors


@dataclass(frozen=True)
class LeadIdentity:
    """A lead's identifiers, normalised: None where absent, at least one present."""

    external_id: str | None = None
    phone: str | None = None
    email: str | None = None
    name: str = ""

    def identifiers(self) -> dict[str, str]:
        """The present identifiers, in matching order."""
        values = {field: getattr(self, field) for field in IDENTIFIER_FIELDS}
        return {field: value for field, value in values.items() if value}


def normalise_phone(raw: str, region: str | None = None) -> str:
    """E.164 form of a phone number; a number without a country code is read in `region`."""
    try:
        number = phonenumbers.parse(raw, region or settings.LEADS_DEFAULT_PHONE_REGION)
    except phonenumbers.NumberParseException:
        raise ValueError(gettext("Enter a valid phone number.")) from None
    if not phonenumbers.is_valid_number(number):
        raise ValueError(gettext("Enter a valid phone number."))
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalise_email(raw: str) -> str:
    email = raw.strip().lower()
    if len(email) > MAX_EMAIL_LENGTH:
        raise ValueError(_too_long(MAX_EMAIL_LENGTH))
    try:
        validate_email(email)
    except ValidationError:
        raise ValueError(gettext("Enter a valid email address.")) from None
    return email


def normalise_external_id(raw: str) -> str:
    external_id = raw.strip()
    if len(external_id) > MAX_EXTERNAL_ID_LENGTH:
        raise ValueError(_too_long(MAX_EXTERNAL_ID_LENGTH))
    return external_id


def _too_long(limit: int) -> str:
    return ngettext(
        "Ensure this field has no more than %(limit)d character.",
        "Ensure this field has no more than %(limit)d characters.",
        limit,
    ) % {"limit": limit}


NORMALISERS = {
    "external_id": normalise_external_id,
    "phone": normalise_phone,
    "email": normalise_email,
}


def build_identity(
    *,
    external_id: str | None = None,
    phone: str | None = None,
    email: str | None = None,
    name: str | None = None,
) -> LeadIdentity:
    """Normalise raw identifiers; raise InvalidIdentity with every field's problem."""
    raw = {"external_id": external_id, "phone": phone, "email": email}
    errors: dict[str, list[str]] = {}
    normalised: dict[str, str | None] = {}
    for field, value in raw.items():
        if value is None or not value.strip():
            normalised[field] = None
            continue
        try:
            normalised[field] = NORMALISERS[field](value)
        except ValueError as exc:
            errors[field] = [str(exc)]
    name = (name or "").strip()
    if len(name) > MAX_NAME_LENGTH:
        errors["name"] = [_too_long(MAX_NAME_LENGTH)]
    if not errors and not any(normalised.values()):
        errors["non_field_errors"] = [
            gettext("Give at least one identifier: external_id, phone or email.")
        ]
    if errors:
        raise InvalidIdentity(errors)
    return LeadIdentity(name=name, **normalised)


def identifier_values(term: str) -> dict[str, str]:
    """What `term` is as each lead identifier, normalised as intake does, where it can be.

    "8 (916) 123-45-67" is the phone +79161234567, "Ann@Example.com" the email
    ann@example.com; any short enough text can be an external id.
    """
    values = {}
    for field, normalise in NORMALISERS.items():
        try:
            values[field] = normalise(term)
        except ValueError:
            continue
    return values


def identifier_lookup(values: dict[str, str], prefix: str = "") -> Q | None:
    """Exact matches on those identifiers (the unique indexes), as a filter on leads, or
    on rows whose lead is at `prefix` ("lead__"); None when there are none."""
    matches = [Q(**{f"{prefix}{field}": value}) for field, value in values.items()]
    return reduce(or_, matches) if matches else None
