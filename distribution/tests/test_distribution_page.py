"""The distribution report and page: shares over the time each operator was on the
source, contacts per hour as a chart and a table, and when each pair joined."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from distribution.admin.distribution_page import nice_ceiling
from distribution.models import Operator
from distribution.operators import set_operator_weights
from distribution.reports import bucket_starts, bucket_unit, distribution_report
from distribution.sources import set_source_weights
from tests.factories import (
    ContactFactory,
    OperatorFactory,
    OperatorSourceWeightFactory,
    SourceFactory,
)

DISTRIBUTION = reverse("admin:distribution_report")
# The page's periods end now: its tests place their contacts before the current hour.
NOW = timezone.now().replace(minute=0, second=0, microsecond=0)
WEEK_AGO = NOW - timedelta(days=7)
FIXED = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def given(source, operator, at: datetime, *, count: int = 1, by_owner: bool = False) -> None:
    ContactFactory.create_batch(
        count,
        closed=True,
        source=source,
        operator=operator,
        assigned_at=at,
        created_at=at,
        closed_at=at,
        by_owner=by_owner,
    )


def rows_of(report, code: str) -> dict:
    [source] = [source for source in report if source.code == code]
    return {row.name: row for row in source.operators}


@pytest.fixture
def late_joiner(db):
    """Anna on the source all week; Boris, equal weight, joined a day ago. Before he
    came Anna took 6 contacts; since, 2 each (and one returning lead's contact for Anna).
    """
    source = SourceFactory(code="tg")
    anna = OperatorSourceWeightFactory(
        source=source, operator__name="Anna", since=NOW - timedelta(days=30)
    ).operator
    for day in range(6, 0, -1):
        given(source, anna, NOW - timedelta(days=day, hours=2))
    joined = NOW - timedelta(days=1)
    boris = OperatorFactory(name="Boris")
    set_source_weights(source=source, weights={anna.pk: 1, boris.pk: 1}, since=joined)
    given(source, anna, joined + timedelta(hours=1), count=2)
    given(source, boris, joined + timedelta(hours=2), count=2)
    given(source, anna, joined + timedelta(hours=3), by_owner=True)
    return source


def test_an_operator_who_joined_mid_period_is_measured_from_then(late_joiner):
    rows = rows_of(distribution_report(since=WEEK_AGO, until=NOW), "tg")

    boris = rows["Boris"]
    assert boris.joined_at == NOW - timedelta(days=1)
    assert (boris.assigned, boris.share_base, boris.share_assigned) == (2, 4, 2)
    # Half of the contacts since he came, as his weight says: not 2 of 10 against 50%.
    assert (boris.actual_share, boris.expected_share, boris.target_share) == (0.5, 0.5, 0.5)


def test_the_incumbents_target_counts_the_time_it_was_alone(late_joiner):
    rows = rows_of(distribution_report(since=WEEK_AGO, until=NOW), "tg")

    anna = rows["Anna"]
    assert (anna.assigned, anna.share_base, anna.returning) == (8, 10, 1)
    # 6 contacts alone (all hers by weight), then 4 shared half and half: 8 of 10.
    assert anna.expected_share == pytest.approx(0.8)
    assert anna.actual_share == pytest.approx(0.8)
    assert anna.target_share == 0.5


def test_a_period_that_starts_after_the_join_measures_everyone_over_all_of_it(late_joiner):
    since = NOW - timedelta(hours=23, minutes=30)

    rows = rows_of(distribution_report(since=since, until=NOW), "tg")

    assert (rows["Anna"].share_base, rows["Boris"].share_base) == (4, 4)
    assert rows["Anna"].expected_share == rows["Boris"].expected_share == 0.5


def test_an_operator_who_joined_after_the_period_has_no_share_in_it(late_joiner):
    rows = rows_of(distribution_report(since=WEEK_AGO, until=NOW - timedelta(days=2)), "tg")

    assert (rows["Boris"].share_base, rows["Boris"].actual_share) == (0, None)
    assert rows["Anna"].expected_share == 1.0
    assert rows["Anna"].actual_share == 1.0


def test_an_inactive_operator_has_no_target_and_takes_none_of_the_others(late_joiner):
    Operator.objects.filter(name="Boris").update(is_active=False)

    rows = rows_of(distribution_report(since=WEEK_AGO, until=NOW), "tg")

    assert rows["Boris"].expected_share == 0.0
    assert rows["Anna"].expected_share == 1.0


def test_the_page_shows_the_joiner_on_target_and_says_since_when(late_joiner, admin_client):
    with timezone.override(UTC):
        response = admin_client.get(DISTRIBUTION, {"days": 7})

    [card] = response.context["cards"]
    rows = {row.share.name: row for row in card.rows}
    assert (rows["Boris"].target_text, rows["Boris"].actual_text) == ("50.0%", "50.0%")
    assert rows["Boris"].gap_text == "+0.0"
    assert not rows["Boris"].gap_off
    assert (rows["Anna"].target_text, rows["Anna"].actual_text) == ("80.0%", "80.0%")
    joined = (NOW - timedelta(days=1)).strftime("%-d %b, %H:%M")
    assert rows["Boris"].notes == [f"on this source since {joined}: shares of the 4 contacts since"]
    assert rows["Anna"].notes == ["its weight gives 50.0% now"]


def test_set_source_weights_keeps_the_join_time_on_a_weight_change(db):
    source = SourceFactory()
    anna, boris = OperatorFactory(), OperatorFactory()
    set_source_weights(source=source, weights={anna.pk: 1}, since=WEEK_AGO)

    set_source_weights(source=source, weights={anna.pk: 5, boris.pk: 1}, since=NOW)

    joined = dict(source.weights.values_list("operator_id", "since"))
    assert joined == {anna.pk: WEEK_AGO, boris.pk: NOW}
    assert source.weights.get(operator=anna).weight == 5


def test_an_operator_taken_off_and_back_on_a_source_joins_it_again(db):
    source = SourceFactory()
    anna, boris = OperatorFactory(), OperatorFactory()
    set_source_weights(source=source, weights={anna.pk: 1, boris.pk: 1}, since=WEEK_AGO)
    set_source_weights(source=source, weights={anna.pk: 1})

    before = timezone.now()
    set_source_weights(source=source, weights={anna.pk: 1, boris.pk: 1})

    assert source.weights.get(operator=anna).since == WEEK_AGO
    assert source.weights.get(operator=boris).since >= before


def test_set_operator_weights_sets_the_join_time_once(db):
    operator = OperatorFactory()
    tg, wa = SourceFactory(), SourceFactory()
    set_operator_weights(operator=operator, weights={tg.pk: 1}, since=WEEK_AGO)

    before = timezone.now()
    set_operator_weights(operator=operator, weights={tg.pk: 3, wa.pk: 1})

    assert operator.weights.get(source=tg).since == WEEK_AGO
    assert operator.weights.get(source=wa).since >= before


def test_contacts_per_hour_in_the_viewers_time_zone(db):
    source = SourceFactory(code="tg")
    operator = OperatorSourceWeightFactory(source=source, since=WEEK_AGO).operator
    # India is 5:30 ahead: its hours start at half past in UTC.
    given(source, operator, datetime(2026, 12, 5, 4, 40, tzinfo=UTC))
    given(source, operator, datetime(2026, 12, 5, 5, 10, tzinfo=UTC), by_owner=True)
    given(source, operator, datetime(2026, 12, 5, 5, 40, tzinfo=UTC), count=2)
    since = datetime(2026, 12, 5, 0, 0, tzinfo=UTC)

    with timezone.override(ZoneInfo("Asia/Kolkata")):
        [report] = distribution_report(since=since, until=FIXED)

    assert report.timeline_unit == "hour"
    assert len(report.timeline) == 13  # 05:00 (local 05:30 is in it) to 17:00 local
    busy = {
        bucket.start.astimezone(UTC).strftime("%H:%M"): (bucket.assigned, bucket.returning)
        for bucket in report.timeline
        if bucket.assigned or bucket.returning
    }
    assert busy == {"04:30": (1, 1), "05:30": (2, 0)}


def test_no_contact_is_lost_when_the_clocks_go_back(db):
    source = SourceFactory(code="tg")
    operator = OperatorSourceWeightFactory(source=source, since=WEEK_AGO).operator
    # 02:30 summer time, then 02:30 winter time, in Berlin on 25 October 2026.
    given(source, operator, datetime(2026, 10, 25, 0, 30, tzinfo=UTC))
    given(source, operator, datetime(2026, 10, 25, 1, 30, tzinfo=UTC))
    since, until = datetime(2026, 10, 24, 22, 0, tzinfo=UTC), datetime(2026, 10, 25, 4, tzinfo=UTC)

    with timezone.override(ZoneInfo("Europe/Berlin")):
        [report] = distribution_report(since=since, until=until)

    assert sum(bucket.assigned for bucket in report.timeline) == 2
    # Six hours, 02:00 twice: as instants (Python's == ignores which 02:00 it is).
    starts = {bucket.start.astimezone(UTC) for bucket in report.timeline}
    assert len(report.timeline) == len(starts) == 6


def test_longer_periods_are_counted_per_day_in_the_viewers_time_zone(db):
    source = SourceFactory(code="tg")
    operator = OperatorSourceWeightFactory(source=source, since=NOW - timedelta(days=60)).operator
    given(source, operator, datetime(2026, 11, 20, 21, 30, tzinfo=UTC))  # 21 Nov in Moscow
    given(source, operator, datetime(2026, 11, 21, 9, 0, tzinfo=UTC), count=2)

    with timezone.override(ZoneInfo("Europe/Moscow")):
        [report] = distribution_report(since=FIXED - timedelta(days=30), until=FIXED)

    assert report.timeline_unit == "day"
    assert len(report.timeline) == 31
    busy = {b.start.date().isoformat(): b.assigned for b in report.timeline if b.assigned}
    assert busy == {"2026-11-21": 3}


def test_all_time_starts_the_timeline_at_the_first_contact(db):
    source = SourceFactory(code="tg")
    operator = OperatorSourceWeightFactory(source=source, since=NOW - timedelta(days=400)).operator
    given(source, operator, NOW - timedelta(days=3))

    with timezone.override(UTC):
        [report] = distribution_report(now=NOW)

    assert report.timeline_unit == "hour"
    assert report.timeline[0].start == NOW - timedelta(days=3)
    assert report.timeline[0].assigned == 1


@pytest.mark.parametrize(
    ("days", "unit"), [(1, "hour"), (7, "hour"), (30, "day"), (365, "week"), (1000, "month")]
)
def test_bucket_unit_keeps_the_bars_few(days, unit):
    assert bucket_unit(NOW - timedelta(days=days), NOW) == unit


@pytest.mark.parametrize("unit", ["day", "week", "month"])
def test_bucket_starts_are_local_midnights(unit):
    zone = ZoneInfo("Europe/Moscow")

    starts = bucket_starts(unit, FIXED - timedelta(days=100), FIXED, zone)

    assert all((s.hour, s.minute) == (0, 0) for s in starts)
    assert starts[0] <= FIXED - timedelta(days=100) < starts[1]
    assert starts[-1] < FIXED
    assert unit != "week" or all(s.weekday() == 0 for s in starts)
    assert unit != "month" or all(s.day == 1 for s in starts)


@pytest.mark.parametrize(
    ("value", "top"), [(1, 1), (3, 3), (7, 8), (10, 10), (11, 15), (68, 80), (801, 1000)]
)
def test_the_charts_top_is_a_round_number(value, top):
    assert nice_ceiling(value) == top


def test_the_report_reads_six_queries_whatever_the_history(late_joiner):
    with CaptureQueriesContext(connection) as queries:
        distribution_report(since=WEEK_AGO, until=NOW)

    # Weights, contacts per operator, contacts per hour, waiting, operators, sources.
    assert len(queries) == 6


def test_the_page_draws_the_chart_and_lists_the_same_numbers(late_joiner, admin_client):
    with timezone.override(UTC):
        response = admin_client.get(DISTRIBUTION, {"days": 7})

    [card] = response.context["cards"]
    chart = card.chart
    assert chart.title == "Contacts given to operators per hour"
    assert chart.buckets == len(card.report.timeline)
    assert [(row.assigned, row.returning) for row in chart.rows] == [
        *[(1, 0)] * 6,
        (2, 0),
        (2, 0),
        (0, 1),
    ]
    last = (NOW - timedelta(hours=21)).strftime("%a %-d %b, %H:%M")
    assert chart.rows[-1].label == last
    assert (chart.total_assigned, chart.total_returning) == (card.report.assigned, 1)
    assert chart.peak == 2
    # One bar per busy bucket by weights, a full-height one where 2 came in.
    assert chart.assigned_path.count("M") == 8
    assert "v-100.0" in chart.assigned_path
    assert chart.returning_path.count("M") == 1
    page = response.content.decode()
    assert '<svg class="chart-bars"' in page
    assert 'role="img"' in page and chart.description in page
    assert f"<th>{last}</th><td>0</td><td>1</td>" in page


def test_a_source_without_contacts_in_the_period_says_so_instead_of_a_chart(admin_client):
    OperatorSourceWeightFactory(source__code="quiet")

    response = admin_client.get(DISTRIBUTION)

    [card] = response.context["cards"]
    assert card.chart is None
    assert "No contact was given to an operator in this period." in response.content.decode()


@pytest.fixture
def before_since(transactional_db):
    executor = MigrationExecutor(connection)
    executor.migrate([("distribution", "0009_active_label")])
    yield executor.loader.project_state([("distribution", "0009_active_label")]).apps
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


def test_the_migration_dates_existing_pairs_from_the_later_of_operator_and_source(before_since):
    operators = before_since.get_model("distribution", "Operator")
    sources = before_since.get_model("distribution", "Source")
    weights = before_since.get_model("distribution", "OperatorSourceWeight")
    old, new = datetime(2025, 1, 1, tzinfo=UTC), datetime(2026, 6, 1, tzinfo=UTC)
    source = sources.objects.create(code="tg", name="Telegram")
    veteran, newcomer = operators.objects.create(name="V"), operators.objects.create(name="N")
    sources.objects.update(created_at=new)
    operators.objects.filter(pk=veteran.pk).update(created_at=old)
    operators.objects.filter(pk=newcomer.pk).update(created_at=new + timedelta(days=3))
    weights.objects.create(source=source, operator=veteran, weight=1)
    weights.objects.create(source=source, operator=newcomer, weight=1)

    target = ("distribution", "0010_weight_since")
    executor = MigrationExecutor(connection)
    executor.migrate([target])
    after = executor.loader.project_state([target]).apps.get_model(
        "distribution", "OperatorSourceWeight"
    )

    joined = dict(after.objects.values_list("operator_id", "since"))
    assert joined == {veteran.pk: new, newcomer.pk: new + timedelta(days=3)}
