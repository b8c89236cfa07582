"""The admin's distribution page: per source, target against actual shares over a
period, load and waiting, from reports.distribution_report."""

import math
from collections.abc import Sequence
from dataclasses import dataclass

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.safestring import SafeString

from distribution.admin.common import load_bar
from distribution.eligibility import is_at_limit
from distribution.forms import PRESET_DAYS, ReportPeriodForm
from distribution.preview import source_warnings
from distribution.reports import OperatorShare, SourceReport, distribution_report

# Percentage points between actual and target share past which the page highlights a row.
GAP_ALERT = 5


def distribution_view(model_admin: admin.ModelAdmin, request: HttpRequest) -> TemplateResponse:
    """Per source: target against actual shares over a period, load and waiting."""
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    form = ReportPeriodForm(request.GET or None)
    since, until = form.bounds(now=timezone.now())
    report = distribution_report(since=since, until=until)
    context = {
        **model_admin.admin_site.each_context(request),
        "title": "Distribution",
        "opts": model_admin.model._meta,
        "form": form,
        "period": form.label(),
        "presets": PRESET_DAYS.items(),
        "cards": [source_card(source) for source in report],
        "summary": report_summary(report),
    }
    return TemplateResponse(request, "admin/distribution/report.html", context)


@dataclass
class ShareRow:
    """One operator on the distribution page; widths are % of the source's bar track."""

    share: OperatorShare
    target_width: float
    actual_width: float
    target_text: str
    actual_text: str
    gap_text: str  # actual minus target, in percentage points
    gap_off: bool  # more than GAP_ALERT points away from the target
    load: SafeString
    note: str


@dataclass
class SourceCard:
    report: SourceReport
    rows: list[ShareRow]
    scale: int  # the share, in %, that a full bar stands for
    warnings: list[str]


def source_card(report: SourceReport) -> SourceCard:
    """Bars for one source, scaled so its largest share fills the track (rounded up to 10%)."""
    shares = [row.target_share for row in report.operators]
    shares += [row.actual_share or 0.0 for row in report.operators]
    scale = max(10, math.ceil(max(shares, default=0.0) * 10) * 10)
    return SourceCard(
        report=report,
        rows=[_share_row(row, scale) for row in report.operators],
        scale=scale,
        warnings=_card_warnings(report),
    )


def _share_row(row: OperatorShare, scale: int) -> ShareRow:
    actual = row.actual_share
    gap = None if actual is None else 100 * (actual - row.target_share)
    return ShareRow(
        share=row,
        target_width=round(100 * 100 * row.target_share / scale, 1),
        actual_width=round(100 * 100 * (actual or 0.0) / scale, 1),
        target_text=f"{100 * row.target_share:.1f}%",
        actual_text="—" if actual is None else f"{100 * actual:.1f}%",
        # Rounded before formatting, so a tiny negative gap shows as +0.0, not -0.0.
        gap_text="—" if gap is None else f"{round(gap, 1) + 0.0:+.1f}",
        gap_off=gap is not None and abs(gap) > GAP_ALERT,
        load=load_bar(row.state),
        note=_share_note(row),
    )


def _share_note(row: OperatorShare) -> str:
    if not row.weight:
        return "no longer on this source"
    if not row.is_active:
        return "inactive"
    if is_at_limit(row.load, row.limit):
        return "at the limit"
    return ""


def _card_warnings(report: SourceReport) -> list[str]:
    operators = [
        row.state
        for row in report.operators
        if row.weight  # still configured on the source, not only in its history
    ]
    return source_warnings(is_active=report.is_active, operators=operators, units=report.load_units)


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
