"""A contact's timeline: /api/contacts/{id}/history/ and the contact's admin page.

Staff see every step with the engine's decision at it; an operator reads the steps of a
contact it holds now, without decisions and without other operators; bots read none.
"""

from datetime import UTC, datetime

import pytest
from django.contrib import admin
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework.test import APIClient

from distribution import contacts, offers
from distribution.admin.contacts import ContactHistoryInline
from distribution.models import Contact, ContactHistory, Operator
from distribution.sources import set_source_weights
from leads.identity import build_identity
from tests.factories import ContactFactory, OperatorFactory, SourceFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def source():
    """Offers with a minute to accept, round robin in operator-id order."""
    return SourceFactory(code="shop-bot", accept_timeout_seconds=60, strategy="round_robin")


@pytest.fixture
def ivan(source) -> Operator:
    return OperatorFactory(name="Ivan", user=UserFactory(username="ivan"))


@pytest.fixture
def maria(source, ivan) -> Operator:
    operator = OperatorFactory(name="Maria", user=UserFactory(username="maria"))
    set_source_weights(source=source, weights={ivan.pk: 1, operator.pk: 1})
    return operator


@pytest.fixture
def passed_on(source, ivan, maria) -> Contact:
    """Offered to Ivan, who declined it ("Wrong city"), then offered to Maria, who accepted."""
    contact = contacts.register_contact(source=source, identity=build_identity(external_id="a"))
    assert contact.operator == ivan
    contact = offers.decline_offer(contact=contact, by_operator=ivan, reason="Wrong city")
    assert contact.operator == maria
    return offers.accept_offer(contact=contact, by_operator=maria)


def client_of(operator: Operator) -> APIClient:
    client = APIClient()
    client.force_authenticate(operator.user)
    return client


def history_url(contact: Contact) -> str:
    return f"/api/contacts/{contact.pk}/history/"


def test_staff_read_every_step_in_order_with_the_decision_at_each(
    api, passed_on, ivan, maria, django_assert_max_num_queries
):
    with django_assert_max_num_queries(4):
        response = api.get(history_url(passed_on))

    assert response.status_code == 200
    steps = response.json()
    assert [(step["action"], step["status"]) for step in steps] == [
        ("offered", "offered"),
        ("declined", "waiting"),
        ("offered", "offered"),
        ("accepted", "open"),
    ]
    assert [step["action_label"] for step in steps] == [
        "Offered",
        "Declined",
        "Offered",
        "Accepted",
    ]
    assert [step["operator"] for step in steps] == [
        {"id": ivan.pk, "name": "Ivan"},
        {"id": ivan.pk, "name": "Ivan"},
        {"id": maria.pk, "name": "Maria"},
        {"id": maria.pk, "name": "Maria"},
    ]
    assert [step["detail"] for step in steps] == ["", "Wrong city", "", ""]
    first, declined, second, accepted = steps
    assert first["decision"]["chosen_operator_id"] == ivan.pk
    # The second offer left Ivan out: he declined this contact.
    assert second["decision"]["chosen_operator_id"] == maria.pk
    left_out = {c["name"]: c["left_out"] for c in second["decision"]["candidates"]}
    assert left_out == {"Ivan": "missed_offer", "Maria": None}
    assert declined["decision"] == accepted["decision"] == {}
    assert [step["at"] for step in steps] == sorted(step["at"] for step in steps)
    assert set(first) == {
        "id",
        "at",
        "action",
        "action_label",
        "status",
        "operator",
        "decision",
        "detail",
    }


def test_the_history_is_one_list_not_a_page(api, passed_on):
    response = api.get(history_url(passed_on), {"page": 2, "status": "closed"})

    assert response.status_code == 200
    assert isinstance(response.json(), list)
    assert len(response.json()) == 4


def test_an_operator_reads_its_own_contacts_steps_without_decisions_or_other_operators(
    passed_on, maria
):
    response = client_of(maria).get(history_url(passed_on))

    assert response.status_code == 200
    steps = response.json()
    assert [step["action"] for step in steps] == ["offered", "declined", "offered", "accepted"]
    assert [step["decision"] for step in steps] == [None, None, None, None]
    maria_brief = {"id": maria.pk, "name": "Maria"}
    assert [step["operator"] for step in steps] == [None, None, maria_brief, maria_brief]
    # Ivan's reason for passing is his, not hers to read.
    assert [step["detail"] for step in steps] == ["", "", "", ""]
    assert "Ivan" not in response.content.decode()


def test_an_operator_who_no_longer_holds_the_contact_gets_404(passed_on, ivan):
    response = client_of(ivan).get(history_url(passed_on))

    assert response.status_code == 404
    assert set(response.json()) == {"detail"}


def test_another_operators_contact_is_404(passed_on, source):
    stranger = OperatorFactory(name="Oleg", user=UserFactory(username="oleg"))

    assert client_of(stranger).get(history_url(passed_on)).status_code == 404


def test_a_bot_may_not_read_a_history_even_of_its_own_source(passed_on, source, bot_client):
    response = bot_client(source).get(history_url(passed_on))

    assert response.status_code == 403
    assert "decision" not in response.content.decode()


def test_an_anonymous_request_is_401(passed_on):
    assert APIClient().get(history_url(passed_on)).status_code == 401


def test_a_missing_contact_is_404(api):
    assert api.get("/api/contacts/999999/history/").status_code == 404


# The admin: the contact's page shows its timeline, which no one can change there.


def contact_page(contact: Contact) -> str:
    return reverse("admin:distribution_contact_change", args=[contact.pk])


def timeline_of(response):
    [formset] = [
        inline
        for inline in response.context["inline_admin_formsets"]
        if isinstance(inline.opts, ContactHistoryInline)
    ]
    return formset


def test_the_contact_page_shows_its_steps_with_their_decisions(admin_client, passed_on):
    response = admin_client.get(contact_page(passed_on))

    assert response.status_code == 200
    timeline = timeline_of(response)
    assert [form.original.action for form in timeline] == [
        "offered",
        "declined",
        "offered",
        "accepted",
    ]
    section = response.content.decode().split('id="history-group"')[1]
    assert "Wrong city" in section
    assert "Offer expired" not in section
    # The second offer's decision, as the contact's own decision is shown.
    assert "missed the offer" in section and "chosen" in section
    assert "Strategy: <b>Round robin (smooth, by weight)</b>" in section


def test_the_timeline_shows_times_in_the_viewers_zone(admin_client, settings):
    settings.TIME_ZONE = "Asia/Vladivostok"  # UTC+10
    contact = ContactFactory(open=True, operator__name="Ivan")
    ContactHistory.objects.create(
        contact=contact,
        at=datetime(2026, 1, 15, 9, 0, 5, tzinfo=UTC),
        action=ContactHistory.Action.ASSIGNED,
        status=Contact.Status.OPEN,
        operator=contact.operator,
    )

    page = admin_client.get(contact_page(contact)).content.decode()

    assert "Jan. 15, 2026, 19:00:05 +10" in page


def test_the_timeline_cannot_be_added_to_changed_or_deleted_in_the_admin(
    admin_client, passed_on, rf, admin_user
):
    response = admin_client.get(contact_page(passed_on))

    timeline = timeline_of(response)
    assert not timeline.has_add_permission
    assert not timeline.has_change_permission
    assert not timeline.has_delete_permission
    assert timeline.formset.extra == 0
    assert ContactHistory not in admin.site._registry
    request = rf.get("/")
    request.user = admin_user
    inline = ContactHistoryInline(Contact, admin.site)
    assert not inline.has_add_permission(request, passed_on)
    assert not inline.has_change_permission(request, passed_on)
    assert not inline.has_delete_permission(request, passed_on)


def test_the_timeline_costs_the_same_queries_however_many_steps(
    admin_client, passed_on, maria, source
):
    def queries_of_page() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert admin_client.get(contact_page(passed_on)).status_code == 200
        return len(queries)

    few = queries_of_page()
    # Handed back and forth: more steps, with other operators in them.
    oleg = OperatorFactory(name="Oleg")
    set_source_weights(source=source, weights={maria.pk: 1, oleg.pk: 1})
    contacts.reassign_contact(contact=passed_on, operator=oleg)
    contacts.reassign_contact(contact=passed_on, operator=maria)

    assert ContactHistory.objects.filter(contact=passed_on).count() == 6
    assert queries_of_page() == few
