from django.core.management.base import BaseCommand, CommandError, CommandParser

from distribution.report_text import report_lines
from distribution.reports import distribution_report
from distribution.simulation import simulate_traffic


class Command(BaseCommand):
    help = (
        "Send N contacts through the real intake flow from C concurrent workers, optionally "
        "closing some as it goes; then print target against actual shares per source and "
        "check the invariants. Exits non-zero when an invariant fails."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--contacts", type=int, default=1000, help="How many to send.")
        parser.add_argument("--workers", type=int, default=8, help="Concurrent workers.")
        parser.add_argument(
            "--close-rate",
            type=float,
            default=0.0,
            help="After each contact, the chance (0-1) that the worker closes an open one.",
        )
        parser.add_argument(
            "--leads", type=int, default=1000, help="Distinct simulated leads (they repeat)."
        )
        parser.add_argument("--seed", type=int, default=None)

    def handle(self, *args: object, **options: object) -> None:
        if options["contacts"] < 1 or options["workers"] < 1 or options["leads"] < 1:
            raise CommandError("--contacts, --workers and --leads must be at least 1.")
        if not 0 <= options["close_rate"] <= 1:
            raise CommandError("--close-rate must be between 0 and 1.")
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
        self.stdout.write(
            f"Sent {result.sent} contacts in {result.seconds:.1f} s "
            f"({result.sent / result.seconds:.0f}/s), closed {result.closed}.\n"
        )
        report = distribution_report(since=result.started_at)
        self.stdout.write("\n".join(report_lines(report)))
        self.stdout.write(
            "Invariants: every contact stored once; no operator over its limit; open "
            "contacts only with active operators that serve their source."
        )
        if result.violations:
            for violation in result.violations:
                self.stdout.write(self.style.ERROR(f"  FAILED: {violation}"))
            raise CommandError(f"{len(result.violations)} invariant violation(s).")
        self.stdout.write(self.style.SUCCESS("  all hold"))

    def _progress(self, sent: int, total: int, seconds: float) -> None:
        if sent % max(1, total // 10) == 0 or sent == total:
            self.stdout.write(f"  sent {sent:>7} / {total}  {seconds:6.1f} s")
