"""POST /api/contacts/ (the bots' intake), reading a contact back, and closing it."""

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from distribution.models import Contact
from leads.models import Lead
from tests.factories import (
    ContactFactory,
    OperatorFactory,
    OperatorSourceWeightFactory,
    SourceFactory,
    StaffUserFactory,
)

pytestmark = pytest.mark.django_db

URL = "/api/contacts/"


@pytest.fixture
def source():
    source = SourceFactory(code="telegram-bot")
    OperatorSourceWeightFactory(
        source=source, operator=OperatorFactory(name="Ivan", max_open_contacts=1)
    )
    return source


def test_intake_creates_lead_and_assigns_operator(api, source):
    response = api.post(
        URL,
        {
            "source": "telegram-bot",
            "lead": {"phone": "8 916 123-45-67", "email": "Anna@Example.com", "name": "Anna"},
            "payload": {"text": "Hello"},
        },
        format="json",
    )

    assert response.status_code == 201, response.data
    body = response.json()
    contact = Contact.objects.get()
    lead = Lead.objects.get()
    assert body["id"] == contact.pk
    assert body["status"] == "open"
    assert body["lead"] == {
        "id": lead.pk,
        "external_id": None,
        "phone": "+79161234567",
        "email": "anna@example.com",
        "name": "Anna",
    }
    assert body["source"] == {"id": source.pk, "code": "telegram-bot"}
    assert body["operator"]["name"] == "Ivan"
    assert body["payload"] == {"text": "Hello"}
    assert body["decision"]["chosen_operator_id"] == body["operator"]["id"]
    assert body["created_at"] and body["assigned_at"] and body["closed_at"] is None


def test_intake_recognises_a_returning_lead(api, source):
    first = api.post(
        URL, {"source": "telegram-bot", "lead": {"phone": "+79161234567"}}, format="json"
    )
    again = api.post(
        URL, {"source": "telegram-bot", "lead": {"phone": "8-916-123-45-67"}}, format="json"
    )

    assert (first.status_code, again.status_code) == (201, 201)
    assert first.json()["lead"]["id"] == again.json()["lead"]["id"]
    assert Lead.objects.count() == 1
    assert Contact.objects.count() == 2


def test_intake_with_nobody_eligible_stores_the_contact_waiting(api, source):
    api.post(URL, {"source": "telegram-bot", "lead": {"external_id": "a"}}, format="json")

    response = api.post(
        URL, {"source": "telegram-bot", "lead": {"external_id": "b"}}, format="json"
    )

    assert response.status_code == 201
    assert response.json()["status"] == "waiting"
    assert response.json()["operator"] is None
    assert Contact.objects.get(pk=response.json()["id"]).status == Contact.Status.WAITING


def test_intake_reports_identifiers_owned_by_another_lead(api, source):
    api.post(URL, {"source": "telegram-bot", "lead": {"email": "a@example.com"}}, format="json")
    other = api.post(
        URL, {"source": "telegram-bot", "lead": {"external_id": "crm-7"}}, format="json"
    )

    response = api.post(
        URL,
        {"source": "telegram-bot", "lead": {"external_id": "crm-7", "email": "a@example.com"}},
        format="json",
    )

    assert response.status_code == 201
    assert response.json()["lead"]["id"] == other.json()["lead"]["id"]
    assert response.json()["lead_conflicts"][0]["field"] == "email"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"source": "no-such-bot", "lead": {"phone": "+79161234567"}}, "source"),
        ({"lead": {"phone": "+79161234567"}}, "source"),
        ({"source": "telegram-bot"}, "lead"),
        ({"source": "telegram-bot", "lead": {}}, "lead"),
        ({"source": "telegram-bot", "lead": {"name": "No identifier"}}, "lead"),
        ({"source": "telegram-bot", "lead": {"phone": "123"}}, "lead"),
        ({"source": "telegram-bot", "lead": {"email": "not-an-email"}}, "lead"),
        ({"source": "telegram-bot", "lead": "+79161234567"}, "lead"),
        ({"source": "telegram-bot", "lead": {"phone": ["+79161234567"]}}, "lead"),
        ({"source": "telegram-bot", "lead": {"external_id": "x"}, "payload": [1, 2]}, "payload"),
        ({"source": "telegram-bot", "lead": {"external_id": "x"}, "payload": "text"}, "payload"),
        ({"source": ["telegram-bot"], "lead": {"external_id": "x"}}, "source"),
    ],
)
def test_bad_intake_is_400_with_field_errors_and_stores_nothing(api, source, body, field):
    response = api.post(URL, body, format="json")

    assert response.status_code == 400
    assert field in response.json()
    assert Contact.objects.count() == 0
    assert Lead.objects.count() == 0


def test_field_errors_name_the_bad_lead_identifier(api, source):
    response = api.post(
        URL, {"source": "telegram-bot", "lead": {"phone": "123", "email": "x@"}}, format="json"
    )

    assert response.status_code == 400
    assert set(response.json()["lead"]) == {"phone", "email"}


def test_inactive_source_is_400_on_source(api, source):
    source.is_active = False
    source.save()

    response = api.post(
        URL, {"source": "telegram-bot", "lead": {"external_id": "x"}}, format="json"
    )

    assert response.status_code == 400
    assert "inactive" in response.json()["source"][0]
    assert Contact.objects.count() == 0


@pytest.mark.parametrize("raw", ["{not json", "[1, 2]", '"text"', ""])
def test_malformed_body_is_400_and_stores_nothing(api, source, raw):
    response = api.post(URL, raw, content_type="application/json")

    assert response.status_code == 400
    assert Contact.objects.count() == 0


def test_get_contact_returns_it(api):
    contact = ContactFactory(open=True)

    response = api.get(f"{URL}{contact.pk}/")

    assert response.status_code == 200
    assert response.json()["id"] == contact.pk
    assert response.json()["operator"]["id"] == contact.operator_id


def test_get_unknown_contact_is_404(api):
    assert api.get(f"{URL}999999/").status_code == 404


def test_close_frees_load_and_closing_twice_is_409(api, source):
    first = api.post(URL, {"source": "telegram-bot", "lead": {"external_id": "a"}}, format="json")
    waiting = api.post(URL, {"source": "telegram-bot", "lead": {"external_id": "b"}}, format="json")
    assert waiting.json()["status"] == "waiting"

    closed = api.post(f"{URL}{first.json()['id']}/close/")
    again = api.post(f"{URL}{first.json()['id']}/close/")

    assert closed.status_code == 200
    assert closed.json()["status"] == "closed" and closed.json()["closed_at"]
    assert again.status_code == 409
    assert again.json() == {"detail": "This contact is already closed."}
    assert Contact.objects.get(pk=waiting.json()["id"]).status == Contact.Status.OPEN


def test_anonymous_is_401_with_www_authenticate(source):
    response = APIClient().post(
        URL, {"source": "telegram-bot", "lead": {"external_id": "x"}}, format="json"
    )

    assert response.status_code == 401
    assert response["WWW-Authenticate"]
    assert Contact.objects.count() == 0


def test_bad_token_is_401(source):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")

    assert client.get(f"{URL}1/").status_code == 401


def test_non_staff_user_is_403(source):
    user = StaffUserFactory(is_staff=False)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")

    response = client.post(
        URL, {"source": "telegram-bot", "lead": {"external_id": "x"}}, format="json"
    )

    assert response.status_code == 403
    assert Contact.objects.count() == 0


def test_staff_admin_session_works(client, staff_user, source):
    client.force_login(staff_user)

    response = client.post(
        URL,
        {"source": "telegram-bot", "lead": {"external_id": "x"}},
        content_type="application/json",
    )

    assert response.status_code == 201
