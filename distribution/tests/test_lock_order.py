"""A transaction takes every operator lock it needs in one statement.

Flows lock through engine.lock_operators, which locks in id order. If a flow locked
again later and reached an operator below one it already held (a weight added to the
source meanwhile by a concurrent commit), it could wait on a transaction that locked in
order while that one waits on it: a deadlock (seen in the race of
tests/test_concurrency.py before reassign took its locks at once). Here the concurrent
commit is staged inside the transaction, right after the first lock."""

import pytest

from distribution import contacts, operators, queries, sources
from distribution.models import Contact, Operator, OperatorSourceWeight
from leads.identity import build_identity
from tests.factories import ContactFactory, OperatorFactory, OperatorSourceWeightFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def floor():
    """An operator with the lowest id, not yet on the source; two that serve it."""
    newcomer = OperatorFactory(name="Newcomer")
    anna, boris = OperatorFactory(name="Anna"), OperatorFactory(name="Boris")
    weight = OperatorSourceWeightFactory(operator=anna, weight=1)
    OperatorSourceWeightFactory(operator=boris, source=weight.source, weight=1)
    return weight.source, newcomer, anna, boris


@pytest.fixture
def locks(monkeypatch, floor):
    """Every lock statement's ids; after the first, the newcomer joins the source."""
    source, newcomer, _, _ = floor
    taken: list[list[int]] = []
    lock = queries.lock_operators

    def spy(**kwargs) -> list[int]:
        ids = lock(**kwargs)
        if not taken:
            OperatorSourceWeight.objects.create(operator=newcomer, source=source, weight=5)
        taken.append(ids)
        return ids

    monkeypatch.setattr(queries, "lock_operators", spy)
    return taken


def assert_locked_at_once(taken: list[list[int]]) -> None:
    assert taken, "the flow took no operator lock"
    first = set(taken[0])
    for later in taken[1:]:
        assert set(later) <= first, f"locked {sorted(set(later) - first)} after {sorted(first)}"


def test_reassigning_by_the_sources_rule_locks_once(floor, locks):
    source, _, anna, _ = floor
    contact = ContactFactory(source=source, open=True, operator=anna)

    contacts.reassign_contact(contact=contact)

    assert_locked_at_once(locks)
    assert Contact.objects.get(pk=contact.pk).operator.name == "Boris"


def test_reassigning_to_a_named_operator_locks_once(floor, locks):
    source, _, anna, boris = floor
    contact = ContactFactory(source=source, open=True, operator=anna)

    contacts.reassign_contact(contact=contact, operator=boris)

    assert_locked_at_once(locks)


def test_intake_locks_once(floor, locks):
    source = floor[0]

    contacts.register_contact(source=source, identity=build_identity(external_id="x"))

    assert_locked_at_once(locks)


def test_closing_locks_once(floor, locks):
    source, _, anna, _ = floor
    contact = ContactFactory(source=source, open=True, operator=anna)
    ContactFactory(source=source)  # waiting: the freed place goes to it

    contacts.close_contact(contact=contact)

    assert_locked_at_once(locks)


def test_changing_a_sources_weights_locks_once(floor, locks):
    source, _, anna, boris = floor
    ContactFactory(source=source)

    sources.set_source_weights(source=source, weights={anna.pk: 2, boris.pk: 3})

    assert_locked_at_once(locks)


def test_raising_a_limit_locks_once(floor, locks):
    source, _, anna, _ = floor
    ContactFactory(source=source)

    operators.update_operator(operator=Operator.objects.get(pk=anna.pk), max_open_contacts=20)

    assert_locked_at_once(locks)
