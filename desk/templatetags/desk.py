from datetime import datetime, timedelta

from django import template
from django.contrib.humanize.templatetags.humanize import NaturalTimeFormatter
from django.utils.timesince import timesince
from django.utils.translation import gettext as _

register = template.Library()

MINUTE = timedelta(minutes=1)


@register.filter
def age(moment: datetime | None, now: datetime) -> str:
    """How long since `moment`, in its largest unit only ("5 minutes"): what a glance needs."""
    if moment is None:
        return ""
    if now - moment < MINUTE:
        return _("under a minute")
    return timesince(moment, now, depth=1)


@register.filter
def ago(moment: datetime | None, now: datetime) -> str:
    """When, from now: "just now", "5 minutes ago"."""
    if moment is None:
        return ""
    if now - moment < MINUTE:
        return _("just now")
    # humanize's units for "... ago", which Russian declines ("1 минуту назад", not
    # "1 минута").
    since = timesince(moment, now, depth=1, time_strings=NaturalTimeFormatter.past_substrings)
    return _("%(age)s ago") % {"age": since}
