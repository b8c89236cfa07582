import pytest
from rest_framework.test import APIClient

from tests.factories import ContactFactory, LeadFactory, OperatorFactory, SourceFactory

pytestmark = pytest.mark.django_db


def test_lead_list_is_paginated_in_fixed_queries(api, django_assert_max_num_queries):
    LeadFactory.create_batch(30)

    with django_assert_max_num_queries(3):
        response = api.get("/api/leads/")

    assert response.status_code == 200
    assert response.data["count"] == 30
    assert set(response.data["results"][0]) == {
        "id",
        "external_id",
        "phone",
        "email",
        "name",
        "created_at",
    }


@pytest.mark.parametrize(
    "search",
    ["8 (916) 123-45-67", "+79161234567", "1234567", "ANNA@EXAMPLE", "crm-42", "Anna K"],
)
def test_lead_search_finds_by_any_identifier(api, search):
    wanted = LeadFactory(
        external_id="crm-42", phone="+79161234567", email="anna@example.com", name="Anna K"
    )
    LeadFactory(external_id="other", phone="+79990000000", email="ivan@example.org", name="Ivan")

    response = api.get("/api/leads/", {"search": search})

    assert response.status_code == 200
    assert [lead["id"] for lead in response.data["results"]] == [wanted.pk]


def test_lead_shows_its_contacts_from_every_source(api, django_assert_max_num_queries):
    lead = LeadFactory()
    operator = OperatorFactory(name="Ivan")
    telegram, site = SourceFactory(code="telegram"), SourceFactory(code="site")
    ContactFactory(lead=lead, source=telegram, open=True, operator=operator)
    ContactFactory(lead=lead, source=site)
    ContactFactory(source=site)

    with django_assert_max_num_queries(3):
        response = api.get(f"/api/leads/{lead.pk}/")

    assert response.status_code == 200
    contacts = {contact["source"]["code"]: contact for contact in response.data["contacts"]}
    assert set(contacts) == {"telegram", "site"}
    assert contacts["telegram"]["operator"] == {"id": operator.pk, "name": "Ivan"}
    assert contacts["telegram"]["status"] == "open"
    assert contacts["site"]["operator"] is None
    assert contacts["site"]["assigned_at"] is None


def test_unknown_lead_is_404(api):
    response = api.get("/api/leads/999999/")

    assert response.status_code == 404
    assert set(response.data) == {"detail"}


def test_a_bot_cannot_read_leads(bot_client):
    contact = ContactFactory()
    bot = bot_client(contact.source)

    assert bot.get("/api/leads/").status_code == 403
    assert bot.get(f"/api/leads/{contact.lead_id}/").status_code == 403


def test_anonymous_cannot_read_leads(db):
    assert APIClient().get("/api/leads/").status_code == 401
