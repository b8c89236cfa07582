from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from django.utils.translation import gettext as _

from distribution.forms import DEFAULT_DAYS, ReportPeriodForm
from distribution.report_text import report_json, report_lines
from distribution.reports import distribution_report


class Command(BaseCommand):
    @property
    def help(self) -> str:
        return _(
            "Per source and operator: weight, target share, actual share of the contacts "
            "assigned in a period, open load against limit, waiting contacts. The numbers of "
            "the admin's distribution page."
        )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--days",
            type=int,
            default=None,
            help=_("The last N days (default %(days)s; 0 for all time).") % {"days": DEFAULT_DAYS},
        )
        parser.add_argument("--since", help=_("First day, YYYY-MM-DD (wins over --days)."))
        parser.add_argument("--until", help=_("Last day included, YYYY-MM-DD."))
        parser.add_argument("--json", action="store_true", help=_("JSON instead of a table."))

    def handle(self, *args: object, **options: object) -> None:
        period = {name: options[name] for name in ("days", "since", "until")}
        form = ReportPeriodForm(
            {name: value for name, value in period.items() if value is not None}
        )
        if not form.is_valid():
            errors = "; ".join(f"{field}: {' '.join(e)}" for field, e in form.errors.items())
            raise CommandError(errors)
        since, until = form.bounds(now=timezone.now())
        report = distribution_report(since=since, until=until)
        if options["json"]:
            self.stdout.write(report_json(report, since=since, until=until))
            return
        title = _("Distribution, %(period)s") % {"period": form.label().lower()}
        self.stdout.write(f"{title}\n")
        self.stdout.write("\n".join(report_lines(report)))
