"""The engine and the flows that call it, against the database (single-threaded)."""

import random
from collections import Counter

import pytest

from core.errors import Conflict
from distribution import engine, operators, sources
from distribution.contacts import close_contact, reassign_contact, register_contact
from distribution.models import Contact, Operator, OperatorSourceWeight, Source
from leads.identity import build_identity
from tests.factories import (
    ContactFactory,
    OperatorFactory,
    OperatorSourceWeightFactory,
    SourceFactory,
)

pytestmark = pytest.mark.django_db


def intake(source: Source, number: int = 0) -> Contact:
    return register_contact(
        source=source, identity=build_identity(external_id=f"lead-{source.code}-{number}")
    )


def serve(operator: Operator, source: Source, weight: int = 1) -> OperatorSourceWeight:
    return OperatorSourceWeightFactory(operator=operator, source=source, weight=weight)


def open_load(operator: Operator) -> int:
    return operator.contacts.filter(status=Contact.Status.OPEN).count()


def test_register_contact_assigns_the_only_eligible_operator_and_records_why():
    source = SourceFactory()
    ivan = OperatorFactory(name="Ivan", max_open_contacts=2)
    serve(ivan, source, weight=3)

    contact = intake(source)

    assert contact.status == Contact.Status.OPEN
    assert contact.operator == ivan
    assert contact.assigned_at is not None
    assert contact.decision == {
        "strategy": "weighted_random",
        "candidates": [
            {
                "operator_id": ivan.pk,
                "name": "Ivan",
                "weight": 3,
                "load": 0,
                "limit": 2,
                "left_out": None,
            }
        ],
        "chosen_operator_id": ivan.pk,
    }


def test_register_contact_skips_operator_at_limit():
    source = SourceFactory()
    full = OperatorFactory(max_open_contacts=1)
    free = OperatorFactory(max_open_contacts=5)
    serve(full, source, weight=100)
    serve(free, source, weight=1)
    ContactFactory(open=True, operator=full, source=source)

    contacts = [intake(source, n) for n in range(5)]

    assert {c.operator for c in contacts} == {free}
    left_out = {c["operator_id"]: c["left_out"] for c in contacts[0].decision["candidates"]}
    assert left_out == {full.pk: "at_limit", free.pk: None}
    assert open_load(full) == 1


def test_register_contact_skips_inactive_operator():
    source = SourceFactory()
    away = OperatorFactory(is_active=False)
    here = OperatorFactory()
    serve(away, source, weight=100)
    serve(here, source)

    contact = intake(source)

    assert contact.operator == here
    left_out = {c["operator_id"]: c["left_out"] for c in contact.decision["candidates"]}
    assert left_out[away.pk] == "inactive"


def test_operator_not_on_the_source_never_gets_its_contacts():
    source, other_source = SourceFactory(), SourceFactory()
    outsider = OperatorFactory()
    serve(outsider, other_source)
    insider = OperatorFactory(max_open_contacts=1)
    serve(insider, source)

    contacts = [intake(source, n) for n in range(3)]

    assert [c.operator for c in contacts] == [insider, None, None]
    assert open_load(outsider) == 0


def test_register_contact_with_nobody_eligible_stores_it_waiting():
    source = SourceFactory()
    serve(OperatorFactory(max_open_contacts=0), source)

    contact = intake(source)

    contact.refresh_from_db()
    assert contact.status == Contact.Status.WAITING
    assert contact.operator is None
    assert contact.assigned_at is None
    assert contact.decision["chosen_operator_id"] is None
    assert contact.decision["candidates"][0]["left_out"] == "at_limit"


def test_round_robin_source_follows_smooth_weighted_order():
    source = SourceFactory(strategy=Source.Strategy.ROUND_ROBIN)
    anna, boris = OperatorFactory(max_open_contacts=100), OperatorFactory(max_open_contacts=100)
    serve(anna, source, weight=2)
    serve(boris, source, weight=1)

    chosen = [intake(source, n).operator for n in range(6)]

    assert chosen == [anna, boris, anna, anna, boris, anna]


def test_round_robin_operator_back_from_limit_resumes_its_share():
    source = SourceFactory(strategy=Source.Strategy.ROUND_ROBIN)
    anna, boris = OperatorFactory(max_open_contacts=100), OperatorFactory(max_open_contacts=1)
    serve(anna, source)
    serve(boris, source)
    first = [intake(source, n).operator for n in range(4)]  # boris fills up after one
    close_contact(contact=boris.contacts.get())

    after = Counter(intake(source, n).operator for n in range(10, 12))

    assert first == [anna, boris, anna, anna]
    assert after == {anna: 1, boris: 1}


def test_weighted_random_source_shares_follow_weights(monkeypatch):
    monkeypatch.setattr(engine, "_rng", random.Random(42))
    source = SourceFactory()
    heavy, light = (
        OperatorFactory(max_open_contacts=10_000),
        OperatorFactory(max_open_contacts=10_000),
    )
    serve(heavy, source, weight=3)
    serve(light, source, weight=1)

    counts = Counter(intake(source, n).operator_id for n in range(1000))

    # Expected 750 / 250; one standard deviation of the heavy count is about 14.
    assert abs(counts[heavy.pk] - 750) < 60
    assert counts[heavy.pk] + counts[light.pk] == 1000


def test_close_contact_frees_the_place_for_the_oldest_waiting_contact():
    source = SourceFactory()
    ivan = OperatorFactory(max_open_contacts=1)
    serve(ivan, source)
    first = intake(source, 1)
    older, newer = intake(source, 2), intake(source, 3)

    close_contact(contact=first)

    older.refresh_from_db()
    newer.refresh_from_db()
    assert (older.status, older.operator) == (Contact.Status.OPEN, ivan)
    assert older.decision["trigger"] == "contact_closed"
    assert newer.status == Contact.Status.WAITING
    assert open_load(ivan) == 1


def test_close_contact_does_not_drain_contacts_of_sources_the_operator_does_not_serve():
    source, foreign = SourceFactory(), SourceFactory()
    ivan = OperatorFactory(max_open_contacts=1)
    serve(ivan, source)
    first = intake(source)
    stranger = ContactFactory(source=foreign)

    close_contact(contact=first)

    stranger.refresh_from_db()
    assert stranger.status == Contact.Status.WAITING


def test_close_contact_twice_is_a_conflict():
    contact = ContactFactory(open=True)
    close_contact(contact=contact)

    with pytest.raises(Conflict):
        close_contact(contact=contact)

    contact.refresh_from_db()
    assert contact.status == Contact.Status.CLOSED


def test_activating_an_operator_drains_the_waiting_queue_at_once():
    source = SourceFactory()
    ivan = OperatorFactory(is_active=False, max_open_contacts=2)
    serve(ivan, source)
    waiting = [intake(source, n) for n in range(3)]

    operators.update_operator(operator=ivan, is_active=True)

    statuses = [Contact.objects.get(pk=c.pk).status for c in waiting]
    assert statuses == [Contact.Status.OPEN, Contact.Status.OPEN, Contact.Status.WAITING]


def test_raising_a_limit_drains_up_to_the_new_room_and_lowering_closes_nothing():
    source = SourceFactory()
    ivan = OperatorFactory(max_open_contacts=1)
    serve(ivan, source)
    [intake(source, n) for n in range(4)]

    operators.update_operator(operator=ivan, max_open_contacts=3)
    assert open_load(ivan) == 3

    operators.update_operator(operator=ivan, max_open_contacts=1)
    assert open_load(ivan) == 3
    assert intake(source, 10).status == Contact.Status.WAITING


def test_adding_an_operator_to_a_source_drains_its_waiting_contacts():
    source = SourceFactory()
    waiting = intake(source)
    ivan = OperatorFactory()

    sources.set_source_weights(source=source, weights={ivan.pk: 2})

    waiting.refresh_from_db()
    assert waiting.operator == ivan
    assert waiting.decision["trigger"] == "weights_changed"


def test_set_source_weights_replaces_the_whole_list():
    source = SourceFactory()
    old, kept, new = OperatorFactory(), OperatorFactory(), OperatorFactory()
    serve(old, source)
    serve(kept, source)

    sources.set_source_weights(source=source, weights={kept.pk: 5, new.pk: 1})

    assert dict(source.weights.values_list("operator_id", "weight")) == {kept.pk: 5, new.pk: 1}


def test_drain_waiting_queue_assigns_everything_someone_can_take_oldest_first():
    source = SourceFactory()
    ivan = OperatorFactory(max_open_contacts=0)
    serve(ivan, source)
    waiting = [intake(source, n) for n in range(3)]
    Operator.objects.filter(pk=ivan.pk).update(max_open_contacts=2)  # bypasses the flow

    assert engine.drain_waiting_queue() == 2

    statuses = [Contact.objects.get(pk=c.pk).status for c in waiting]
    assert statuses == [Contact.Status.OPEN, Contact.Status.OPEN, Contact.Status.WAITING]


def test_reassign_to_a_named_operator_moves_the_contact_and_frees_the_previous_one():
    source = SourceFactory()
    first, second = OperatorFactory(max_open_contacts=1), OperatorFactory(max_open_contacts=1)
    serve(first, source, weight=1000)
    serve(second, source, weight=1)
    contact, _, waiting = intake(source, 1), intake(source, 2), intake(source, 3)
    assert (contact.operator, waiting.status) == (first, Contact.Status.WAITING)
    Operator.objects.filter(pk=second.pk).update(max_open_contacts=2)  # room, no drain

    reassign_contact(contact=contact, operator=second)

    contact.refresh_from_db()
    waiting.refresh_from_db()
    assert contact.operator == second
    assert contact.decision["strategy"] == "manual"
    assert waiting.operator == first


@pytest.mark.parametrize(
    ("operator_kwargs", "on_source", "reason"),
    [
        ({"is_active": False}, True, "inactive"),
        ({}, False, "does not serve"),
        ({"max_open_contacts": 0}, True, "at the limit"),
    ],
)
def test_reassign_refuses_an_operator_who_cannot_take_it(operator_kwargs, on_source, reason):
    source = SourceFactory()
    current = OperatorFactory()
    serve(current, source)
    contact = intake(source)
    target = OperatorFactory(**operator_kwargs)
    if on_source:
        serve(target, source)

    with pytest.raises(Conflict, match=reason):
        reassign_contact(contact=contact, operator=target)

    contact.refresh_from_db()
    assert contact.operator == current


def test_reassign_without_an_operator_uses_the_rule_and_skips_the_current_one():
    source = SourceFactory()
    current, other = OperatorFactory(), OperatorFactory()
    serve(current, source, weight=1000)
    serve(other, source, weight=1)
    contact = intake(source)
    assert contact.operator == current or contact.operator == other
    previous = contact.operator

    reassign_contact(contact=contact)

    contact.refresh_from_db()
    assert contact.operator != previous
    assert {c["operator_id"]: c["left_out"] for c in contact.decision["candidates"]}[
        previous.pk
    ] == "current_operator"


def test_reassign_with_nobody_else_is_a_conflict():
    source = SourceFactory()
    serve(OperatorFactory(), source)
    contact = intake(source)

    with pytest.raises(Conflict, match="No other operator"):
        reassign_contact(contact=contact)


def test_closed_contact_cannot_be_reassigned():
    contact = ContactFactory(open=True)
    close_contact(contact=contact)

    with pytest.raises(Conflict, match="closed"):
        reassign_contact(contact=contact)


def test_reassigning_a_waiting_contact_nobody_can_take_does_not_speak_of_another():
    source = SourceFactory()
    serve(OperatorFactory(status="away"), source)
    contact = intake(source)

    with pytest.raises(Conflict) as refusal:
        reassign_contact(contact=contact)

    assert str(refusal.value) == (
        "No operator on this source can take it now "
        "(active, available, on shift and under the limit)."
    )
    assert Contact.objects.get(pk=contact.pk).status == Contact.Status.WAITING


@pytest.mark.parametrize("act", ["close", "hand back"])
def test_an_operator_cannot_close_or_hand_back_a_contact_that_moved_to_someone_else(act):
    """The desk read the contact as the operator's; staff moved it before the click."""
    weight = OperatorSourceWeightFactory(operator__name="Ivan")
    maria = OperatorSourceWeightFactory(source=weight.source, operator__name="Maria").operator
    contact = ContactFactory(open=True, operator=weight.operator, source=weight.source)
    reassign_contact(contact=contact, operator=maria)

    with pytest.raises(Conflict, match="no longer yours"):
        if act == "close":
            close_contact(contact=contact, by_operator=weight.operator)
        else:
            reassign_contact(contact=contact, by_operator=weight.operator)

    contact.refresh_from_db()
    assert (contact.status, contact.operator) == (Contact.Status.OPEN, maria)
