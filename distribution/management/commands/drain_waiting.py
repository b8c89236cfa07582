from django.core.management.base import BaseCommand

from distribution.engine import drain_waiting_queue


class Command(BaseCommand):
    help = "Assign every waiting contact that an operator can take now (for cron and recovery)."

    def handle(self, *args: object, **options: object) -> None:
        assigned = drain_waiting_queue()
        self.stdout.write(f"{assigned} waiting contact(s) assigned.")
