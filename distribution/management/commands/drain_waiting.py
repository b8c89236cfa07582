from django.core.management.base import BaseCommand
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from distribution.engine import drain_waiting_queue


class Command(BaseCommand):
    @property
    def help(self) -> str:
        return _(
            "Assign every waiting contact that an operator can take now (for cron and recovery)."
        )

    def handle(self, *args: object, **options: object) -> None:
        assigned = drain_waiting_queue()
        self.stdout.write(
            ngettext(
                "%(count)d waiting contact(s) assigned.",
                "%(count)d waiting contact(s) assigned.",
                assigned,
            )
            % {"count": assigned}
        )
