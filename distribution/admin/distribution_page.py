"""The admin's distribution page: per source, target against actual shares over a
period, load and waiting, and the contacts given out per hour as a chart and a table,
from reports.distribution_report."""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils import formats, timezone
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from distribution.admin.common import load_bar, percent, signed
from distribution.eligibility import is_at_limit
from distribution.forms import PRESET_DAYS, ReportPeriodForm
from distribution.models import Source
from distribution.preview import source_warnings
from distribution.reports import Bucket, OperatorShare, SourceReport, distribution_report

# Percentage points between actual and target share past which the page highlights a row.
GAP_ALERT = 5
# The chart's drawing box: a bucket is one unit wide, the tallest bar CHART_TOP high.
CHART_TOP = 100
BAR_WIDTH = 0.8
# At most this many dates under a chart: they must fit side by side at 400 px.
MAX_TICKS = 7

UNIT_TITLES = {
    "hour": gettext_lazy("Contacts given to operators per hour"),
    "day": gettext_lazy("Contacts given to operators per day"),
    "week": gettext_lazy("Contacts given to operators per week"),
    "month": gettext_lazy("Contacts given to operators per month"),
}
PEAK_TEXTS = {
    "hour": gettext_lazy("%(total)s in all, at most %(peak)s in an hour"),
    "day": gettext_lazy("%(total)s in all, at most %(peak)s in a day"),
    "week": gettext_lazy("%(total)s in all, at most %(peak)s in a week"),
    "month": gettext_lazy("%(total)s in all, at most %(peak)s in a month"),
}
# How a bucket is named in the table, and a date under the chart (Django date formats).
ROW_FORMATS = {"hour": "D j M, H:i", "day": "D j M Y", "week": "j M Y", "month": "F Y"}
TICK_FORMATS = {"hour": "D j", "day": "j M", "week": "j M", "month": "M Y"}


def distribution_view(model_admin: admin.ModelAdmin, request: HttpRequest) -> TemplateResponse:
    """Per source: target against actual shares over a period, load, waiting, and the
    contacts given out per hour. The report reads six queries (reports.distribution_report)."""
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    form = ReportPeriodForm(request.GET or None)
    now = timezone.now()
    since, until = form.bounds(now=now)
    report = distribution_report(since=since, until=until, now=now)
    context = {
        **model_admin.admin_site.each_context(request),
        "title": _("Distribution"),
        "opts": model_admin.model._meta,
        "form": form,
        "period": form.label(),
        "presets": PRESET_DAYS.items(),
        "cards": [source_card(source) for source in report],
        "summary": report_summary(report),
        "timeline_title": UNIT_TITLES[report[0].timeline_unit if report else "hour"],
    }
    return TemplateResponse(request, "admin/distribution/report.html", context)


@dataclass
class ShareRow:
    """One operator on the distribution page; widths are % of the source's bar track."""

    share: OperatorShare
    target_width: float
    actual_width: float
    target_text: str  # the share its weight gave it over its time on the source
    actual_text: str
    gap_text: str  # actual minus target, in percentage points
    gap_off: bool  # more than GAP_ALERT points away from the target
    load: SafeString
    notes: list[str]


@dataclass
class Tick:
    left: float  # % of the chart's width
    label: str


@dataclass
class TableRow:
    label: str
    assigned: int
    returning: int


@dataclass
class Chart:
    """A source's contacts per bucket as bars: by weights, with returning leads' on top."""

    title: str
    buckets: int  # the drawing box's width: a bucket is one unit wide
    peak: int  # the drawing box's top, in contacts: the busiest bucket, rounded up
    assigned_path: str
    returning_path: str
    ticks: list[Tick]
    rows: list[TableRow]  # the buckets with contacts, for the table
    summary: str  # in all, and the busiest bucket
    description: str  # what the picture shows, for screen readers

    @property
    def total_assigned(self) -> int:
        return sum(row.assigned for row in self.rows)

    @property
    def total_returning(self) -> int:
        return sum(row.returning for row in self.rows)


@dataclass
class SourceCard:
    report: SourceReport
    strategy: str  # the source's strategy as staff read it
    rows: list[ShareRow]
    scale: int  # the share, in %, that a full bar stands for
    warnings: list[str]
    chart: Chart | None  # None when the source gave no contact in the period


def source_card(report: SourceReport) -> SourceCard:
    """Bars for one source, scaled so its largest share fills the track (rounded up to 10%)."""
    shares = [row.expected_share for row in report.operators]
    shares += [row.actual_share or 0.0 for row in report.operators]
    scale = max(10, math.ceil(max(shares, default=0.0) * 10) * 10)
    return SourceCard(
        report=report,
        strategy=str(Source.Strategy(report.strategy).label),
        rows=[_share_row(row, scale, report) for row in report.operators],
        scale=scale,
        warnings=_card_warnings(report),
        chart=timeline_chart(report),
    )


def _share_row(row: OperatorShare, scale: int, report: SourceReport) -> ShareRow:
    actual, target = row.actual_share, row.expected_share
    gap = None if actual is None else 100 * (actual - target)
    return ShareRow(
        share=row,
        target_width=round(100 * 100 * target / scale, 1),
        actual_width=round(100 * 100 * (actual or 0.0) / scale, 1),
        target_text=percent(target),
        actual_text="—" if actual is None else percent(actual),
        gap_text="—" if gap is None else signed(gap),
        gap_off=gap is not None and abs(gap) > GAP_ALERT,
        load=load_bar(row.state),
        notes=_share_notes(row, report),
    )


def _share_notes(row: OperatorShare, report: SourceReport) -> list[str]:
    notes = []
    if not row.weight:
        notes.append(_("no longer on this source"))
    elif not row.is_active:
        notes.append(_("inactive"))
    elif is_at_limit(row.load, row.limit):
        notes.append(_("at the limit"))
    if row.joined_at is not None and row.share_base < report.assigned:
        # Some of the period's contacts came before it joined: they are not in its shares.
        notes.append(
            ngettext(
                "on this source since %(time)s: shares of the %(count)s contact since",
                "on this source since %(time)s: shares of the %(count)s contacts since",
                row.share_base,
            )
            % {"time": _moment(row.joined_at), "count": row.share_base}
        )
    if row.share_base and abs(row.expected_share - row.target_share) >= 0.0005:
        notes.append(_("its weight gives %(share)s now") % {"share": percent(row.target_share)})
    return notes


def _moment(value: datetime) -> str:
    return formats.date_format(timezone.localtime(value), "j M, H:i")


def _card_warnings(report: SourceReport) -> list[str]:
    operators = [
        row.state
        for row in report.operators
        if row.weight  # still configured on the source, not only in its history
    ]
    return source_warnings(is_active=report.is_active, operators=operators, units=report.load_units)


def timeline_chart(report: SourceReport) -> Chart | None:
    """The source's timeline as bars in a box `buckets` wide and CHART_TOP high (the SVG
    stretches it to the page's width), dates under it, and the table's rows."""
    buckets = report.timeline
    busy = [bucket for bucket in buckets if bucket.assigned or bucket.returning]
    if not busy:
        return None
    unit = report.timeline_unit
    peak = nice_ceiling(max(bucket.assigned + bucket.returning for bucket in busy))
    title = str(UNIT_TITLES[unit])
    rows = [
        TableRow(_bucket_label(bucket, unit), bucket.assigned, bucket.returning) for bucket in busy
    ]
    summary = PEAK_TEXTS[unit] % {
        "total": sum(row.assigned + row.returning for row in rows),
        "peak": max(row.assigned + row.returning for row in rows),
    }
    return Chart(
        title=title,
        buckets=len(buckets),
        peak=peak,
        assigned_path=_bars(buckets, peak, on_top=False),
        returning_path=_bars(buckets, peak, on_top=True),
        ticks=_ticks(buckets, unit),
        rows=rows,
        summary=summary,
        description=_("%(title)s, %(source)s, %(first)s to %(last)s: %(summary)s")
        % {
            "title": title,
            "source": report.code,
            "first": _bucket_label(buckets[0], unit),
            "last": _bucket_label(buckets[-1], unit),
            "summary": summary,
        },
    )


def nice_ceiling(value: int) -> int:
    """The chart's top: the smallest round number at least `value` (1, 2, 3, 4, 5, 6, 8,
    10, 15, 20, 30, ...), so the tallest bar fills at least two thirds of the height."""
    magnitude = 1
    while True:
        for step in (1, 1.5, 2, 3, 4, 5, 6, 8):
            top = step * magnitude
            if top >= value and top == int(top):
                return int(top)
        magnitude *= 10


def _bars(buckets: Sequence[Bucket], peak: int, *, on_top: bool) -> str:
    """One SVG path for all the bars of a series: a closed rectangle per bucket with
    contacts (one path instead of a rectangle element each keeps the page small)."""
    scale = CHART_TOP / peak
    parts = []
    for index, bucket in enumerate(buckets):
        height = (bucket.returning if on_top else bucket.assigned) * scale
        if not height:
            continue
        bottom = CHART_TOP - (bucket.assigned * scale if on_top else 0)
        left = index + (1 - BAR_WIDTH) / 2
        # A tenth of a unit is about a tenth of a pixel at the chart's height.
        parts.append(f"M{left:g} {bottom:.1f}v-{height:.1f}h{BAR_WIDTH:g}v{height:.1f}z")
    return "".join(parts)


def _ticks(buckets: Sequence[Bucket], unit: str) -> list[Tick]:
    """Dates under the chart: midnights for hours (or every 6 hours within a day), else
    every n-th bucket; none so near the right edge that its label would stick out."""
    count = len(buckets)
    if unit == "hour" and count <= 36:
        marks = [i for i, b in enumerate(buckets) if timezone.localtime(b.start).hour % 6 == 0]
        label_format = "H:i"
    elif unit == "hour":
        marks = [i for i, b in enumerate(buckets) if timezone.localtime(b.start).hour == 0]
        label_format = TICK_FORMATS[unit]
    else:
        marks = list(range(0, count, math.ceil(count / MAX_TICKS)))
        label_format = TICK_FORMATS[unit]
    return [
        Tick(
            left=round(100 * index / count, 2),
            label=formats.date_format(timezone.localtime(buckets[index].start), label_format),
        )
        for index in marks
        if index / count <= 0.9
    ]


def _bucket_label(bucket: Bucket, unit: str) -> str:
    label = formats.date_format(timezone.localtime(bucket.start), ROW_FORMATS[unit])
    return _("week of %(day)s") % {"day": label} if unit == "week" else label


def report_summary(report: Sequence[SourceReport]) -> dict[str, int]:
    """The headline numbers above the cards."""
    operators = {row.operator_id: row for source in report for row in source.operators}
    return {
        "assigned": sum(source.assigned for source in report),
        "returning": sum(source.returning for source in report),
        "waiting": sum(source.waiting for source in report),
        "open": sum(row.load for row in operators.values()),
        "at_limit": sum(
            1 for row in operators.values() if row.is_active and is_at_limit(row.load, row.limit)
        ),
        "operators": len(operators),
    }
