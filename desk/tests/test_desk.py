"""The operator's desk: who may open it, what it shows, and what its buttons do."""

from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from distribution.contacts import register_contact
from distribution.models import Contact, Operator, OperatorStatusChange
from distribution.operators import set_operator_status
from leads.identity import build_identity
from tests.factories import (
    ContactFactory,
    LeadFactory,
    OperatorFactory,
    OperatorSourceWeightFactory,
    SourceFactory,
    StaffUserFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def ivan():
    """An operator with a desk login, on the Telegram bot, room for 3."""
    operator = OperatorFactory(name="Ivan", user=UserFactory(username="ivan"), max_open_contacts=3)
    OperatorSourceWeightFactory(operator=operator, source__code="telegram-bot", weight=1)
    return operator


@pytest.fixture
def desk(client, ivan):
    """The test client signed in as Ivan."""
    client.force_login(ivan.user)
    return client


def open_contact(operator: Operator, **fields) -> Contact:
    return ContactFactory(
        open=True, operator=operator, source=operator.weights.first().source, **fields
    )


def test_the_desk_sends_an_anonymous_visitor_to_sign_in(client):
    response = client.get("/desk/")

    assert response.status_code == 302
    assert response["Location"] == "/desk/login/?next=/desk/"


def test_a_refresh_after_the_session_ended_takes_the_whole_page_to_sign_in(client):
    response = client.get("/desk/live/", headers={"HX-Request": "true"})

    assert response["HX-Redirect"] == "/desk/login/"


def test_the_desk_sends_staff_without_an_operator_login_to_the_board(client):
    client.force_login(StaffUserFactory())

    assert client.get("/desk/")["Location"] == "/desk/board/"


def test_a_login_that_is_neither_staff_nor_an_operator_gets_403(client):
    client.force_login(UserFactory())

    response = client.get("/desk/")

    assert response.status_code == 403
    assert "The desk is for operators." in response.content.decode()


def test_the_desk_lists_the_operators_own_open_contacts_oldest_first(desk, ivan):
    now = timezone.now()
    newer = open_contact(ivan, lead__name="Newer lead", created_at=now - timedelta(minutes=2))
    older = open_contact(ivan, lead__name="Older lead", created_at=now - timedelta(minutes=30))
    ContactFactory(closed=True, operator=ivan, lead__name="Closed lead")
    ContactFactory(open=True, lead__name="Someone else's lead")

    response = desk.get("/desk/")

    assert [row.contact for row in response.context["contacts"]] == [older, newer]
    page = response.content.decode()
    assert "Closed lead" not in page
    assert "Someone else's lead" not in page
    assert "30\xa0minutes ago" in page  # timesince keeps the number with its unit


def test_the_desk_shows_the_lead_and_its_message_as_text(desk, ivan):
    open_contact(
        ivan,
        lead=LeadFactory(name="Anna", phone="+79161234567", email="anna@example.com"),
        payload={"text": "<script>alert(1)</script> Hello"},
    )

    page = desk.get("/desk/").content.decode()

    assert "Anna" in page
    assert "+79161234567" in page and "anna@example.com" in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; Hello" in page
    assert "<script>alert(1)" not in page


def test_contacts_given_since_the_last_look_are_counted_as_new(desk, ivan):
    open_contact(ivan)
    desk.get("/desk/")  # the look
    open_contact(ivan, lead__name="Arrived later")

    live = desk.get("/desk/live/")

    assert live.context["new"] == 1
    assert "1 new since you last looked" in live.content.decode()
    assert [row.is_new for row in live.context["contacts"]] == [False, True]


def test_marking_seen_clears_the_count(desk, ivan):
    desk.get("/desk/")
    open_contact(ivan)

    desk.post("/desk/seen/")

    assert desk.get("/desk/live/").context["new"] == 0


def test_the_refresh_answers_204_while_nothing_changed_and_the_part_when_something_did(desk, ivan):
    version = desk.get("/desk/").context["version"]

    assert desk.get(f"/desk/live/?version={version}").status_code == 204

    open_contact(ivan)
    changed = desk.get(f"/desk/live/?version={version}")
    assert changed.status_code == 200
    assert changed.context["version"] != version


def test_closing_a_contact_frees_its_place_for_the_oldest_waiting_one(desk, ivan):
    contacts = [open_contact(ivan) for _ in range(3)]
    waiting = ContactFactory(source=contacts[0].source)

    response = desk.post(f"/desk/contacts/{contacts[0].pk}/close/", follow=True)

    contacts[0].refresh_from_db()
    waiting.refresh_from_db()
    assert contacts[0].status == Contact.Status.CLOSED
    assert (waiting.status, waiting.operator) == (Contact.Status.OPEN, ivan)
    assert f"Contact #{contacts[0].pk} closed." in response.content.decode()


def test_closing_twice_says_it_is_already_closed(desk, ivan):
    contact = open_contact(ivan)
    desk.post(f"/desk/contacts/{contact.pk}/close/")

    response = desk.post(f"/desk/contacts/{contact.pk}/close/", follow=True)

    assert "Not closed: This contact is already closed." in response.content.decode()


def test_handing_back_gives_the_contact_to_someone_else_by_the_rule(desk, ivan):
    contact = open_contact(ivan)
    maria = OperatorFactory(name="Maria")
    OperatorSourceWeightFactory(operator=maria, source=contact.source, weight=1)

    response = desk.post(f"/desk/contacts/{contact.pk}/hand-back/", follow=True)

    contact.refresh_from_db()
    assert contact.operator == maria
    assert (
        f"Contact #{contact.pk} handed back; the source&#x27;s rule gave it to Maria."
        in response.content.decode()
    )


def test_handing_back_with_nobody_to_take_it_says_why_and_keeps_it(desk, ivan):
    contact = open_contact(ivan)
    OperatorSourceWeightFactory(
        operator__name="Maria", operator__status=Operator.Status.AWAY, source=contact.source
    )

    response = desk.post(f"/desk/contacts/{contact.pk}/hand-back/", follow=True)

    contact.refresh_from_db()
    assert contact.operator == ivan
    assert response.request["PATH_INFO"] == f"/desk/contacts/{contact.pk}/"
    assert (
        "Not handed back: No other operator on this source can take it now"
        in response.content.decode()
    )


@pytest.mark.parametrize(
    ("method", "route"),
    [
        ("get", "/desk/contacts/{}/"),
        ("post", "/desk/contacts/{}/close/"),
        ("post", "/desk/contacts/{}/hand-back/"),
    ],
)
def test_another_operators_contact_is_404_on_every_desk_route(desk, method, route):
    theirs = ContactFactory(open=True)

    response = getattr(desk, method)(route.format(theirs.pk))

    assert response.status_code == 404
    theirs.refresh_from_db()
    assert theirs.status == Contact.Status.OPEN


def test_the_desk_buttons_take_only_post(desk, ivan):
    contact = open_contact(ivan)

    assert desk.get(f"/desk/contacts/{contact.pk}/close/").status_code == 405
    contact.refresh_from_db()
    assert contact.status == Contact.Status.OPEN


def test_the_status_switch_sets_away_and_keeps_the_history(desk, ivan):
    response = desk.post("/desk/status/", {"status": "away"}, follow=True)

    ivan.refresh_from_db()
    assert ivan.status == Operator.Status.AWAY
    assert OperatorStatusChange.objects.filter(operator=ivan).latest("id").status == "away"
    assert "You are away." in response.content.decode()


def test_becoming_available_takes_the_waiting_contacts_at_once(desk, ivan):
    ivan.status = Operator.Status.AWAY
    ivan.save()
    waiting = ContactFactory(source=ivan.weights.first().source)

    desk.post("/desk/status/", {"status": "available"})

    waiting.refresh_from_db()
    assert (waiting.status, waiting.operator) == (Contact.Status.OPEN, ivan)


def test_a_status_not_in_the_list_changes_nothing(desk, ivan):
    response = desk.post("/desk/status/", {"status": "asleep"}, follow=True)

    ivan.refresh_from_db()
    assert ivan.status == Operator.Status.AVAILABLE
    assert "Choose available, away or offline." in response.content.decode()


def test_the_desk_tells_an_away_operator_that_new_contacts_go_to_others(desk, ivan):
    ivan.status = Operator.Status.AWAY
    ivan.save()

    page = desk.get("/desk/").content.decode()

    assert "New contacts go to others while you are not available" in page


def test_the_leads_history_shows_every_contact_from_every_source_and_who_had_it(desk, ivan):
    lead = LeadFactory(name="Anna")
    mine = open_contact(ivan, lead=lead, payload={"text": "Second message"})
    ContactFactory(
        closed=True,
        lead=lead,
        source=SourceFactory(name="Site form"),
        operator__name="Maria",
        payload={"text": "First message"},
    )
    ContactFactory(lead=LeadFactory(name="Other lead"))

    response = desk.get(f"/desk/contacts/{mine.pk}/")

    assert [contact.lead for contact in response.context["history"]] == [lead, lead]
    page = response.content.decode()
    assert "Site form" in page and "Maria" in page and "First message" in page
    assert "you" in page


def test_times_on_the_desk_are_in_the_operators_zone(desk, ivan):
    ivan.time_zone = "Asia/Vladivostok"  # UTC+10
    ivan.save()
    contact = open_contact(ivan, created_at=datetime(2026, 1, 15, 9, 0, tzinfo=UTC))

    page = desk.get(f"/desk/contacts/{contact.pk}/").content.decode()

    assert "Jan. 15, 2026, 7 p.m." in page


def test_home_leads_operators_to_the_desk_and_staff_to_the_admin(client, ivan):
    assert b"Operators: the desk" in client.get("/").content

    client.force_login(ivan.user)
    assert client.get("/")["Location"] == reverse("desk:desk")

    client.force_login(StaffUserFactory())
    assert client.get("/")["Location"] == reverse("admin:index")


# Offers on the desk, and the desk's heartbeat.


@pytest.fixture
def offering(ivan):
    """Ivan's source makes offers with a minute to accept."""
    source = ivan.weights.first().source
    source.accept_timeout_seconds = 60
    source.save()
    return source


def offer_to(operator: Operator, lead: str = "ext-offer") -> Contact:
    source = operator.weights.first().source
    return register_contact(source=source, identity=build_identity(external_id=lead))


def test_an_offer_shows_above_the_open_contacts_with_its_time_left_and_answers(
    desk, ivan, offering
):
    contact = offer_to(ivan)

    page = desk.get("/desk/").content.decode()

    assert page.index("Offered to you") < page.index("My open contacts")
    assert f'action="/desk/contacts/{contact.pk}/accept/"' in page
    assert f'action="/desk/contacts/{contact.pk}/decline/"' in page
    assert "seconds left" in page


def test_accepting_on_the_desk_makes_the_contact_an_open_one(desk, ivan, offering):
    contact = offer_to(ivan)

    response = desk.post(f"/desk/contacts/{contact.pk}/accept/", follow=True)

    contact.refresh_from_db()
    assert contact.status == Contact.Status.OPEN
    assert f"Contact #{contact.pk} is yours." in response.content.decode()


def test_declining_on_the_desk_keeps_the_reason_and_passes_the_contact_on(desk, ivan, offering):
    contact = offer_to(ivan)

    response = desk.post(
        f"/desk/contacts/{contact.pk}/decline/", {"reason": "Wrong city"}, follow=True
    )

    contact.refresh_from_db()
    assert (contact.status, contact.operator) == (Contact.Status.WAITING, None)
    assert contact.offer_misses.get().reason == "Wrong city"
    assert f"Contact #{contact.pk} declined." in response.content.decode()


def test_an_accept_too_late_says_why(desk, ivan, offering):
    contact = offer_to(ivan)
    Contact.objects.filter(pk=contact.pk).update(
        offer_expires_at=timezone.now() - timedelta(seconds=1)
    )

    response = desk.post(f"/desk/contacts/{contact.pk}/accept/", follow=True)

    assert "Not accepted: This offer has expired" in response.content.decode()


def test_the_desk_and_its_refresh_are_the_heartbeat_written_at_most_every_15_seconds(desk, ivan):
    assert ivan.seen_at is None
    desk.get("/desk/")
    ivan.refresh_from_db()
    first = ivan.seen_at
    assert first is not None

    desk.get("/desk/live/")
    ivan.refresh_from_db()
    assert ivan.seen_at == first  # within 15 seconds: no write

    Operator.objects.filter(pk=ivan.pk).update(seen_at=first - timedelta(seconds=16))
    desk.get("/desk/live/")
    ivan.refresh_from_db()
    assert ivan.seen_at > first


def test_an_operator_set_away_by_the_service_is_told_why(desk, ivan):
    set_operator_status(operator=ivan, status="away", reason="no_heartbeat")

    page = desk.get("/desk/").content.decode()

    assert "The service set you away at" in page
    assert "the desk stopped answering" in page
