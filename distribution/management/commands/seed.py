from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.translation import gettext as _

from distribution.seeding import SeedPlan, reset_data, seed_data


class Command(BaseCommand):
    @property
    def help(self) -> str:
        return _(
            "Bulk demo or load-test data: operators, sources, weights, leads and historical "
            "contacts (open and closed, written in batches). The same --seed gives the same "
            "data."
        )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--operators", type=int, default=0, help=_("Operators to create."))
        parser.add_argument("--sources", type=int, default=0, help=_("Sources to create."))
        parser.add_argument(
            "--weights-per-source",
            type=int,
            default=None,
            help=_(
                "Operators given a weight (1-10) on each new source, drawn from all operators "
                "(default: 5, at most the number of operators)."
            ),
        )
        parser.add_argument("--leads", type=int, default=0, help=_("Leads to create."))
        parser.add_argument(
            "--contacts",
            type=int,
            default=0,
            help=_(
                "Historical contacts over the last --days days, on sources with an active "
                "operator; the newest stay open while their operator has room."
            ),
        )
        parser.add_argument("--days", type=int, default=30, help=_("Days of history (default 30)."))
        parser.add_argument("--seed", type=int, default=None, help=_("Seed for repeatable data."))
        parser.add_argument(
            "--batch-size",
            type=int,
            default=20_000,
            help=_("Rows written per transaction (default 20000)."),
        )
        parser.add_argument(
            "--writers",
            type=int,
            default=2,
            help=_("Threads writing batches, each with its own connection (PostgreSQL only)."),
        )
        parser.add_argument(
            "--reset",
            action="store_true",
            help=_("First delete every contact, lead, weight, source and operator."),
        )

    def handle(self, *args: object, **options: object) -> None:
        counts = ("operators", "sources", "weights_per_source", "leads", "contacts", "days")
        if any((options[name] or 0) < 0 for name in counts):
            raise CommandError(_("Counts must be zero or more."))
        if options["batch_size"] < 1 or options["writers"] < 1:
            raise CommandError(_("--batch-size and --writers must be at least one."))
        if options["reset"]:
            reset_data()
            self.stdout.write(_("Deleted every contact, lead, weight, source and operator."))
        plan = SeedPlan(
            operators=options["operators"],
            sources=options["sources"],
            weights_per_source=options["weights_per_source"],
            leads=options["leads"],
            contacts=options["contacts"],
            days=options["days"],
            seed=options["seed"],
            batch_size=options["batch_size"],
            writers=options["writers"],
        )
        try:
            result = seed_data(plan=plan, progress=self._progress)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        created = _(
            "Created %(operators)d operators, %(sources)d sources, %(leads)d leads and "
            "%(contacts)d contacts (%(open)d open)."
        ) % {
            "operators": len(result.operators),
            "sources": len(result.sources),
            "leads": result.leads,
            "contacts": result.contacts,
            "open": result.open_contacts,
        }
        self.stdout.write(self.style.SUCCESS(created))

    def _progress(self, stage: str, done: int, total: int, seconds: float) -> None:
        rate = done / seconds if seconds else 0
        line = _("%(stage)s: %(done)9d / %(total)d  %(seconds)6.1f s  %(rate)8.0f/s") % {
            "stage": stage,
            "done": done,
            "total": total,
            "seconds": seconds,
            "rate": rate,
        }
        self.stdout.write(f"  {line}")
