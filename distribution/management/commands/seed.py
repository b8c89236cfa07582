from django.core.management.base import BaseCommand, CommandError, CommandParser

from distribution.seeding import SeedPlan, reset_data, seed_data


class Command(BaseCommand):
    help = (
        "Bulk demo or load-test data: operators, sources, weights, leads and historical "
        "contacts (open and closed, written in batches). The same --seed gives the same data."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--operators", type=int, default=0)
        parser.add_argument("--sources", type=int, default=0)
        parser.add_argument(
            "--weights-per-source",
            type=int,
            default=None,
            help="Operators given a weight (1-10) on each new source, drawn from all operators "
            "(default: 5, at most the number of operators).",
        )
        parser.add_argument("--leads", type=int, default=0)
        parser.add_argument(
            "--contacts",
            type=int,
            default=0,
            help="Historical contacts over the last --days days, on sources with an active "
            "operator; the newest stay open while their operator has room.",
        )
        parser.add_argument("--days", type=int, default=30)
        parser.add_argument("--seed", type=int, default=None, help="Seed for repeatable data.")
        parser.add_argument("--batch-size", type=int, default=20_000)
        parser.add_argument(
            "--writers",
            type=int,
            default=2,
            help="Threads writing batches, each with its own connection (PostgreSQL only).",
        )
        parser.add_argument(
            "--reset",
            action="store_true",
            help="First delete every contact, lead, weight, source and operator.",
        )

    def handle(self, *args: object, **options: object) -> None:
        counts = ("operators", "sources", "weights_per_source", "leads", "contacts", "days")
        if any((options[name] or 0) < 0 for name in counts):
            raise CommandError("Counts must be zero or more.")
        if options["batch_size"] < 1 or options["writers"] < 1:
            raise CommandError("--batch-size and --writers must be at least one.")
        if options["reset"]:
            reset_data()
            self.stdout.write("Deleted every contact, lead, weight, source and operator.")
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
        self.stdout.write(
            self.style.SUCCESS(
                f"Created {len(result.operators)} operators, {len(result.sources)} sources, "
                f"{result.leads} leads and {result.contacts} contacts "
                f"({result.open_contacts} open)."
            )
        )

    def _progress(self, stage: str, done: int, total: int, seconds: float) -> None:
        rate = done / seconds if seconds else 0
        self.stdout.write(f"  {stage}: {done:>9} / {total}  {seconds:6.1f} s  {rate:8.0f}/s")
