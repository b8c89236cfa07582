"""The background worker's passes and loop, with an injected clock: no sleeping."""

from datetime import UTC, datetime, time, timedelta

import pytest
from django.db import OperationalError

from core.health import WORKER
from core.models import Heartbeat
from distribution import operators
from distribution.models import Contact, Operator, OperatorStatusChange
from distribution.shifts import ShiftInterval
from distribution.sources import set_source_weights
from distribution.worker import (
    PASSES,
    Pass,
    Worker,
    drain_where_time_freed_room,
    set_away_without_heartbeat,
)
from tests.factories import (
    ContactFactory,
    OperatorFactory,
    OperatorSourceWeightFactory,
    SourceFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

# Monday 7 December 2026, in Europe/Berlin (UTC+1 in winter).
BEFORE_NINE = datetime(2026, 12, 7, 7, 59, tzinfo=UTC)
AT_NINE = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)


@pytest.fixture
def morning_shift():
    """Ivan works Mondays from 09:00 in Berlin; two contacts of his source are waiting."""
    weight = OperatorSourceWeightFactory(
        operator__name="Ivan", operator__time_zone="Europe/Berlin", operator__max_open_contacts=5
    )
    ivan = weight.operator
    operators.set_operator_shifts(operator=ivan, shifts=[ShiftInterval(0, time(9), time(17))])
    waiting = [ContactFactory(source=weight.source) for _ in range(2)]
    return ivan, waiting


def test_the_worker_gives_waiting_contacts_to_an_operator_whose_shift_started(morning_shift):
    ivan, waiting = morning_shift

    assert drain_where_time_freed_room(BEFORE_NINE) == 0
    assert drain_where_time_freed_room(AT_NINE) == 2

    for contact in waiting:
        contact.refresh_from_db()
        assert (contact.status, contact.operator) == (Contact.Status.OPEN, ivan)
        assert contact.assigned_at == AT_NINE
        assert contact.decision["trigger"] == "time_freed_room"


@pytest.mark.parametrize(
    "change", [{"status": "away"}, {"is_active": False}, {"max_open_contacts": 0}]
)
def test_the_worker_gives_nothing_to_an_operator_who_cannot_take_work(morning_shift, change):
    ivan, _ = morning_shift
    Operator.objects.filter(pk=ivan.pk).update(**change)

    assert drain_where_time_freed_room(AT_NINE) == 0
    assert Contact.objects.filter(status=Contact.Status.WAITING).count() == 2


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


def counting_pass(name: str, every_seconds: int, runs: list[str]) -> Pass:
    def run(now: datetime) -> int:
        runs.append(name)
        return 1

    return Pass(name, timedelta(seconds=every_seconds), run)


def test_each_pass_runs_when_it_is_due_and_the_heartbeat_is_kept():
    runs: list[str] = []
    clock = Clock(AT_NINE)
    worker = Worker([counting_pass("often", 5, runs), counting_pass("rarely", 600, runs)], clock)

    for seconds in (0, 1, 5, 10, 600):
        clock.now = AT_NINE + timedelta(seconds=seconds)
        worker.run_due()

    assert runs == ["often", "rarely", "often", "often", "often", "rarely"]
    assert Heartbeat.objects.get(name=WORKER).beat_at == AT_NINE + timedelta(seconds=600)


def test_a_database_error_is_logged_and_the_pass_runs_again_next_tick(caplog):
    attempts: list[datetime] = []

    def flaky(now: datetime) -> int:
        attempts.append(now)
        if len(attempts) == 1:
            raise OperationalError("server closed the connection unexpectedly\nmore")
        return 0

    clock = Clock(AT_NINE)
    worker = Worker([Pass("flaky", timedelta(minutes=10), flaky)], clock)

    worker.run_due()
    clock.now += timedelta(seconds=1)
    worker.run_due()

    assert len(attempts) == 2
    assert (
        '{"worker": "database_error", "error": "server closed the connection unexpectedly"}'
        in caplog.text
    )
    assert Heartbeat.objects.get(name=WORKER).beat_at == clock.now


@pytest.mark.django_db(transaction=True)  # run() replaces connections between ticks
def test_a_stop_request_ends_the_tick_after_the_pass_in_hand():
    runs: list[str] = []
    worker = Worker([counting_pass("first", 5, runs), counting_pass("second", 5, runs)])

    def stop_during_first(now: datetime) -> int:
        runs.append("first")
        worker.stop()
        return 1

    worker.passes[0] = Pass("first", timedelta(seconds=5), stop_during_first)
    worker.run(tick_seconds=0.01)

    assert runs == ["first"]


def test_operators_whose_desk_stopped_answering_are_set_away_and_give_back_their_offers(
    django_capture_on_commit_callbacks,
):
    now = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    quiet = OperatorFactory(name="Quiet", user=UserFactory(), seen_at=now - timedelta(seconds=91))
    fresh = OperatorFactory(name="Fresh", user=UserFactory(), seen_at=now - timedelta(seconds=30))
    never_opened = OperatorFactory(name="Never", user=UserFactory(), seen_at=None)
    without_login = OperatorFactory(name="Api", seen_at=now - timedelta(hours=1))
    source = SourceFactory(accept_timeout_seconds=60)
    set_source_weights(source=source, weights={quiet.pk: 1})
    offer = ContactFactory(
        source=source,
        operator=quiet,
        status=Contact.Status.OFFERED,
        assigned_at=now,
        offer_expires_at=now + timedelta(seconds=60),
    )

    with django_capture_on_commit_callbacks(execute=True):
        assert set_away_without_heartbeat(now) == 1
    assert set_away_without_heartbeat(now) == 0  # once

    statuses = dict(Operator.objects.values_list("name", "status"))
    assert statuses == {
        "Quiet": "away",
        "Fresh": "available",
        "Never": "available",
        "Api": "available",
    }
    assert OperatorStatusChange.objects.get(operator=quiet, status="away").reason == "no_heartbeat"
    offer.refresh_from_db()
    assert (offer.status, offer.operator) == (Contact.Status.WAITING, None)
    assert {fresh.status, never_opened.status, without_login.status} == {"available"}


def test_one_tick_of_the_worker_expires_an_offer_past_its_deadline():
    now = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    source = SourceFactory(accept_timeout_seconds=60)
    anna = OperatorSourceWeightFactory(source=source).operator
    offer = ContactFactory(
        source=source,
        operator=anna,
        status=Contact.Status.OFFERED,
        assigned_at=now - timedelta(seconds=61),
        offer_expires_at=now - timedelta(seconds=1),
    )

    Worker(PASSES, clock=lambda: now).run_due()

    offer.refresh_from_db()
    assert offer.status == Contact.Status.WAITING
    assert offer.offer_misses.get().kind == "expired"
