"""A contact's steps on the desk: the operator who holds it reads its own work only, with
no decisions and no other operator's name."""

import re
from datetime import UTC, datetime

import pytest

from distribution import contacts, offers
from distribution.models import Contact, ContactHistory, Operator
from distribution.sources import set_source_weights
from leads.identity import build_identity
from tests.factories import ContactFactory, OperatorFactory, SourceFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def source():
    """Offers with a minute to accept, round robin in operator-id order."""
    return SourceFactory(
        code="shop-bot", name="Shop bot", accept_timeout_seconds=60, strategy="round_robin"
    )


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
    offers.decline_offer(contact=contact, by_operator=ivan, reason="Wrong city")
    return offers.accept_offer(contact=contact, by_operator=maria)


def timeline_html(response) -> str:
    """The page's timeline section, without the lead's history below it."""
    page = response.content.decode()
    return page.split('id="timeline-heading"')[1].split('id="history-heading"')[0]


@pytest.fixture
def desk(client, maria):
    """The test client signed in as Maria, who holds the contact now."""
    client.force_login(maria.user)
    return client


def test_the_contact_page_shows_its_steps_oldest_first_with_another_operator_unnamed(
    desk, passed_on
):
    response = desk.get(f"/desk/contacts/{passed_on.pk}/")

    assert response.status_code == 200
    steps = response.context["steps"]
    assert [(step.action, step.who) for step in steps] == [
        ("offered", "another operator"),
        ("declined", "another operator"),
        ("offered", "you"),
        ("accepted", "you"),
    ]
    rows = re.findall(
        r'data-label="Step">([^<]*)</td>.*?data-label="Operator">([^<]*)</td>',
        timeline_html(response),
        re.DOTALL,
    )
    assert rows == [
        ("Offered", "another operator"),
        ("Declined", "another operator"),
        ("Offered", "you"),
        ("Accepted", "you"),
    ]


def test_the_desk_shows_no_decision_and_no_other_operators_name_or_reason(desk, passed_on):
    page = desk.get(f"/desk/contacts/{passed_on.pk}/").content.decode()

    assert "Ivan" not in page
    assert "Wrong city" not in page
    assert 'data-label="Note"' not in page  # no reason of hers to show: no column for one
    assert "round_robin" not in page and "missed_offer" not in page


def test_an_operator_reads_its_own_reason_for_declining(source, ivan, maria, client):
    contact = contacts.register_contact(source=source, identity=build_identity(external_id="a"))
    offers.decline_offer(contact=contact, by_operator=ivan, reason="Wrong city")
    # Staff may still give a declined contact back to the operator who passed on it.
    contacts.reassign_contact(contact=contact, operator=ivan)
    client.force_login(ivan.user)

    response = client.get(f"/desk/contacts/{contact.pk}/")

    notes = [step.note for step in response.context["steps"] if step.note]
    assert notes == ["Wrong city"]
    assert 'data-label="Note" class="excerpt">Wrong city</td>' in timeline_html(response)
    assert "Maria" not in response.content.decode()


def test_another_operators_contact_and_its_steps_are_404(passed_on, ivan, client):
    client.force_login(ivan.user)  # declined it: no longer his

    assert client.get(f"/desk/contacts/{passed_on.pk}/").status_code == 404


def test_the_steps_show_in_the_operators_time_zone(desk, maria):
    maria.time_zone = "Asia/Vladivostok"  # UTC+10
    maria.save()
    contact = ContactFactory(open=True, operator=maria)
    ContactHistory.objects.create(
        contact=contact,
        at=datetime(2026, 1, 15, 9, 0, tzinfo=UTC),
        action=ContactHistory.Action.ASSIGNED,
        status=Contact.Status.OPEN,
        operator=maria,
    )

    timeline = timeline_html(desk.get(f"/desk/contacts/{contact.pk}/"))

    assert "Jan. 15, 2026, 7 p.m." in timeline


def test_a_contact_without_recorded_steps_says_so(desk, maria):
    contact = ContactFactory(open=True, operator=maria)

    page = desk.get(f"/desk/contacts/{contact.pk}/").content.decode()

    assert "No steps recorded for this contact." in page
