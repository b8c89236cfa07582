"""The distribution report: per source and operator, the share the weights gave each
operator over the time it was on the source against the share it got; and the contacts
the source gave out per hour (per day, week or month over longer periods).

One read for the API (`/api/stats/distribution/`), the admin's distribution page and
`manage.py distribution_report`. Six queries whatever the history size (weights,
contacts per operator, contacts per hour, waiting, operators, sources); the two over
assigned contacts are served by the index contact_assigned_at alone (see
distribution.models.Contact.Meta).
"""

from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from django.db.models import Case, Count, DateTimeField, IntegerField, Min, Value, When
from django.db.models.functions import Trunc
from django.utils import timezone

from distribution.eligibility import OperatorState, state_of
from distribution.models import Contact, Operator, OperatorSourceWeight, Source

# The timeline's buckets: hours up to a week (168 at most), then days, weeks and months,
# so that no period draws more than about 120 bars.
BUCKET_SPANS = (
    ("hour", timedelta(days=7)),
    ("day", timedelta(days=120)),
    ("week", timedelta(days=730)),
)


@dataclass
class OperatorShare:
    operator_id: int
    name: str
    is_active: bool
    weight: int  # 0 when the operator is no longer on the source but got contacts in the period
    target_share: float  # weight / sum of the active operators' weights on the source now
    joined_at: datetime | None  # when it joined the source; None when no longer on it
    # Its part of the period: from the later of the period's start and joined_at. Its
    # shares count only the contacts the source assigned by its rule in that part.
    share_base: int  # the source's contacts assigned by rule in its part of the period
    share_assigned: int  # of those, its own
    # What the weights gave it of share_base: for each of those contacts, its weight over
    # the weights of the active operators on the source at that time, averaged. Equal to
    # target_share unless someone joined the source during its part of the period.
    expected_share: float
    assigned: int  # by the source's rule in the whole period: what the weights govern
    actual_share: float | None  # share_assigned / share_base; None when share_base is 0
    returning: int  # given to the operator as the lead's own (sticky): load, not shares
    load: int  # open contacts now
    limit: int

    @property
    def state(self) -> OperatorState:
        return OperatorState(
            operator_id=self.operator_id,
            name=self.name,
            is_active=self.is_active,
            load=self.load,
            limit=self.limit,
            weight=self.weight or None,
        )


@dataclass(frozen=True)
class Bucket:
    """Contacts a source gave to operators in one hour (or day, week, month)."""

    start: datetime  # in the current time zone
    assigned: int  # by the source's rule
    returning: int  # to the lead's own operator


@dataclass
class SourceReport:
    source_id: int
    code: str
    name: str
    strategy: str
    is_active: bool
    waiting: int
    assigned: int  # by the source's rule
    returning: int  # to the lead's own operator
    load_units: int  # what one of its contacts costs
    operators: list[OperatorShare] = field(default_factory=list)
    timeline_unit: str = "hour"  # the buckets' length: hour, day, week or month
    # Every bucket of the period, oldest first; empty when the source gave no contact.
    timeline: list[Bucket] = field(default_factory=list)

    @property
    def busy_buckets(self) -> list[Bucket]:
        """The buckets it gave contacts in: what the API lists."""
        return [bucket for bucket in self.timeline if bucket.assigned or bucket.returning]


@dataclass(frozen=True)
class Pair:
    weight: int
    joined_at: datetime


# (source_id, operator_id, by_owner, segment) -> contacts. Segment k of a source counts
# the contacts assigned from the k-th time an operator joined it in the period (0: before).
Counts = dict[tuple[int, int, bool, int], int]


def distribution_report(
    *, since: datetime | None = None, until: datetime | None = None, now: datetime | None = None
) -> list[SourceReport]:
    """Per source, over [since, until) (`now` ends an open period):

    1. each operator's share of the contacts the source assigned by its rule since the
       operator joined it, against the share its weight gave it over that time (see
       OperatorShare.expected_share);
    2. the contacts it got as a returning lead's own operator (sticky: not in the
       shares, which the weights govern for new leads), its open load and limit;
    3. the source's waiting count, and its contacts per hour (per day over longer
       periods) for the chart.
    """
    pairs = _pairs()
    joins = {
        source_id: _joins_within([pair.joined_at for pair in on_source.values()], since, until)
        for source_id, on_source in pairs.items()
    }
    assigned, first = _assigned_counts(since, until, joins)
    by_source = _by_source(assigned, joins)
    start, end = since or first, until or now or timezone.now()
    unit = bucket_unit(start, end) if start is not None else "hour"
    timelines = _timelines(unit, start, end) if start is not None and start < end else {}
    waiting = _waiting()
    operators = {op.pk: op for op in Operator.objects.with_load()}
    reports = []
    for source in Source.objects.order_by("code"):
        moments = joins.get(source.pk, [])
        counts = by_source.get(source.pk) or _SourceCounts(len(moments) + 1)
        rows = _shares(pairs.get(source.pk, {}), moments, counts, until, operators)
        reports.append(
            SourceReport(
                source_id=source.pk,
                code=source.code,
                name=source.name,
                strategy=source.strategy,
                is_active=source.is_active,
                waiting=waiting.get(source.pk, 0),
                assigned=sum(counts.totals()),
                returning=sum(counts.returning.values()),
                load_units=source.load_units,
                operators=rows,
                timeline_unit=unit,
                timeline=timelines.get(source.pk, []),
            )
        )
    return reports


def _waiting() -> dict[int, int]:
    """Contacts waiting now, per source."""
    return dict(
        Contact.objects.filter(status=Contact.Status.WAITING)
        .order_by()
        .values("source_id")
        .annotate(count=Count("pk"))
        .values_list("source_id", "count")
    )


def _pairs() -> dict[int, dict[int, Pair]]:
    """Who is on each source now: source_id -> operator_id -> its weight and join time."""
    pairs: dict[int, dict[int, Pair]] = {}
    for source_id, operator_id, weight, joined_at in OperatorSourceWeight.objects.values_list(
        "source_id", "operator_id", "weight", "since"
    ):
        pairs.setdefault(source_id, {})[operator_id] = Pair(weight, joined_at)
    return pairs


def _joins_within(
    moments: Iterable[datetime], since: datetime | None, until: datetime | None
) -> list[datetime]:
    """The distinct times operators joined a source inside (since, until), in order:
    where its segments start. Several joined at once by one change of the weights."""
    return sorted(
        {m for m in moments if (since is None or m > since) and (until is None or m < until)}
    )


def _assigned_counts(
    since: datetime | None, until: datetime | None, joins: dict[int, list[datetime]]
) -> tuple[Counts, datetime | None]:
    """Contacts given to operators in the period per source, operator, by_owner and
    segment, and the first one's time. One query, read from the index
    contact_assigned_at alone: the segment is a CASE over its columns."""
    contacts = Contact.objects.filter(operator__isnull=False, assigned_at__isnull=False)
    if since is not None:
        contacts = contacts.filter(assigned_at__gte=since)
    if until is not None:
        contacts = contacts.filter(assigned_at__lt=until)
    # A source's latest join first: the first WHEN that matches names the segment.
    whens = [
        When(source_id=source_id, assigned_at__gte=moment, then=Value(number))
        for source_id, moments in joins.items()
        for number, moment in reversed(list(enumerate(moments, start=1)))
    ]
    segment = Case(*whens, default=Value(0), output_field=IntegerField()) if whens else Value(0)
    rows = (
        contacts.order_by()
        .annotate(segment=segment)
        .values("source_id", "operator_id", "by_owner", "segment")
        .annotate(count=Count("pk"), first=Min("assigned_at"))
    )
    counts: Counts = {}
    firsts = []
    for row in rows:
        counts[row["source_id"], row["operator_id"], row["by_owner"], row["segment"]] = row["count"]
        firsts.append(row["first"])
    return counts, min(firsts, default=None)


class _SourceCounts:
    """One source's contacts in the period: by its rule, per operator and segment; and
    to returning leads' own operators, per operator."""

    def __init__(self, segments: int) -> None:
        self.segments = segments
        self.by_rule: dict[int, list[int]] = {}
        self.returning: dict[int, int] = {}

    def add(self, operator_id: int, by_owner: bool, segment: int, count: int) -> None:
        if by_owner:
            self.returning[operator_id] = self.returning.get(operator_id, 0) + count
        else:
            self.by_rule.setdefault(operator_id, [0] * self.segments)[segment] += count

    def totals(self) -> list[int]:
        """Contacts assigned by the rule in each segment, to anyone."""
        return [sum(counts[k] for counts in self.by_rule.values()) for k in range(self.segments)]


def _by_source(counts: Counts, joins: dict[int, list[datetime]]) -> dict[int, _SourceCounts]:
    by_source: dict[int, _SourceCounts] = {}
    for (source_id, operator_id, by_owner, segment), count in counts.items():
        segments = len(joins.get(source_id, [])) + 1
        source = by_source.setdefault(source_id, _SourceCounts(segments))
        source.add(operator_id, by_owner, segment, count)
    return by_source


def _shares(
    on_source: dict[int, Pair],
    joins: list[datetime],
    counts: _SourceCounts,
    until: datetime | None,
    operators: dict[int, Operator],
) -> list[OperatorShare]:
    """A row for each operator on the source now or given its contacts in the period."""
    firsts = {
        op_id: _first_segment(pair.joined_at, joins, until) for op_id, pair in on_source.items()
    }
    active = {op_id: p.weight for op_id, p in on_source.items() if operators[op_id].is_active}
    # The active weights on the source in each segment: of those who had joined by then.
    present = [
        sum(weight for op_id, weight in active.items() if firsts[op_id] <= k)
        for k in range(counts.segments)
    ]
    totals = counts.totals()
    rows = []
    for operator_id in sorted(set(on_source) | set(counts.by_rule) | set(counts.returning)):
        first = firsts.get(operator_id, 0)
        weight = active.get(operator_id, 0)
        expected = sum(
            totals[k] * weight / present[k] for k in range(first, counts.segments) if present[k]
        )
        rows.append(
            _share(
                operators[operator_id],
                on_source.get(operator_id),
                target=weight / sum(active.values()) if weight else 0.0,
                base=sum(totals[first:]),
                expected=expected,
                mine=counts.by_rule.get(operator_id, [0] * counts.segments),
                first=first,
                returning=counts.returning.get(operator_id, 0),
            )
        )
    return rows


def _share(
    operator: Operator,
    pair: Pair | None,
    *,
    target: float,
    base: int,
    expected: float,
    mine: list[int],
    first: int,
    returning: int,
) -> OperatorShare:
    state = state_of(operator)
    share_assigned = sum(mine[first:])
    return OperatorShare(
        operator_id=operator.pk,
        name=state.name,
        is_active=state.is_active,
        weight=pair.weight if pair else 0,
        target_share=target,
        joined_at=pair.joined_at if pair else None,
        share_base=base,
        share_assigned=share_assigned,
        expected_share=expected / base if base else target,
        assigned=sum(mine),
        actual_share=share_assigned / base if base else None,
        returning=returning,
        load=state.load,
        limit=state.limit,
    )


def _first_segment(joined_at: datetime, joins: list[datetime], until: datetime | None) -> int:
    """The first segment of the period the operator was on the source for: 0 when it
    joined before the period, past the last when it joined after it."""
    if until is not None and joined_at >= until:
        return len(joins) + 1
    return bisect_right(joins, joined_at)


def bucket_unit(start: datetime, end: datetime) -> str:
    """Hours up to a week, then days, weeks, months: at most about 120-170 bars."""
    for unit, longest in BUCKET_SPANS:
        if end - start <= longest:
            return unit
    return "month"


def bucket_starts(unit: str, start: datetime, end: datetime, zone: tzinfo) -> list[datetime]:
    """Where each bucket from the one holding `start` to the one before `end` begins,
    in `zone`: what Trunc(unit, tzinfo=zone) gives for a time inside it."""
    local = start.astimezone(zone)
    if unit == "hour":
        # Counted in UTC: an hour is an hour across a change of the clocks.
        first = local.replace(minute=0, second=0, microsecond=0).astimezone(UTC)
        hours = -(-(end - first) // timedelta(hours=1))
        return [(first + timedelta(hours=n)).astimezone(zone) for n in range(hours)]
    day = local.date()
    if unit == "week":
        day -= timedelta(days=day.weekday())
    elif unit == "month":
        day = day.replace(day=1)
    starts = []
    while (moment := datetime.combine(day, time.min, tzinfo=zone)) < end:
        starts.append(moment)
        day = _next_day(unit, day)
    return starts


def _next_day(unit: str, day: date) -> date:
    if unit == "day":
        return day + timedelta(days=1)
    if unit == "week":
        return day + timedelta(weeks=1)
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1)


def _timelines(unit: str, start: datetime, end: datetime) -> dict[int, list[Bucket]]:
    """Per source, the contacts given to operators in each bucket of [start, end), every
    bucket listed. One query grouped by the truncated time in the current time zone,
    read from the index contact_assigned_at alone."""
    zone = timezone.get_current_timezone()
    rows = (
        Contact.objects.filter(operator__isnull=False, assigned_at__gte=start, assigned_at__lt=end)
        .order_by()
        .annotate(bucket=Trunc("assigned_at", unit, output_field=DateTimeField(), tzinfo=zone))
        .values("source_id", "bucket", "by_owner")
        .annotate(count=Count("pk"))
    )
    # Keyed by the instant: two local times an hour apart compare equal in Python when
    # the clocks go back (fold is ignored), but not in UTC. The database groups by the
    # local hour, so the repeated hour's contacts all show in its first occurrence.
    counts = {
        (row["source_id"], row["bucket"].astimezone(UTC), row["by_owner"]): row["count"]
        for row in rows
    }
    starts = [moment.astimezone(UTC) for moment in bucket_starts(unit, start, end, zone)]
    return {
        source_id: [
            Bucket(
                moment.astimezone(zone),
                counts.get((source_id, moment, False), 0),
                counts.get((source_id, moment, True), 0),
            )
            for moment in starts
        ]
        for source_id in {source_id for source_id, _, _ in counts}
    }
