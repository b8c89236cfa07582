from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from distribution.report_text import report_lines
from distribution.reports import distribution_report
from distribution.simulation import simulate_traffic


class Command(BaseCommand):
    @property
    def help(self) -> str:
        return _(
            "Send N contacts through the real intake flow from C concurrent workers, "
            "optionally closing some as it goes; then print target against actual shares per "
            "source and check the invariants. Exits non-zero when an invariant fails."
        )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--contacts", type=int, default=1000, help=_("How many to send."))
        parser.add_argument("--workers", type=int, default=8, help=_("Concurrent workers."))
        parser.add_argument(
            "--close-rate",
            type=float,
            default=0.0,
            help=_("After each contact, the chance (0-1) that the worker closes an open one."),
        )
        parser.add_argument(
            "--leads",
            type=int,
            default=1000,
            help=_("Distinct simulated leads (they repeat)."),
        )
        parser.add_argument("--seed", type=int, default=None, help=_("Seed for repeatable data."))

    def handle(self, *args: object, **options: object) -> None:
        if options["contacts"] < 1 or options["workers"] < 1 or options["leads"] < 1:
            raise CommandError(_("--contacts, --workers and --leads must be at least 1."))
        if not 0 <= options["close_rate"] <= 1:
            raise CommandError(_("--close-rate must be between 0 and 1."))
        # Progress is printed from the workers' threads, which have no language of their own.
        self.language = translation.get_language()
        try:
            result = simulate_traffic(
                contacts=options["contacts"],
                workers=options["workers"],
                close_rate=options["close_rate"],
                leads=options["leads"],
                seed=options["seed"],
                progress=self._progress,
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        sent = _("Sent %(sent)d contacts in %(seconds).1f s (%(rate).0f/s), closed %(closed)d.") % {
            "sent": result.sent,
            "seconds": result.seconds,
            "rate": result.sent / result.seconds,
            "closed": result.closed,
        }
        self.stdout.write(f"{sent}\n")
        report = distribution_report(since=result.started_at)
        self.stdout.write("\n".join(report_lines(report)))
        self.stdout.write(
            _(
                "Invariants: every contact stored once; no operator over its limit; open "
                "contacts only with active operators that serve their source."
            )
        )
        if result.violations:
            for violation in result.violations:
                failed = _("FAILED: %(violation)s") % {"violation": violation}
                self.stdout.write(self.style.ERROR(f"  {failed}"))
            count = len(result.violations)
            raise CommandError(
                ngettext(
                    "%(count)d invariant violation(s).", "%(count)d invariant violation(s).", count
                )
                % {"count": count}
            )
        self.stdout.write(self.style.SUCCESS("  " + _("all hold")))

    def _progress(self, sent: int, total: int, seconds: float) -> None:
        if sent % max(1, total // 10) == 0 or sent == total:
            with translation.override(self.language):
                line = _("sent %(sent)7d / %(total)d  %(seconds)6.1f s") % {
                    "sent": sent,
                    "total": total,
                    "seconds": seconds,
                }
            self.stdout.write(f"  {line}")
