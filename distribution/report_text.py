"""The distribution report as plain text and JSON, for the management commands."""

import json
from collections.abc import Sequence
from datetime import datetime

from django.utils import timezone

from distribution.api.serializers import DistributionReportSerializer
from distribution.eligibility import is_at_limit
from distribution.reports import OperatorShare, SourceReport

HEADER = (
    f"  {'operator':<28} {'weight':>6} {'target':>7} {'actual':>7} {'assigned':>9} "
    f"{'returning':>9} {'open/limit':>11}"
)


def report_lines(report: Sequence[SourceReport]) -> list[str]:
    """One block per source: a title line, then a row per operator."""
    lines = []
    for source in report:
        state = "" if source.is_active else ", inactive"
        returning = (
            f" (+{source.returning} to their lead's own operator)" if source.returning else ""
        )
        lines.append(
            f"{source.code} ({source.strategy}{state}): "
            f"{source.assigned} assigned{returning}, {source.waiting} waiting"
        )
        lines.append(HEADER)
        lines += [_operator_line(row, source) for row in source.operators]
        if not source.operators:
            lines.append("  (no operator)")
        lines.append("")
    return lines


def _operator_line(row: OperatorShare, source: SourceReport) -> str:
    """Target is what its weight gave it over its time on the source, as on the page."""
    actual = "-" if row.actual_share is None else f"{100 * row.actual_share:.1f}%"
    flags = "" if row.is_active else "  inactive"
    if row.is_active and is_at_limit(row.load, row.limit):
        flags = "  at the limit"
    if row.joined_at is not None and row.share_base < source.assigned:
        joined = timezone.localtime(row.joined_at).strftime("%Y-%m-%d %H:%M")
        flags += f"  joined {joined}: shares of the {row.share_base} since"
    load = f"{row.load}/{row.limit}"
    return (
        f"  {row.name[:28]:<28} {row.weight:>6} {100 * row.expected_share:>6.1f}% {actual:>7} "
        f"{row.assigned:>9} {row.returning:>9} {load:>11}{flags}"
    )


def report_json(
    report: Sequence[SourceReport], *, since: datetime | None, until: datetime | None
) -> str:
    """The API's answer (`/api/stats/distribution/`) for the same period."""
    data = DistributionReportSerializer({"since": since, "until": until, "sources": report}).data
    return json.dumps(data, indent=2)
