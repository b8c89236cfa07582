from django.core.management.base import BaseCommand
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from distribution.loads import check_loads


class Command(BaseCommand):
    @property
    def help(self) -> str:
        return _(
            "Compare each operator's stored load with its open and offered contacts, repair "
            "any difference and report it (the worker runs this hourly)."
        )

    def handle(self, *args: object, **options: object) -> None:
        drifts = check_loads()
        for drift in drifts:
            self.stdout.write(
                _("%(name)s (#%(id)s): stored %(stored)s, contacts %(counted)s; repaired.")
                % {
                    "name": drift.name,
                    "id": drift.operator_id,
                    "stored": drift.stored,
                    "counted": drift.counted,
                }
            )
        if drifts:
            self.stdout.write(
                ngettext(
                    "%(count)d operator load(s) repaired.",
                    "%(count)d operator load(s) repaired.",
                    len(drifts),
                )
                % {"count": len(drifts)}
            )
        else:
            self.stdout.write(_("Every operator's stored load matches its contacts."))
