import signal

from django.core.management.base import BaseCommand, CommandParser
from django.utils.translation import gettext as _

from distribution.worker import Worker


class Command(BaseCommand):
    @property
    def help(self) -> str:
        return _(
            "The background worker: expires offers, drains waiting contacts when shifts "
            "start, sets away operators whose desk stopped answering, delivers webhooks, "
            "purges expired idempotency keys, and keeps the heartbeat /health/ reports. Runs "
            "until SIGTERM or SIGINT, finishing the pass in hand. Any number may run on "
            "PostgreSQL; one on SQLite."
        )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--once", action="store_true", help=_("Run every pass once and exit."))
        parser.add_argument(
            "--tick", type=float, default=1.0, help=_("Seconds between looks (default 1).")
        )

    def handle(self, *args: object, once: bool, tick: float, **options: object) -> None:
        worker = Worker()
        if once:
            worker.run_due()
            return
        signal.signal(signal.SIGTERM, worker.stop)
        signal.signal(signal.SIGINT, worker.stop)
        worker.run(tick_seconds=tick)
