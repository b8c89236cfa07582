"""Operators' stored loads (Operator.open_load): every path that changes a contact's
status or operator keeps them equal to the load units of the operator's open and
offered contacts, the limit is held in units, and check_loads repairs a drift."""

from datetime import datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from core.errors import Conflict
from distribution import contacts, engine, offers, operators, worker
from distribution.models import Contact, Operator, Source, counted_load
from distribution.sources import set_source_overflow, set_source_weights, update_source
from leads.identity import build_identity
from tests.factories import OperatorFactory, SourceFactory

pytestmark = pytest.mark.django_db

OPEN, OFFERED, WAITING, CLOSED = (
    Contact.Status.OPEN,
    Contact.Status.OFFERED,
    Contact.Status.WAITING,
    Contact.Status.CLOSED,
)


def stored_and_counted() -> dict[str, tuple[int, int]]:
    """Every operator's stored load and the units of its open and offered contacts,
    both read from the database: {name: (stored, counted)}."""
    return {
        operator.name: (operator.open_load, operator.counted)
        for operator in Operator.objects.annotate(counted=counted_load("pk"))
    }


def assert_loads(**expected: int) -> None:
    """Every operator's stored load equals its counted units, and is `expected`."""
    assert stored_and_counted() == {name: (units, units) for name, units in expected.items()}


def source(code: str, units: int, *members: Operator, **fields: object) -> Source:
    """A round-robin source costing `units`, served by `members` (picked in id order)."""
    made = SourceFactory(code=code, load_units=units, strategy="round_robin", **fields)
    set_source_weights(source=made, weights={member.pk: 1 for member in members})
    return made


def intake(source: Source, lead: str) -> Contact:
    return contacts.register_contact(source=source, identity=build_identity(external_id=lead))


def state(contact: Contact) -> tuple[str, str | None]:
    contact.refresh_from_db()
    return contact.status, contact.operator.name if contact.operator else None


def past_deadline(contact: Contact) -> datetime:
    contact.refresh_from_db()
    return contact.offer_expires_at + timedelta(seconds=1)


def test_offers_keep_stored_loads_equal_to_their_units_through_every_answer(
    django_capture_on_commit_callbacks,
):
    """Intake offered, accept, decline, expiry, withdrawal and closing an offer and an
    open contact, with a source of 2 units."""
    anna, boris = OperatorFactory(name="Anna"), OperatorFactory(name="Boris")
    shop = source("shop", 2, anna, boris, accept_timeout_seconds=60)

    first = intake(shop, "first")
    assert state(first) == (OFFERED, "Anna")
    assert_loads(Anna=2, Boris=0)
    second = intake(shop, "second")
    assert state(second) == (OFFERED, "Boris")
    assert_loads(Anna=2, Boris=2)

    offers.accept_offer(contact=first, by_operator=anna)
    assert state(first) == (OPEN, "Anna")
    assert_loads(Anna=2, Boris=2)

    offers.decline_offer(contact=second, by_operator=boris)
    assert state(second) == (OFFERED, "Anna")
    assert_loads(Anna=4, Boris=0)

    assert offers.expire_offers(past_deadline(second)) == 1
    assert state(second) == (WAITING, None)  # both passed on it
    assert_loads(Anna=2, Boris=0)

    operators.set_operator_status(operator=boris, status=Operator.Status.AWAY)
    third = intake(shop, "third")
    assert state(third) == (OFFERED, "Anna")
    assert_loads(Anna=4, Boris=0)
    operators.set_operator_status(operator=boris, status=Operator.Status.AVAILABLE)
    assert_loads(Anna=4, Boris=0)  # the waiting one is Boris's miss: not given back

    with django_capture_on_commit_callbacks(execute=True):
        operators.set_operator_status(operator=anna, status=Operator.Status.AWAY)
    assert state(third) == (OFFERED, "Boris")  # withdrawn from Anna, offered on
    assert state(first) == (OPEN, "Anna")  # away keeps its open contacts
    assert_loads(Anna=2, Boris=2)

    contacts.close_contact(contact=third)
    assert_loads(Anna=2, Boris=0)
    contacts.close_contact(contact=first)
    assert_loads(Anna=0, Boris=0)


def test_closing_and_reassigning_keep_stored_loads_equal_to_their_units():
    """Intake open, reassignment to a named operator and by the rule, and closes, with
    sources of 1 and 5 units."""
    anna, boris, vera = (
        OperatorFactory(name=name, max_open_contacts=6) for name in ("Anna", "Boris", "Vera")
    )
    chat = source("chat", 1, anna, vera)
    call = source("call", 5, boris, vera)

    chat_contact = intake(chat, "chat")
    assert state(chat_contact) == (OPEN, "Anna")
    assert_loads(Anna=1, Boris=0, Vera=0)
    call_contact = intake(call, "call")
    assert state(call_contact) == (OPEN, "Boris")
    assert_loads(Anna=1, Boris=5, Vera=0)

    contacts.reassign_contact(contact=call_contact, operator=vera)
    assert state(call_contact) == (OPEN, "Vera")
    assert_loads(Anna=1, Boris=0, Vera=5)

    contacts.reassign_contact(contact=chat_contact)  # Vera: the only other one on chat
    assert state(chat_contact) == (OPEN, "Vera")
    assert_loads(Anna=0, Boris=0, Vera=6)

    contacts.reassign_contact(contact=call_contact)  # Boris: the only other one on call
    assert state(call_contact) == (OPEN, "Boris")
    assert_loads(Anna=0, Boris=5, Vera=1)

    contacts.close_contact(contact=call_contact)
    assert_loads(Anna=0, Boris=0, Vera=1)
    with pytest.raises(Conflict, match="already closed"):
        contacts.close_contact(contact=call_contact)
    assert_loads(Anna=0, Boris=0, Vera=1)  # dropped once
    contacts.close_contact(contact=chat_contact)
    assert_loads(Anna=0, Boris=0, Vera=0)


def test_the_waiting_queue_keeps_stored_loads_equal_to_their_units():
    """Waiting contacts given when a close frees room and when the limit is raised,
    open (1 and 5 units) and offered (2 units)."""
    anna = OperatorFactory(name="Anna", max_open_contacts=5)
    chat = source("chat", 1, anna)
    shop = source("shop", 2, anna, accept_timeout_seconds=60)
    call = source("call", 5, anna)
    held = intake(call, "held")
    waiting_chat, waiting_shop = intake(chat, "w-chat"), intake(shop, "w-shop")
    assert (state(waiting_chat), state(waiting_shop)) == ((WAITING, None), (WAITING, None))
    assert_loads(Anna=5)

    contacts.close_contact(contact=held)
    assert (state(waiting_chat), state(waiting_shop)) == ((OPEN, "Anna"), (OFFERED, "Anna"))
    assert_loads(Anna=3)

    waiting_call = intake(call, "w-call")
    assert state(waiting_call) == (WAITING, None)
    assert_loads(Anna=3)

    operators.update_operator(operator=anna, max_open_contacts=8)
    assert state(waiting_call) == (OPEN, "Anna")
    assert_loads(Anna=8)


def test_the_worker_passes_that_give_waiting_contacts_keep_stored_loads_equal():
    """A sticky wait ending, overflow and the manual drain (manage.py drain_waiting),
    with contacts of 5 units."""
    anna, boris = (OperatorFactory(name=name, max_open_contacts=5) for name in ("Anna", "Boris"))
    vera = OperatorFactory(name="Vera", max_open_contacts=10)
    call = source("call", 5, anna, boris, sticky="require", sticky_wait_seconds=60)
    line = source("line", 5, anna, overflow_after_seconds=60)
    set_source_overflow(source=line, weights={vera.pk: 1})
    assert state(intake(call, "returning")) == (OPEN, "Anna")
    again = intake(call, "returning")  # waits for Anna, its lead's own operator, now full
    overflowing = [intake(line, f"overflow-{n}") for n in range(2)]
    assert (state(again), again.waits_for_id) == ((WAITING, None), anna.pk)
    assert_loads(Anna=5, Boris=0, Vera=0)
    later = timezone.now() + timedelta(seconds=61)

    assert engine.end_owner_waits(later) == 1
    assert state(again) == (OPEN, "Boris")
    assert_loads(Anna=5, Boris=5, Vera=0)

    assert engine.overflow_waiting(later) == 2
    assert [state(contact) for contact in overflowing] == [(OPEN, "Vera")] * 2
    assert_loads(Anna=5, Boris=5, Vera=10)

    last = intake(line, "last")
    # Room made where no drain runs (a raw write): the manual drain is the recovery.
    Operator.objects.filter(pk=anna.pk).update(max_open_contacts=10)
    assert engine.drain_waiting_queue() == 1
    assert state(last) == (OPEN, "Anna")
    assert_loads(Anna=10, Boris=5, Vera=10)


def test_a_change_of_a_sources_units_leaves_given_contacts_at_the_units_they_cost():
    """An offer made at 2 units is accepted, closed or passed on at 2; the next offer
    and the next contact cost the source's new units."""
    anna, boris = OperatorFactory(name="Anna"), OperatorFactory(name="Boris")
    shop = source("shop", 2, anna, boris, accept_timeout_seconds=60)
    passed_on, accepted = intake(shop, "passed-on"), intake(shop, "accepted")
    assert_loads(Anna=2, Boris=2)

    update_source(source=shop, load_units=5)
    offers.accept_offer(contact=accepted, by_operator=boris)
    assert_loads(Anna=2, Boris=2)
    offers.decline_offer(contact=passed_on, by_operator=anna)  # offered on to Boris
    assert state(passed_on) == (OFFERED, "Boris")
    assert_loads(Anna=0, Boris=7)
    contacts.close_contact(contact=accepted)
    assert_loads(Anna=0, Boris=5)
    assert state(intake(shop, "new")) == (OFFERED, "Anna")
    assert_loads(Anna=5, Boris=5)


def test_deleting_an_operator_who_holds_load_is_refused_and_keeps_its_load():
    anna = OperatorFactory(name="Anna")
    contact = intake(source("shop", 2, anna), "lead")

    with pytest.raises(Conflict, match="close or reassign them first"):
        operators.delete_operator(operator=anna)

    assert_loads(Anna=2)
    contacts.close_contact(contact=contact)
    operators.delete_operator(operator=anna)
    assert_loads()
    assert state(contact) == (CLOSED, None)  # its history stays


def test_an_operator_cannot_take_a_contact_costing_more_units_than_its_room():
    anna = OperatorFactory(name="Anna", max_open_contacts=5)
    boris = OperatorFactory(name="Boris", max_open_contacts=6)
    shop = source("shop", 2, anna)
    call = source("call", 5, anna, boris)
    survey = source("survey", 3, anna)
    intake(shop, "held")
    boris_call = intake(call, "boris")  # round robin: Anna first, who has room for 3 only
    assert state(boris_call) == (OPEN, "Boris")

    big = intake(call, "big")

    assert state(big) == (WAITING, None)
    assert big.decision["units"] == 5
    assert [(c["name"], c["load"], c["left_out"]) for c in big.decision["candidates"]] == [
        ("Anna", 2, "at_limit"),
        ("Boris", 5, "at_limit"),
    ]
    assert_loads(Anna=2, Boris=5)
    assert state(intake(survey, "fits")) == (OPEN, "Anna")  # 2 + 3 = 5, the limit
    assert_loads(Anna=5, Boris=5)
    # Staff naming an operator are held to the units too.
    set_source_weights(source=shop, weights={anna.pk: 1, boris.pk: 1})
    shop_contact = Contact.objects.get(source=shop)
    with pytest.raises(
        Conflict, match=r"Boris has no room for a contact this size \(5 / 6 load units\)"
    ):
        contacts.reassign_contact(contact=shop_contact, operator=boris)
    assert_loads(Anna=5, Boris=5)


def test_a_drain_skips_a_waiting_contact_too_big_for_the_room_and_gives_a_smaller_one():
    anna = OperatorFactory(name="Anna", max_open_contacts=5)
    chat, shop, call = source("chat", 1, anna), source("shop", 2, anna), source("call", 5, anna)
    freed = intake(shop, "freed")
    intake(shop, "kept")
    intake(chat, "chat")
    big, small = intake(call, "big"), intake(shop, "small")  # both wait, the big one first
    assert_loads(Anna=5)

    contacts.close_contact(contact=freed)  # room for 2

    assert state(big) == (WAITING, None)
    assert state(small) == (OPEN, "Anna")
    assert_loads(Anna=5)


def test_a_drain_reaches_a_small_waiting_contact_behind_several_too_big_ones():
    """More waiting contacts too big for the room than the room has units must not
    hide a smaller one behind them."""
    anna = OperatorFactory(name="Anna", max_open_contacts=5)
    chat, shop, call = source("chat", 1, anna), source("shop", 2, anna), source("call", 5, anna)
    freed = intake(shop, "freed")
    intake(shop, "kept")
    intake(chat, "chat")
    bigs = [intake(call, f"big-{n}") for n in range(3)]
    small = intake(shop, "small")

    contacts.close_contact(contact=freed)  # room for 2, three 5-unit contacts in front

    assert [state(big) for big in bigs] == [(WAITING, None)] * 3
    assert state(small) == (OPEN, "Anna")
    assert_loads(Anna=5)


def corrupt(operator: Operator, stored: int) -> None:
    """A write made around the engine, as by hand in the database."""
    Operator.objects.filter(pk=operator.pk).update(open_load=stored)


def test_check_loads_reports_each_drifted_operator_with_the_numbers_and_repairs_it():
    anna, boris, vera = (OperatorFactory(name=name) for name in ("Anna", "Boris", "Vera"))
    intake(source("shop", 2, anna), "shop")
    intake(source("call", 5, anna), "call")
    intake(source("chat", 1, vera), "chat")
    corrupt(anna, 3)
    corrupt(boris, 4)
    out = StringIO()

    call_command("check_loads", stdout=out)

    assert out.getvalue().splitlines() == [
        f"Anna (#{anna.pk}): stored 3, contacts 7; repaired.",
        f"Boris (#{boris.pk}): stored 4, contacts 0; repaired.",
        "2 operator load(s) repaired.",
    ]
    assert_loads(Anna=7, Boris=0, Vera=1)
    again = StringIO()
    call_command("check_loads", stdout=again)
    assert again.getvalue() == "Every operator's stored load matches its contacts.\n"


def test_the_worker_pass_repairs_loads_and_says_how_many():
    anna, boris = OperatorFactory(name="Anna"), OperatorFactory(name="Boris")
    intake(source("call", 5, anna, boris), "call")  # Anna's
    corrupt(anna, 0)
    corrupt(boris, 2)
    now = timezone.now()

    assert worker.repair_loads(now) == 2

    assert_loads(Anna=5, Boris=0)
    assert worker.repair_loads(now) == 0
