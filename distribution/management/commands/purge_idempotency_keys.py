from django.core.management.base import BaseCommand
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from distribution.contacts import purge_idempotency_keys


class Command(BaseCommand):
    @property
    def help(self) -> str:
        return _("Delete intake idempotency keys older than IDEMPOTENCY_KEY_TTL_HOURS (for cron).")

    def handle(self, *args: object, **options: object) -> None:
        deleted = purge_idempotency_keys()
        self.stdout.write(
            ngettext(
                "%(count)d expired idempotency key(s) deleted.",
                "%(count)d expired idempotency key(s) deleted.",
                deleted,
            )
            % {"count": deleted}
        )
