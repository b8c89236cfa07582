"""The distribution report as plain text and JSON, for the management commands."""

import json
from collections.abc import Sequence
from datetime import datetime

from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import pgettext

from distribution.api.serializers import DistributionReportSerializer
from distribution.eligibility import is_at_limit
from distribution.reports import OperatorShare, SourceReport


def header() -> str:
    """The column titles of the operator rows, in the current language."""
    # Called outside the f-string: makemessages does not look inside one.
    titles = (
        pgettext("report column", "operator"),
        pgettext("report column", "weight"),
        pgettext("report column", "target"),
        pgettext("report column", "actual"),
        pgettext("report column", "assigned"),
        pgettext("report column", "returning"),
        pgettext("report column", "open/limit"),
    )
    widths = (-28, 6, 7, 7, 9, 9, 11)  # negative: left-aligned
    cells = [
        title.ljust(-width) if width < 0 else title.rjust(width)
        for title, width in zip(titles, widths, strict=True)
    ]
    return "  " + " ".join(cells)


def report_lines(report: Sequence[SourceReport]) -> list[str]:
    """One block per source: a title line, then a row per operator."""
    lines = []
    titles = header()
    for source in report:
        kind = (
            source.strategy
            if source.is_active
            else _("%(strategy)s, inactive") % {"strategy": source.strategy}
        )
        numbers = {
            "code": source.code,
            "kind": kind,
            "assigned": source.assigned,
            "returning": source.returning,
            "waiting": source.waiting,
        }
        if source.returning:
            title = _(
                "%(code)s (%(kind)s): %(assigned)d assigned (+%(returning)d to their lead's "
                "own operator), %(waiting)d waiting"
            )
        else:
            title = _("%(code)s (%(kind)s): %(assigned)d assigned, %(waiting)d waiting")
        lines.append(title % numbers)
        lines.append(titles)
        lines += [_operator_line(row, source) for row in source.operators]
        if not source.operators:
            lines.append("  " + _("(no operator)"))
        lines.append("")
    return lines


def _operator_line(row: OperatorShare, source: SourceReport) -> str:
    """Target is what its weight gave it over its time on the source, as on the page."""
    actual = "-" if row.actual_share is None else f"{100 * row.actual_share:.1f}%"
    flags = "" if row.is_active else "  " + pgettext("report operator", "inactive")
    if row.is_active and is_at_limit(row.load, row.limit):
        flags = "  " + pgettext("report operator", "at the limit")
    if row.joined_at is not None and row.share_base < source.assigned:
        joined = timezone.localtime(row.joined_at).strftime("%Y-%m-%d %H:%M")
        flags += "  " + _("joined %(time)s: shares of the %(count)d since") % {
            "time": joined,
            "count": row.share_base,
        }
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
