import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from distribution.models import Contact, Operator
from tests.factories import (
    ContactFactory,
    OperatorFactory,
    OperatorSourceWeightFactory,
    SourceFactory,
)

pytestmark = pytest.mark.django_db


def test_operator_list_shows_load_and_sources_in_fixed_queries(api, django_assert_max_num_queries):
    for _ in range(15):
        operator = OperatorFactory()
        OperatorSourceWeightFactory(operator=operator, weight=2)
        OperatorSourceWeightFactory(operator=operator, weight=5)
        ContactFactory.create_batch(2, open=True, operator=operator)
        ContactFactory(
            open=True, status=Contact.Status.CLOSED, closed_at=timezone.now(), operator=operator
        )

    # Token, count, page, weights: the same for 15 operators as for 1.
    with django_assert_max_num_queries(4):
        response = api.get("/api/operators/")

    assert response.status_code == 200
    assert response.data["count"] == 15
    first = response.data["results"][0]
    assert first["open_contacts"] == 2
    assert sorted(row["weight"] for row in first["sources"]) == [2, 5]
    assert set(first["sources"][0]) == {"source", "code", "weight", "since"}


def test_create_operator_stores_it(api):
    response = api.post(
        "/api/operators/", {"name": "Ivan", "max_open_contacts": 3, "is_active": False}
    )

    assert response.status_code == 201
    operator = Operator.objects.get(pk=response.data["id"])
    assert (operator.name, operator.max_open_contacts, operator.is_active) == ("Ivan", 3, False)
    assert response.data["open_contacts"] == 0
    assert response.data["sources"] == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"name": "Ivan", "max_open_contacts": -1}, "max_open_contacts"),
        ({"name": "Ivan", "max_open_contacts": 2**31}, "max_open_contacts"),
        ({"name": "Ivan", "max_open_contacts": "many"}, "max_open_contacts"),
        ({"name": "Ivan", "is_active": "perhaps"}, "is_active"),
    ],
)
def test_create_operator_rejects_bad_fields(api, body, field):
    response = api.post("/api/operators/", body)

    assert response.status_code == 400
    assert field in response.data
    assert not Operator.objects.exists()


def test_raising_an_operators_limit_hands_it_waiting_contacts(api):
    weight = OperatorSourceWeightFactory(operator__max_open_contacts=1)
    operator = weight.operator
    ContactFactory(open=True, operator=operator, source=weight.source)
    waiting = ContactFactory(source=weight.source)

    response = api.patch(f"/api/operators/{operator.pk}/", {"max_open_contacts": 2})

    assert response.status_code == 200
    assert response.data["open_contacts"] == 2
    waiting.refresh_from_db()
    assert (waiting.status, waiting.operator_id) == (Contact.Status.OPEN, operator.pk)


def test_activating_an_operator_hands_it_waiting_contacts(api):
    weight = OperatorSourceWeightFactory(operator__is_active=False)
    waiting = ContactFactory(source=weight.source)

    response = api.patch(f"/api/operators/{weight.operator.pk}/", {"is_active": True})

    assert response.status_code == 200
    waiting.refresh_from_db()
    assert waiting.operator_id == weight.operator.pk


def test_put_replaces_an_operator_and_needs_its_name(api):
    operator = OperatorFactory(name="Old", max_open_contacts=5)

    missing = api.put(f"/api/operators/{operator.pk}/", {"max_open_contacts": 1})
    replaced = api.put(
        f"/api/operators/{operator.pk}/",
        {"name": "New", "max_open_contacts": 1, "is_active": True},
    )

    assert missing.status_code == 400
    assert "name" in missing.data
    assert replaced.status_code == 200
    operator.refresh_from_db()
    assert (operator.name, operator.max_open_contacts) == ("New", 1)


def test_lowering_a_limit_below_the_load_closes_nothing(api):
    operator = OperatorFactory(max_open_contacts=3)
    ContactFactory.create_batch(3, open=True, operator=operator)

    response = api.patch(f"/api/operators/{operator.pk}/", {"max_open_contacts": 1})

    assert response.status_code == 200
    assert response.data["open_contacts"] == 3
    assert Contact.objects.filter(operator=operator, status=Contact.Status.OPEN).count() == 3


def test_deleting_an_operator_with_open_contacts_is_a_conflict(api):
    operator = OperatorFactory(name="Ivan")
    ContactFactory(open=True, operator=operator)

    response = api.delete(f"/api/operators/{operator.pk}/")

    assert response.status_code == 409
    assert "Ivan has 1 open contacts" in response.data["detail"]
    assert Operator.objects.filter(pk=operator.pk).exists()


def test_deleting_an_operator_keeps_its_closed_contacts(api):
    operator = OperatorFactory()
    closed = ContactFactory(
        open=True, status=Contact.Status.CLOSED, closed_at=timezone.now(), operator=operator
    )

    response = api.delete(f"/api/operators/{operator.pk}/")

    assert response.status_code == 204
    assert not Operator.objects.filter(pk=operator.pk).exists()
    closed.refresh_from_db()
    assert (closed.status, closed.operator_id) == (Contact.Status.CLOSED, None)


def test_unknown_operator_is_404_in_the_error_shape(api):
    response = api.get("/api/operators/999999/")

    assert response.status_code == 404
    assert set(response.data) == {"detail"}


def test_a_bot_cannot_manage_operators(bot_client):
    operator = OperatorFactory()
    bot = bot_client(SourceFactory())

    assert bot.get("/api/operators/").status_code == 403
    assert bot.post("/api/operators/", {"name": "Mine"}).status_code == 403
    assert bot.patch(f"/api/operators/{operator.pk}/", {"is_active": False}).status_code == 403
    assert bot.delete(f"/api/operators/{operator.pk}/").status_code == 403
    operator.refresh_from_db()
    assert operator.is_active
    assert Operator.objects.count() == 1


def test_anonymous_requests_get_401_with_a_challenge(db):
    response = APIClient().get("/api/operators/")

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    assert set(response.data) == {"detail"}
