from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from distribution.forms import DEFAULT_DAYS, ReportPeriodForm
from distribution.report_text import report_json, report_lines
from distribution.reports import distribution_report


class Command(BaseCommand):
    help = (
        "Per source and operator: weight, target share, actual share of the contacts "
        "assigned in a period, open load against limit, waiting contacts. The numbers of "
        "the admin's distribution page."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--days",
            type=int,
            default=None,
            help=f"The last N days (default {DEFAULT_DAYS}; 0 for all time).",
        )
        parser.add_argument("--since", help="First day, YYYY-MM-DD (wins over --days).")
        parser.add_argument("--until", help="Last day included, YYYY-MM-DD.")
        parser.add_argument("--json", action="store_true", help="JSON instead of a table.")

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
        self.stdout.write(f"Distribution, {form.label().lower()}\n")
        self.stdout.write("\n".join(report_lines(report)))
