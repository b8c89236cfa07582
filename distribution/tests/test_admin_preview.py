import random
from collections import Counter

import pytest

from distribution.contacts import register_contact
from distribution.eligibility import Reason
from distribution.models import Contact, Source
from distribution.preview import preview_next_contacts
from leads.identity import build_identity
from tests.factories import ContactFactory, OperatorSourceWeightFactory, SourceFactory

pytestmark = pytest.mark.django_db


def split(preview) -> dict[str, int]:
    return {row.state.name: row.contacts for row in preview.rows}


def test_round_robin_preview_follows_the_weights_exactly():
    source = SourceFactory(strategy=Source.Strategy.ROUND_ROBIN)
    for name, weight in (("A", 3), ("B", 1)):
        OperatorSourceWeightFactory(
            source=source, operator__name=name, operator__max_open_contacts=1000, weight=weight
        )

    preview = preview_next_contacts(source=source)

    assert split(preview) == {"A": 75, "B": 25}
    assert preview.waiting == 0


def test_preview_counts_each_contact_as_load_so_operators_fill_up():
    source = SourceFactory(strategy=Source.Strategy.ROUND_ROBIN)
    small = OperatorSourceWeightFactory(
        source=source, operator__name="small", operator__max_open_contacts=6, weight=9
    )
    ContactFactory.create_batch(2, open=True, operator=small.operator)
    OperatorSourceWeightFactory(
        source=source, operator__name="big", operator__max_open_contacts=30, weight=1
    )

    preview = preview_next_contacts(source=source, count=50)

    assert split(preview) == {"small": 4, "big": 30}
    assert preview.waiting == 16


def test_preview_leaves_out_the_inactive_and_those_at_their_limit():
    source = SourceFactory()
    full = OperatorSourceWeightFactory(source=source, operator__max_open_contacts=1)
    ContactFactory(open=True, operator=full.operator)
    OperatorSourceWeightFactory(source=source, operator__is_active=False)

    preview = preview_next_contacts(source=source, count=5)

    assert [row.left_out for row in preview.rows] == [Reason.AT_LIMIT, Reason.INACTIVE]
    assert [row.contacts for row in preview.rows] == [0, 0]
    assert preview.waiting == 5


def test_weighted_random_preview_draws_with_the_engine_function():
    source = SourceFactory()
    OperatorSourceWeightFactory(
        source=source, operator__name="A", operator__max_open_contacts=500, weight=3
    )
    OperatorSourceWeightFactory(
        source=source, operator__name="B", operator__max_open_contacts=500, weight=1
    )

    first = split(preview_next_contacts(source=source, count=400, rng=random.Random(5)))
    again = split(preview_next_contacts(source=source, count=400, rng=random.Random(5)))

    assert first == again
    assert sum(first.values()) == 400
    assert 260 <= first["A"] <= 340


def test_round_robin_preview_is_what_the_engine_then_does():
    source = SourceFactory(strategy=Source.Strategy.ROUND_ROBIN)
    for name, weight, limit in (("A", 5, 4), ("B", 3, 10), ("C", 1, 10)):
        OperatorSourceWeightFactory(
            source=source, operator__name=name, operator__max_open_contacts=limit, weight=weight
        )
    register_contact(source=source, identity=build_identity(external_id="warm-up"))

    preview = preview_next_contacts(source=source, count=20)
    for number in range(20):
        register_contact(source=source, identity=build_identity(external_id=f"lead-{number}"))

    newest = Contact.objects.exclude(lead__external_id="warm-up")
    engine = Counter(newest.filter(status="open").values_list("operator__name", flat=True))
    assert split(preview) == {name: engine[name] for name in "ABC"}
    assert preview.waiting == newest.filter(status="waiting").count()
