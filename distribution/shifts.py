"""Working hours: whether an operator is on shift at a moment. Pure, no database.

A shift is a weekly interval in the operator's own time zone (Monday = 0). One that
ends before its start crosses midnight: 22:00-06:00 on Friday runs into Saturday
morning. Times are wall-clock times in the zone, so a daylight-saving change moves the
shift with the clocks. An operator with no shifts is always on shift; a day off (a
range of dates in the zone) takes precedence over shifts.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.utils.translation import gettext_lazy

# Monday = 0: Shift.weekday's choices.
WEEKDAYS = [
    gettext_lazy("Monday"),
    gettext_lazy("Tuesday"),
    gettext_lazy("Wednesday"),
    gettext_lazy("Thursday"),
    gettext_lazy("Friday"),
    gettext_lazy("Saturday"),
    gettext_lazy("Sunday"),
]


@dataclass(frozen=True)
class ShiftInterval:
    weekday: int  # Monday = 0
    start: time
    end: time

    @property
    def crosses_midnight(self) -> bool:
        return self.end < self.start

    def minutes(self) -> tuple[int, int]:
        """[start, end) in minutes from Monday 00:00; the end may pass the week's end."""
        start = self.weekday * 1440 + self.start.hour * 60 + self.start.minute
        end = self.weekday * 1440 + self.end.hour * 60 + self.end.minute
        return start, end + 1440 if self.crosses_midnight else end


@dataclass(frozen=True)
class DayOff:
    first_day: date
    last_day: date


def hours_text(shifts: Sequence[ShiftInterval], days_off: Sequence[DayOff]) -> str:
    """Shifts and days off in one line, as Operator.hours keeps them for the intake:
    "0 09:00 18:00,4 22:00 06:00;2026-12-31 2027-01-02"; empty when there are none."""
    if not shifts and not days_off:
        return ""
    shift_items = (f"{s.weekday} {s.start:%H:%M} {s.end:%H:%M}" for s in shifts)
    day_items = (f"{d.first_day.isoformat()} {d.last_day.isoformat()}" for d in days_off)
    return f"{','.join(shift_items)};{','.join(day_items)}"


def read_hours(text: str) -> tuple[list[ShiftInterval], list[DayOff]]:
    """The shifts and days off `hours_text` wrote."""
    if not text:
        return [], []
    shift_part, day_part = text.split(";")
    shifts = []
    for item in shift_part.split(",") if shift_part else []:
        weekday, start, end = item.split(" ")
        shifts.append(
            ShiftInterval(int(weekday), time.fromisoformat(start), time.fromisoformat(end))
        )
    days_off = []
    for item in day_part.split(",") if day_part else []:
        first, last = item.split(" ")
        days_off.append(DayOff(date.fromisoformat(first), date.fromisoformat(last)))
    return shifts, days_off


def is_time_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def is_on_shift(
    *,
    shifts: Sequence[ShiftInterval],
    days_off: Sequence[DayOff],
    time_zone: str,
    now: datetime,
) -> bool:
    """Whether `now` falls in one of the shifts, in the operator's zone, and on no day off."""
    if not shifts and not days_off:
        return True  # most operators: no need to place the moment in a zone
    local = now.astimezone(ZoneInfo(time_zone))
    if any(day.first_day <= local.date() <= day.last_day for day in days_off):
        return False
    if not shifts:
        return True
    minute = local.weekday() * 1440 + local.hour * 60 + local.minute
    week = 7 * 1440
    for shift in shifts:
        start, end = shift.minutes()
        # A Sunday shift past midnight ends on Monday: look a week back too.
        if start <= minute < end or start <= minute + week < end:
            return True
    return False


def overlaps(shifts: Sequence[ShiftInterval]) -> list[tuple[int, int]]:
    """Pairs of indexes of shifts that share some minute of the week."""
    week = 7 * 1440
    spans = [shift.minutes() for shift in shifts]
    pairs = []
    for i, (start_a, end_a) in enumerate(spans):
        for j in range(i + 1, len(spans)):
            start_b, end_b = spans[j]
            if any(
                start_a < end_b + shift and start_b + shift < end_a for shift in (-week, 0, week)
            ):
                pairs.append((i, j))
    return pairs
