"""distribution.0005 fills Operator.hours from the shifts and days off already stored."""

from datetime import date, time

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor


def migrate(target: tuple[str, str]):
    executor = MigrationExecutor(connection)
    executor.migrate([target])
    return executor.loader.project_state([target]).apps


@pytest.fixture
def before_hours(transactional_db):
    yield migrate(("distribution", "0004_operators_at_work"))
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


def test_operators_keep_their_shifts_and_days_off_through_the_migration(before_hours):
    operators = before_hours.get_model("distribution", "Operator")
    night_owl, free = operators.objects.create(name="Owl"), operators.objects.create(name="Free")
    night_owl.shifts.create(weekday=4, start=time(22), end=time(6))
    night_owl.days_off.create(first_day=date(2026, 12, 31), last_day=date(2027, 1, 2))

    after = migrate(("distribution", "0005_operator_hours")).get_model("distribution", "Operator")

    assert after.objects.get(pk=night_owl.pk).hours == "4 22:00 06:00;2026-12-31 2027-01-02"
    assert after.objects.get(pk=free.pk).hours == ""
