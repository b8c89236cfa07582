from datetime import datetime, timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from distribution.models import Contact
from tests.factories import (
    ContactFactory,
    OperatorFactory,
    OperatorSourceWeightFactory,
    SourceFactory,
)

pytestmark = pytest.mark.django_db


def test_distribution_report_compares_target_and_actual_shares(api):
    source = SourceFactory(code="telegram")
    heavy = OperatorSourceWeightFactory(source=source, weight=3, operator__name="Heavy").operator
    light = OperatorSourceWeightFactory(source=source, weight=1, operator__name="Light").operator
    ContactFactory.create_batch(2, open=True, source=source, operator=heavy)
    ContactFactory(
        open=True,
        status=Contact.Status.CLOSED,
        closed_at=timezone.now(),
        source=source,
        operator=light,
    )
    ContactFactory.create_batch(4, source=source)

    response = api.get("/api/stats/distribution/")

    assert response.status_code == 200
    assert (response.data["since"], response.data["until"]) == (None, None)
    [report] = response.data["sources"]
    assert (report["code"], report["waiting"], report["assigned"]) == ("telegram", 4, 3)
    rows = {row["name"]: row for row in report["operators"]}
    assert rows["Heavy"]["target_share"] == 0.75
    assert rows["Heavy"]["assigned"] == 2
    assert rows["Heavy"]["actual_share"] == pytest.approx(2 / 3)
    assert (rows["Heavy"]["open_contacts"], rows["Heavy"]["max_open_contacts"]) == (2, 10)
    assert (rows["Light"]["target_share"], rows["Light"]["open_contacts"]) == (0.25, 0)


def test_distribution_report_counts_only_the_period(api):
    source = SourceFactory()
    operator = OperatorSourceWeightFactory(source=source).operator
    now = timezone.now()
    ContactFactory(open=True, source=source, operator=operator, assigned_at=now - timedelta(days=3))
    ContactFactory(open=True, source=source, operator=operator, assigned_at=now)

    since = (now - timedelta(days=1)).isoformat()
    response = api.get("/api/stats/distribution/", {"since": since})

    assert response.status_code == 200
    [report] = response.data["sources"]
    assert report["assigned"] == 1
    assert report["operators"][0]["open_contacts"] == 2
    assert response.data["since"] is not None


def test_an_operator_off_the_source_still_shows_what_it_got(api):
    source = SourceFactory()
    former = OperatorFactory(name="Former")
    ContactFactory(
        open=True,
        status=Contact.Status.CLOSED,
        closed_at=timezone.now(),
        source=source,
        operator=former,
    )

    response = api.get("/api/stats/distribution/")

    [row] = response.data["sources"][0]["operators"]
    assert (row["name"], row["weight"], row["target_share"], row["assigned"]) == (
        "Former",
        0,
        0.0,
        1,
    )


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"since": "yesterday"}, "since"),
        ({"until": "2024-13-01T00:00:00Z"}, "until"),
        ({"since": "2024-02-01T00:00:00Z", "until": "2024-01-01T00:00:00Z"}, "until"),
    ],
)
def test_a_bad_period_is_400(api, params, field):
    response = api.get("/api/stats/distribution/", params)

    assert response.status_code == 400
    assert field in response.data


def test_bots_and_anonymous_cannot_read_the_report(bot_client):
    bot = bot_client(SourceFactory())

    assert bot.get("/api/stats/distribution/").status_code == 403
    assert APIClient().get("/api/stats/distribution/").status_code == 401


def test_the_report_measures_an_operator_from_when_it_joined_the_source(api):
    source = SourceFactory(code="tg")
    now = timezone.now()
    anna = OperatorSourceWeightFactory(
        source=source, operator__name="Anna", since=now - timedelta(days=30)
    ).operator
    ContactFactory.create_batch(
        6, closed=True, source=source, operator=anna, assigned_at=now - timedelta(days=3)
    )
    boris = OperatorSourceWeightFactory(
        source=source, operator__name="Boris", since=now - timedelta(days=1)
    ).operator
    ContactFactory.create_batch(2, closed=True, source=source, operator=anna)
    ContactFactory.create_batch(2, closed=True, source=source, operator=boris)

    response = api.get("/api/stats/distribution/", {"since": (now - timedelta(days=7)).isoformat()})

    assert response.status_code == 200
    rows = {row["name"]: row for row in response.data["sources"][0]["operators"]}
    assert rows["Boris"]["joined_at"] is not None
    assert (rows["Boris"]["assigned"], rows["Boris"]["share_base"]) == (2, 4)
    assert (rows["Boris"]["actual_share"], rows["Boris"]["expected_share"]) == (0.5, 0.5)
    assert rows["Anna"]["expected_share"] == pytest.approx(0.8)
    assert rows["Anna"]["actual_share"] == pytest.approx(0.8)
    assert rows["Anna"]["target_share"] == 0.5


def test_the_report_lists_the_hours_a_source_gave_contacts_in(api):
    weight = OperatorSourceWeightFactory(since=timezone.now() - timedelta(days=30))
    three_hours_ago = timezone.now() - timedelta(hours=3)
    ContactFactory.create_batch(
        2, closed=True, source=weight.source, operator=weight.operator, assigned_at=three_hours_ago
    )
    ContactFactory(closed=True, source=weight.source, operator=weight.operator, by_owner=True)

    response = api.get("/api/stats/distribution/")

    [report] = response.data["sources"]
    assert report["timeline_unit"] == "hour"
    assert [(bucket["assigned"], bucket["returning"]) for bucket in report["timeline"]] == [
        (2, 0),
        (0, 1),
    ]
    first = datetime.fromisoformat(report["timeline"][0]["start"])
    assert first <= three_hours_ago < first + timedelta(hours=1)
