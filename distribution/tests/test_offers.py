"""Offers with a deadline: a source with an accept timeout offers each contact; the
operator accepts it, declines it or lets it expire, and what comes of each."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from core.errors import Conflict
from distribution import contacts, offers, operators
from distribution.models import Contact, OfferMiss, Operator, OperatorStatusChange
from distribution.sources import create_source_key, set_source_weights
from events.models import Event
from leads.identity import build_identity
from tests.factories import OperatorFactory, SourceFactory, StaffUserFactory, UserFactory

pytestmark = pytest.mark.django_db

TIMEOUT = 60


@pytest.fixture
def source():
    return SourceFactory(code="shop-bot", accept_timeout_seconds=TIMEOUT, strategy="round_robin")


def team(source, *limits: int) -> list[Operator]:
    """Operators on the source with these limits, in id order (round robin goes in it)."""
    members = [
        OperatorFactory(name=f"Op{n}", max_open_contacts=limit) for n, limit in enumerate(limits)
    ]
    set_source_weights(source=source, weights={operator.pk: 1 for operator in members})
    return members


def intake(source, lead: str = "lead") -> Contact:
    return contacts.register_contact(source=source, identity=build_identity(external_id=lead))


def types_of(contact: Contact) -> list[str]:
    return [
        event.type
        for event in Event.objects.order_by("id")
        if event.data.get("contact", {}).get("id") == contact.pk
    ]


def later(contact: Contact, seconds: int) -> timezone.datetime:
    contact.refresh_from_db()
    return contact.offer_expires_at + timedelta(seconds=seconds)


def test_a_contact_of_a_source_with_a_timeout_is_offered_until_its_deadline(source):
    [anna] = team(source, 5)

    contact = intake(source)

    assert contact.status == Contact.Status.OFFERED
    assert contact.operator == anna
    assert contact.offer_expires_at == contact.assigned_at + timedelta(seconds=TIMEOUT)
    assert types_of(contact) == ["contact.created", "contact.offered"]


def test_without_a_timeout_contacts_open_at_once_as_before():
    source = SourceFactory()
    team(source, 5)

    contact = intake(source)

    assert (contact.status, contact.offer_expires_at) == (Contact.Status.OPEN, None)
    assert types_of(contact) == ["contact.created", "contact.assigned"]


def test_an_offer_counts_as_load(source):
    team(source, 1)
    intake(source, "first")

    second = intake(source, "second")

    assert second.status == Contact.Status.WAITING
    assert second.decision["candidates"][0]["left_out"] == "at_limit"


def test_accepting_opens_the_contact_and_accepting_again_changes_nothing(source):
    [anna] = team(source, 5)
    contact = intake(source)

    accepted = offers.accept_offer(contact=contact, by_operator=anna)
    again = offers.accept_offer(contact=contact, by_operator=anna)

    assert (accepted.status, accepted.offer_expires_at) == (Contact.Status.OPEN, None)
    assert again.status == Contact.Status.OPEN
    assert types_of(contact) == ["contact.created", "contact.offered", "contact.accepted"]


def test_an_accept_after_the_deadline_is_refused_with_the_reason(source):
    [anna] = team(source, 5)
    contact = intake(source)

    with pytest.raises(Conflict, match="offer has expired"):
        offers.accept_offer(contact=contact, by_operator=anna, now=later(contact, 1))

    contact.refresh_from_db()
    assert contact.status == Contact.Status.OFFERED  # the worker's expiry takes it on


def test_an_expired_offer_goes_to_the_next_operator_and_never_back(source):
    anna, boris = team(source, 5, 5)
    contact = intake(source)
    assert contact.operator == anna

    assert offers.expire_offers(later(contact, 1)) == 1

    contact.refresh_from_db()
    assert (contact.status, contact.operator) == (Contact.Status.OFFERED, boris)
    assert contact.decision["candidates"][0]["left_out"] == "missed_offer"
    assert list(OfferMiss.objects.values_list("operator__name", "kind")) == [("Op0", "expired")]
    assert types_of(contact) == [
        "contact.created",
        "contact.offered",
        "contact.offer_expired",
        "contact.requeued",
        "contact.offered",
    ]
    # An accept that lost the race to the expiry says so.
    with pytest.raises(Conflict, match="no longer yours"):
        offers.accept_offer(contact=contact, by_operator=anna)


def test_a_declined_contact_waits_when_nobody_else_can_take_it(source):
    [anna] = team(source, 5)
    contact = intake(source)

    declined = offers.decline_offer(contact=contact, by_operator=anna, reason="Not my language")

    assert (declined.status, declined.operator) == (Contact.Status.WAITING, None)
    miss = OfferMiss.objects.get()
    assert (miss.kind, miss.reason) == ("declined", "Not my language")
    declined_event = Event.objects.get(type="contact.declined")
    assert declined_event.data["reason"] == "Not my language"
    assert declined_event.data["contact"]["operator"]["name"] == "Op0"
    # Capacity appearing for the decliner does not bring the contact back to it.
    operators.update_operator(operator=anna, max_open_contacts=6)
    declined.refresh_from_db()
    assert declined.status == Contact.Status.WAITING


def test_a_requeued_contact_keeps_its_first_arrival_place(source):
    """An older requeued contact goes before a newer waiting one."""
    anna, boris = team(source, 1, 0)
    older = intake(source, "older")  # offered to Anna
    middle = intake(source, "middle")  # waits: Anna is full, Boris has no room
    newer = intake(source, "newer")  # waits
    assert older.operator == anna

    offers.decline_offer(contact=older, by_operator=anna)
    # Anna's freed place takes the oldest contact she has not passed on.
    middle.refresh_from_db()
    assert middle.operator == anna

    operators.update_operator(operator=boris, max_open_contacts=1)

    older.refresh_from_db()
    newer.refresh_from_db()
    assert (older.status, older.operator) == (Contact.Status.OFFERED, boris)
    assert newer.status == Contact.Status.WAITING


def test_a_contact_passed_on_max_offers_times_is_flagged_once(source):
    source.max_offers = 2
    source.save()
    anna, boris, vera = team(source, 5, 5, 5)
    contact = intake(source)

    offers.decline_offer(contact=contact, by_operator=anna)
    contact.refresh_from_db()
    assert contact.flagged_at is None
    assert contact.operator == boris
    offers.decline_offer(contact=contact, by_operator=boris)

    contact.refresh_from_db()
    assert contact.flagged_at is not None
    assert contact.operator == vera  # flagged, and still offered on
    flagged = Event.objects.get(type="contact.flagged")
    assert flagged.data["misses"] == 2


def test_letting_offers_expire_in_a_row_sets_the_operator_away_and_gives_back_its_offers(
    source, settings, django_capture_on_commit_callbacks
):
    settings.OFFER_MISSES_BEFORE_AWAY = 2
    [anna] = team(source, 5)
    other = SourceFactory(code="other-bot", accept_timeout_seconds=600)
    set_source_weights(source=other, weights={anna.pk: 1})
    first, second = intake(source, "a"), intake(source, "b")
    kept = intake(other, "c")  # an offer with a later deadline

    with django_capture_on_commit_callbacks(execute=True):
        assert offers.expire_offers(later(second, 1)) == 2

    anna.refresh_from_db()
    assert (anna.status, anna.missed_offers_in_row) == (Operator.Status.AWAY, 2)
    change = OperatorStatusChange.objects.filter(operator=anna).latest("changed_at")
    assert change.reason == "missed_offers"
    for contact in (first, second, kept):
        contact.refresh_from_db()
        assert (contact.status, contact.operator) == (Contact.Status.WAITING, None)
    withdrawn = Event.objects.get(type="contact.requeued", data__why="withdrawn")
    assert withdrawn.data["contact"]["id"] == kept.pk
    assert not OfferMiss.objects.filter(contact=kept).exists()


def test_an_answer_ends_the_streak_of_missed_offers(source, settings):
    settings.OFFER_MISSES_BEFORE_AWAY = 2
    [anna] = team(source, 5)
    first = intake(source, "a")
    offers.expire_offers(later(first, 1))
    second = intake(source, "b")
    offers.accept_offer(contact=second, by_operator=anna)
    third = intake(source, "c")

    offers.expire_offers(later(third, 1))

    anna.refresh_from_db()
    assert (anna.status, anna.missed_offers_in_row) == (Operator.Status.AVAILABLE, 1)


def test_going_away_withdraws_pending_offers_but_keeps_open_contacts(
    source, django_capture_on_commit_callbacks
):
    anna, boris = team(source, 5, 5)
    offered = intake(source, "a")
    accepted = intake(source, "b")  # Boris's
    offers.accept_offer(contact=accepted, by_operator=boris)
    intake(source, "c")  # Anna's (round robin)
    held_by_boris = intake(source, "d")

    with django_capture_on_commit_callbacks(execute=True):
        operators.set_operator_status(operator=boris, status=Operator.Status.AWAY)

    accepted.refresh_from_db()
    held_by_boris.refresh_from_db()
    offered.refresh_from_db()
    assert (accepted.status, accepted.operator) == (Contact.Status.OPEN, boris)
    assert (held_by_boris.status, held_by_boris.operator) == (Contact.Status.OFFERED, anna)
    assert offered.operator == anna
    assert not OfferMiss.objects.exists()  # a withdrawal is not the operator's miss


def test_the_expiry_pass_also_withdraws_offers_a_crash_left_with_an_away_operator(source):
    anna, boris = team(source, 5, 5)
    contact = intake(source)
    # As if the process died between the status change's commit and the withdrawal.
    Operator.objects.filter(pk=anna.pk).update(status=Operator.Status.OFFLINE)

    assert offers.expire_offers(timezone.now()) == 1

    contact.refresh_from_db()
    assert contact.operator == boris


def test_closing_an_offer_frees_its_place(source):
    [anna] = team(source, 1)
    offered = intake(source, "a")
    waiting = intake(source, "b")

    contacts.close_contact(contact=offered)

    waiting.refresh_from_db()
    assert (waiting.status, waiting.operator) == (Contact.Status.OFFERED, anna)


# The API: only the operator the contact is offered to answers it.


@pytest.fixture
def anna_client(source):
    [anna] = team(source, 5)
    anna.user = UserFactory(username="anna")
    anna.save()
    client = APIClient()
    client.force_authenticate(anna.user)
    return client


def test_the_operator_accepts_and_declines_through_the_api(source, anna_client):
    first, second = intake(source, "a"), intake(source, "b")

    accepted = anna_client.post(f"/api/contacts/{first.pk}/accept/")
    declined = anna_client.post(f"/api/contacts/{second.pk}/decline/", {"reason": "Busy"})
    again = anna_client.post(f"/api/contacts/{second.pk}/accept/")

    assert (accepted.status_code, accepted.json()["status"]) == (200, "open")
    assert (declined.status_code, declined.json()["status"]) == (200, "waiting")
    assert again.status_code == 404  # no longer hers: she does not see it
    assert OfferMiss.objects.get().reason == "Busy"


def test_a_lost_accept_answers_409_with_the_reason(source, anna_client):
    contact = intake(source)
    Contact.objects.filter(pk=contact.pk).update(
        offer_expires_at=timezone.now() - timedelta(seconds=1)
    )

    answer = anna_client.post(f"/api/contacts/{contact.pk}/accept/")

    assert answer.status_code == 409
    assert "expired" in answer.json()["detail"]


def test_a_decline_reason_too_long_is_a_field_error(source, anna_client):
    contact = intake(source)

    answer = anna_client.post(f"/api/contacts/{contact.pk}/decline/", {"reason": "x" * 501})

    assert answer.status_code == 400
    assert "reason" in answer.json()
    contact.refresh_from_db()
    assert contact.status == Contact.Status.OFFERED


def test_bots_and_staff_cannot_answer_an_offer(source):
    team(source, 5)
    contact = intake(source)
    _, key = create_source_key(source=source, name="bot")
    bot, staff = APIClient(), APIClient()
    bot.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    staff.force_authenticate(StaffUserFactory())

    for client in (bot, staff):
        assert client.post(f"/api/contacts/{contact.pk}/accept/").status_code == 403
        assert client.post(f"/api/contacts/{contact.pk}/decline/").status_code == 403
    contact.refresh_from_db()
    assert contact.status == Contact.Status.OFFERED
