"""Normalising and matching lead identifiers."""

import pytest

from leads.identity import InvalidIdentity, build_identity
from leads.models import Lead
from leads.services import find_or_create_lead
from tests.factories import LeadFactory


@pytest.mark.parametrize("raw", ["+7 916 123-45-67", "8 (916) 123 45 67", "79161234567"])
def test_phone_is_normalised_to_e164_with_the_default_region(raw, settings):
    settings.LEADS_DEFAULT_PHONE_REGION = "RU"
    assert build_identity(phone=raw).phone == "+79161234567"


def test_email_is_lower_cased_and_blank_identifiers_are_absent():
    identity = build_identity(email="  Anna.Smirnova@Example.COM ", external_id="  ", phone="")
    assert identity.identifiers() == {"email": "anna.smirnova@example.com"}


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"phone": "12"}, "phone"),
        ({"phone": "not a phone"}, "phone"),
        ({"email": "anna@"}, "email"),
        ({"external_id": "x" * 129}, "external_id"),
        ({"external_id": "ok", "name": "n" * 201}, "name"),
        ({}, "non_field_errors"),
        ({"name": "Only a name"}, "non_field_errors"),
    ],
)
def test_bad_identifiers_are_reported_per_field(kwargs, field):
    with pytest.raises(InvalidIdentity) as error:
        build_identity(**kwargs)
    assert field in error.value.errors


@pytest.mark.django_db
class TestFindOrCreateLead:
    def test_matches_external_id_before_phone_and_email(self):
        by_external = LeadFactory(external_id="crm-1", phone=None)
        by_phone = LeadFactory(external_id=None, phone="+79161234567")

        lead, conflicts = find_or_create_lead(
            identity=build_identity(external_id="crm-1", phone="+79161234567")
        )

        assert lead == by_external
        assert conflicts == [
            {"field": "phone", "reason": "belongs_to_other_lead", "lead_id": by_phone.pk}
        ]
        by_external.refresh_from_db()
        assert by_external.phone is None

    def test_matches_phone_written_differently(self):
        known = LeadFactory(external_id=None, phone="+79161234567")

        lead, _ = find_or_create_lead(identity=build_identity(phone="8 916 123 45 67"))

        assert lead == known
        assert Lead.objects.count() == 1

    def test_matches_email_in_any_case_and_adds_missing_identifiers(self):
        known = LeadFactory(external_id=None, email="anna@example.com", name="")

        lead, conflicts = find_or_create_lead(
            identity=build_identity(email="ANNA@example.com", phone="+79161234567", name="Anna")
        )

        assert (lead, conflicts) == (known, [])
        known.refresh_from_db()
        assert (known.phone, known.name) == ("+79161234567", "Anna")

    def test_a_different_value_on_the_found_lead_is_reported_not_overwritten(self):
        known = LeadFactory(external_id="crm-1", email="old@example.com")

        _, conflicts = find_or_create_lead(
            identity=build_identity(external_id="crm-1", email="new@example.com")
        )

        assert conflicts == [{"field": "email", "reason": "differs_from_lead"}]
        known.refresh_from_db()
        assert known.email == "old@example.com"

    def test_creates_a_lead_with_all_given_identifiers(self):
        lead, conflicts = find_or_create_lead(
            identity=build_identity(external_id="e1", phone="+79161234567", email="a@b.ru")
        )

        lead.refresh_from_db()
        assert (lead.external_id, lead.phone, lead.email, conflicts) == (
            "e1",
            "+79161234567",
            "a@b.ru",
            [],
        )
