"""The report period, shared by the admin's distribution page and `distribution_report`."""

from datetime import date, datetime, time, timedelta

from django import forms
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

DEFAULT_DAYS = 7
PRESET_DAYS = {
    1: gettext_lazy("Last 24 hours"),
    7: gettext_lazy("Last 7 days"),
    30: gettext_lazy("Last 30 days"),
    0: gettext_lazy("All time"),
}


def report_bounds(
    *, days: int | None, since: date | None, until: date | None, now: datetime
) -> tuple[datetime | None, datetime | None]:
    """[since, until) in the current time zone: dates win over `days`; 0 days is all time.

    `until` is inclusive as a date (the whole day counts), so it becomes the next midnight.
    """
    if since is None and until is None:
        days = DEFAULT_DAYS if days is None else days
        return (now - timedelta(days=days) if days else None), None
    start = _midnight(since) if since else None
    end = _midnight(until + timedelta(days=1)) if until else None
    return start, end


def _midnight(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


class ReportPeriodForm(forms.Form):
    days = forms.IntegerField(required=False, min_value=0, widget=forms.HiddenInput)
    since = forms.DateField(
        required=False, label=gettext_lazy("Since"), widget=forms.DateInput(attrs={"type": "date"})
    )
    until = forms.DateField(
        required=False, label=gettext_lazy("Until"), widget=forms.DateInput(attrs={"type": "date"})
    )

    def clean(self) -> dict:
        cleaned = super().clean()
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until and since > until:
            raise forms.ValidationError(_("The period must start before it ends."))
        return cleaned

    def bounds(self, *, now: datetime) -> tuple[datetime | None, datetime | None]:
        """The chosen period; the default one when the form is unbound or invalid."""
        data = self.cleaned_data if self.is_bound and self.is_valid() else {}
        return report_bounds(
            days=data.get("days"), since=data.get("since"), until=data.get("until"), now=now
        )

    def label(self) -> str:
        """The period in words, for page titles and command output."""
        data = self.cleaned_data if self.is_bound and self.is_valid() else {}
        since, until = data.get("since"), data.get("until")
        if since and until:
            return _("%(since)s to %(until)s") % {"since": since, "until": until}
        if since:
            return _("%(since)s to now") % {"since": since}
        if until:
            return _("the beginning to %(until)s") % {"until": until}
        days = data.get("days")
        days = DEFAULT_DAYS if days is None else days
        if days in PRESET_DAYS:
            return str(PRESET_DAYS[days])
        return ngettext("Last %(count)d day", "Last %(count)d days", days) % {"count": days}
