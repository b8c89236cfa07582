"""Working hours without a database: shifts in the operator's zone, past midnight,
across a daylight-saving change, and days off."""

from datetime import UTC, date, datetime, time

import pytest

from distribution.shifts import (
    DayOff,
    ShiftInterval,
    hours_text,
    is_on_shift,
    overlaps,
    read_hours,
)

MONDAY, FRIDAY, SATURDAY, SUNDAY = 0, 4, 5, 6
OFFICE = [ShiftInterval(MONDAY, time(9), time(18))]
NIGHT = [ShiftInterval(FRIDAY, time(22), time(6))]


def on_shift(shifts, at: datetime, zone: str = "UTC", days_off=()) -> bool:
    return is_on_shift(shifts=shifts, days_off=list(days_off), time_zone=zone, now=at)


def test_an_operator_without_shifts_is_always_on_shift():
    assert on_shift([], datetime(2026, 12, 6, 3, 0, tzinfo=UTC))


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (datetime(2026, 11, 30, 9, 0, tzinfo=UTC), True),  # Monday, the first minute
        (datetime(2026, 11, 30, 17, 59, tzinfo=UTC), True),
        (datetime(2026, 11, 30, 18, 0, tzinfo=UTC), False),  # the end is not included
        (datetime(2026, 11, 30, 8, 59, tzinfo=UTC), False),
        (datetime(2026, 12, 1, 10, 0, tzinfo=UTC), False),  # Tuesday
    ],
)
def test_a_day_shift_covers_its_hours_on_its_weekday(at, expected):
    assert on_shift(OFFICE, at) is expected


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (datetime(2026, 12, 4, 22, 0, tzinfo=UTC), True),  # Friday night
        (datetime(2026, 12, 5, 3, 0, tzinfo=UTC), True),  # Saturday, before six
        (datetime(2026, 12, 5, 6, 0, tzinfo=UTC), False),
        (datetime(2026, 12, 4, 21, 59, tzinfo=UTC), False),
        (datetime(2026, 12, 5, 23, 0, tzinfo=UTC), False),  # Saturday night: no shift
    ],
)
def test_a_night_shift_runs_past_midnight_into_the_next_day(at, expected):
    assert on_shift(NIGHT, at) is expected


def test_a_sunday_night_shift_ends_on_monday_morning():
    sunday_night = [ShiftInterval(SUNDAY, time(23), time(2))]

    assert on_shift(sunday_night, datetime(2026, 12, 7, 1, 0, tzinfo=UTC))  # Monday 01:00
    assert not on_shift(sunday_night, datetime(2026, 12, 7, 2, 0, tzinfo=UTC))


def test_shifts_are_wall_clock_times_in_the_operators_zone_across_daylight_saving():
    # Berlin moves from UTC+1 to UTC+2 on Sunday 29 March 2026: 07:30 UTC is 08:30 on
    # the Monday before (off shift) and 09:30 on the Monday after (on shift).
    before, after = (
        datetime(2026, 3, 23, 7, 30, tzinfo=UTC),
        datetime(2026, 3, 30, 7, 30, tzinfo=UTC),
    )

    assert not on_shift(OFFICE, before, zone="Europe/Berlin")
    assert on_shift(OFFICE, after, zone="Europe/Berlin")
    # And 16:30 UTC, 18:30 in summer, is past the end only after the change.
    assert on_shift(OFFICE, datetime(2026, 3, 23, 16, 30, tzinfo=UTC), zone="Europe/Berlin")
    assert not on_shift(OFFICE, datetime(2026, 3, 30, 16, 30, tzinfo=UTC), zone="Europe/Berlin")


def test_a_day_off_takes_precedence_over_shifts_and_counts_in_the_operators_zone():
    holiday = [DayOff(date(2026, 12, 7), date(2026, 12, 7))]
    # Monday 7 December 09:30 in Moscow is 06:30 UTC.
    at = datetime(2026, 12, 7, 6, 30, tzinfo=UTC)
    monday_moscow = [ShiftInterval(MONDAY, time(9), time(18))]

    assert on_shift(monday_moscow, at, zone="Europe/Moscow")
    assert not on_shift(monday_moscow, at, zone="Europe/Moscow", days_off=holiday)
    assert not on_shift([], at, zone="Europe/Moscow", days_off=holiday)
    # 22:00 UTC on the 6th is already the 7th in Moscow.
    assert not on_shift([], datetime(2026, 12, 6, 22, 0, tzinfo=UTC), "Europe/Moscow", holiday)


def test_overlapping_shifts_are_found_also_across_the_end_of_the_week():
    shifts = [
        ShiftInterval(MONDAY, time(9), time(13)),
        ShiftInterval(MONDAY, time(12), time(18)),  # overlaps the first
        ShiftInterval(SUNDAY, time(22), time(9, 30)),  # runs into Monday 09:30
        ShiftInterval(SATURDAY, time(9), time(18)),
    ]

    assert overlaps(shifts) == [(0, 1), (0, 2)]
    assert (
        overlaps(
            [ShiftInterval(MONDAY, time(9), time(12)), ShiftInterval(MONDAY, time(12), time(13))]
        )
        == []
    )


def test_hours_read_back_as_they_were_written():
    shifts = [ShiftInterval(0, time(9), time(18)), ShiftInterval(4, time(22), time(6))]
    days_off = [DayOff(date(2026, 12, 31), date(2027, 1, 2))]

    assert read_hours(hours_text(shifts, days_off)) == (shifts, days_off)
    assert read_hours(hours_text(shifts, [])) == (shifts, [])
    assert read_hours(hours_text([], days_off)) == ([], days_off)
    assert hours_text([], []) == ""
    assert read_hours("") == ([], [])
