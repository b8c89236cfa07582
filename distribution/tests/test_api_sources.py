from datetime import timedelta

import pytest
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from rest_framework.fields import DateTimeField
from rest_framework.test import APIClient

from distribution.models import Contact, OperatorSourceWeight, Source
from tests.factories import (
    ContactFactory,
    OperatorFactory,
    OperatorSourceWeightFactory,
    SourceFactory,
)

pytestmark = pytest.mark.django_db


def weights_of(source: Source) -> dict[int, int]:
    return dict(
        OperatorSourceWeight.objects.filter(source=source).values_list("operator_id", "weight")
    )


def test_source_list_shows_weights_in_fixed_queries(api, django_assert_max_num_queries):
    for _ in range(12):
        source = SourceFactory()
        OperatorSourceWeightFactory.create_batch(3, source=source, weight=4)

    with django_assert_max_num_queries(5):
        response = api.get("/api/sources/")

    assert response.status_code == 200
    assert response.data["count"] == 12
    operators = response.data["results"][0]["operators"]
    assert [row["weight"] for row in operators] == [4, 4, 4]
    assert set(operators[0]) == {"operator", "name", "weight", "since"}


def test_create_source_stores_it(api):
    response = api.post(
        "/api/sources/",
        {"code": "telegram-bot", "name": "Telegram", "strategy": "round_robin"},
    )

    assert response.status_code == 201
    source = Source.objects.get(pk=response.data["id"])
    assert (source.code, source.strategy, source.is_active) == (
        "telegram-bot",
        Source.Strategy.ROUND_ROBIN,
        True,
    )
    assert response.data["operators"] == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "No code"}, "code"),
        ({"code": "has spaces", "name": "x"}, "code"),
        ({"code": "taken", "name": "x"}, "code"),
        ({"code": "ok", "name": "x", "strategy": "lottery"}, "strategy"),
        ({"code": "ok"}, "name"),
    ],
)
def test_create_source_rejects_bad_fields(api, body, field):
    SourceFactory(code="taken")

    response = api.post("/api/sources/", body)

    assert response.status_code == 400
    assert field in response.data
    assert Source.objects.count() == 1


def test_update_source_changes_what_is_sent(api):
    source = SourceFactory(code="site", strategy=Source.Strategy.WEIGHTED_RANDOM)

    response = api.patch(f"/api/sources/{source.pk}/", {"strategy": "round_robin"})

    assert response.status_code == 200
    source.refresh_from_db()
    assert (source.code, source.strategy) == ("site", Source.Strategy.ROUND_ROBIN)


def test_delete_source_without_contacts(api):
    source = SourceFactory()
    OperatorSourceWeightFactory(source=source)

    response = api.delete(f"/api/sources/{source.pk}/")

    assert response.status_code == 204
    assert not Source.objects.filter(pk=source.pk).exists()


def test_deleting_a_source_with_contacts_is_a_conflict(api):
    contact = ContactFactory()

    response = api.delete(f"/api/sources/{contact.source_id}/")

    assert response.status_code == 409
    assert "deactivate it" in response.data["detail"]
    assert Source.objects.filter(pk=contact.source_id).exists()


def test_get_weights_lists_the_sources_operators(api):
    source = SourceFactory()
    weight = OperatorSourceWeightFactory(source=source, weight=7, operator__name="Ivan")

    response = api.get(f"/api/sources/{source.pk}/operators/")

    assert response.status_code == 200
    since = DateTimeField().to_representation(weight.since)
    assert response.data == [
        {"operator": weight.operator_id, "name": "Ivan", "weight": 7, "since": since}
    ]


def test_weight_lists_show_since_when_each_operator_is_on_the_source(api):
    source = SourceFactory()
    joined = timezone.now() - timedelta(days=3)
    old = OperatorSourceWeightFactory(source=source, weight=1, since=joined).operator
    new = OperatorFactory()

    # A changed weight keeps the time its operator joined; "since" cannot be written.
    response = api.put(
        f"/api/sources/{source.pk}/operators/",
        [
            {"operator": old.pk, "weight": 5, "since": "2001-01-01T00:00:00Z"},
            {"operator": new.pk, "weight": 2},
        ],
        format="json",
    )

    assert response.status_code == 200
    after_put = {row["operator"]: parse_datetime(row["since"]) for row in response.data}
    assert after_put[old.pk] == joined
    assert joined < after_put[new.pk] <= timezone.now()
    stored = dict(source.weights.values_list("operator_id", "since"))
    assert after_put == stored
    listed = api.get(f"/api/sources/{source.pk}/operators/").data
    assert {row["operator"]: parse_datetime(row["since"]) for row in listed} == stored
    in_source = api.get(f"/api/sources/{source.pk}/").data["operators"]
    assert {row["operator"]: parse_datetime(row["since"]) for row in in_source} == stored
    [on_operator] = api.get(f"/api/operators/{old.pk}/").data["sources"]
    assert (on_operator["code"], parse_datetime(on_operator["since"])) == (source.code, joined)
    # Overflow operators have no join time: their list shows none.
    api.put(f"/api/sources/{source.pk}/overflow/", [{"operator": new.pk, "weight": 1}])
    assert set(api.get(f"/api/sources/{source.pk}/overflow/").data[0]) == {
        "operator",
        "name",
        "weight",
    }


def test_put_weights_replaces_the_whole_list(api):
    source = SourceFactory()
    kept, _dropped = OperatorSourceWeightFactory.create_batch(2, source=source, weight=1)
    added = OperatorFactory()

    response = api.put(
        f"/api/sources/{source.pk}/operators/",
        [{"operator": kept.operator_id, "weight": 3}, {"operator": added.pk, "weight": 2}],
    )

    assert response.status_code == 200
    assert {row["operator"]: row["weight"] for row in response.data} == {
        kept.operator_id: 3,
        added.pk: 2,
    }
    assert weights_of(source) == {kept.operator_id: 3, added.pk: 2}


def test_put_weights_gives_an_added_operator_the_waiting_contacts(api):
    source = SourceFactory()
    waiting = ContactFactory(source=source)
    operator = OperatorFactory()

    response = api.put(
        f"/api/sources/{source.pk}/operators/", [{"operator": operator.pk, "weight": 1}]
    )

    assert response.status_code == 200
    waiting.refresh_from_db()
    assert (waiting.status, waiting.operator_id) == (Contact.Status.OPEN, operator.pk)


def test_put_an_empty_weight_list_takes_every_operator_off(api):
    source = SourceFactory()
    OperatorSourceWeightFactory(source=source)

    response = api.put(f"/api/sources/{source.pk}/operators/", [])

    assert response.status_code == 200
    assert weights_of(source) == {}


GREATER_THAN_0 = ["Ensure this value is greater than or equal to 1."]


@pytest.mark.parametrize(
    ("make_body", "make_errors"),
    [
        (
            lambda a, b: [{"operator": a, "weight": 1}, {"operator": a, "weight": 2}],
            lambda a, b: {"1": {"operator": [f"Operator {a} is listed twice."]}},
        ),
        (
            lambda a, b: [{"operator": a, "weight": 1}, {"operator": 999999, "weight": 1}],
            lambda a, b: {"1": {"operator": ["No operator has the id 999999."]}},
        ),
        (
            lambda a, b: [{"operator": a, "weight": 1}, {"operator": b, "weight": 0}],
            lambda a, b: {"1": {"weight": GREATER_THAN_0}},
        ),
        (
            lambda a, b: [{"operator": a, "weight": -3}],
            lambda a, b: {"0": {"weight": GREATER_THAN_0}},
        ),
        (
            lambda a, b: [{"operator": a}],
            lambda a, b: {"0": {"weight": ["This field is required."]}},
        ),
        (
            lambda a, b: {"operator": a, "weight": 1},
            lambda a, b: {"non_field_errors": ['Expected a list of items but got type "dict".']},
        ),
    ],
)
def test_bad_weight_lists_are_400_and_change_nothing(api, make_body, make_errors):
    source = SourceFactory()
    a, b = OperatorFactory(), OperatorFactory()
    OperatorSourceWeightFactory(source=source, operator=a, weight=5)

    response = api.put(f"/api/sources/{source.pk}/operators/", make_body(a.pk, b.pk))

    assert response.status_code == 400
    assert response.json() == make_errors(a.pk, b.pk)
    assert weights_of(source) == {a.pk: 5}


def test_a_bot_cannot_touch_sources_or_weights(bot_client):
    source = SourceFactory()
    operator = OperatorFactory()
    bot = bot_client(source)

    assert bot.get("/api/sources/").status_code == 403
    assert bot.get(f"/api/sources/{source.pk}/").status_code == 403
    assert bot.patch(f"/api/sources/{source.pk}/", {"is_active": False}).status_code == 403
    response = bot.put(
        f"/api/sources/{source.pk}/operators/", [{"operator": operator.pk, "weight": 1}]
    )
    assert response.status_code == 403
    source.refresh_from_db()
    assert source.is_active
    assert weights_of(source) == {}


def test_anonymous_cannot_read_sources(db):
    source = SourceFactory()

    assert APIClient().get("/api/sources/").status_code == 401
    assert APIClient().get(f"/api/sources/{source.pk}/operators/").status_code == 401


def test_routing_settings_are_set_and_read_through_the_api(api):
    response = api.post(
        "/api/sources/",
        {
            "code": "phone",
            "name": "Phone line",
            "load_units": 3,
            "sticky": "require",
            "sticky_days": 7,
            "sticky_wait_seconds": 120,
            "priority": 5,
            "overflow_after_seconds": 60,
        },
        format="json",
    )
    assert response.status_code == 201
    source = Source.objects.get(code="phone")
    assert (source.load_units, source.sticky, source.priority) == (3, "require", 5)

    response = api.patch(
        f"/api/sources/{source.pk}/", {"overflow_after_seconds": None}, format="json"
    )

    assert response.status_code == 200
    source.refresh_from_db()
    assert source.overflow_after_seconds is None  # turned off
    assert source.load_units == 3  # left as it was


def test_bad_routing_settings_are_400_with_the_field(api):
    source = SourceFactory()

    response = api.patch(
        f"/api/sources/{source.pk}/",
        {"load_units": 0, "sticky": "always", "overflow_after_seconds": 0},
        format="json",
    )

    assert response.status_code == 400
    assert set(response.data) == {"load_units", "sticky", "overflow_after_seconds"}


def test_put_overflow_replaces_the_sources_overflow_operators(api):
    source = SourceFactory()
    regular, spare = OperatorFactory(), OperatorFactory(name="Spare")
    OperatorSourceWeightFactory(source=source, operator=regular)

    response = api.put(
        f"/api/sources/{source.pk}/overflow/", [{"operator": spare.pk, "weight": 2}], format="json"
    )

    assert response.status_code == 200
    assert response.data == [{"operator": spare.pk, "name": "Spare", "weight": 2}]
    assert weights_of(source) == {regular.pk: 1}  # the weights are a list of their own
    read = api.get(f"/api/sources/{source.pk}/").data
    assert read["overflow_operators"] == response.data
    response = api.put(
        f"/api/sources/{source.pk}/overflow/", [{"operator": 999999, "weight": 1}], format="json"
    )
    assert response.status_code == 400
    assert api.get(f"/api/sources/{source.pk}/overflow/").data == read["overflow_operators"]
