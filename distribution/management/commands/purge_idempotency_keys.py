from django.core.management.base import BaseCommand

from distribution.contacts import purge_idempotency_keys


class Command(BaseCommand):
    help = "Delete intake idempotency keys older than IDEMPOTENCY_KEY_TTL_HOURS (for cron)."

    def handle(self, *args: object, **options: object) -> None:
        deleted = purge_idempotency_keys()
        self.stdout.write(f"{deleted} expired idempotency key(s) deleted.")
