from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from django.utils.timesince import timeuntil
from django.utils.translation import gettext as _

from core.errors import Conflict
from distribution.logins import ensure_operator_login, set_password_path
from distribution.models import Operator


class Command(BaseCommand):
    @property
    def help(self) -> str:
        return _(
            "Give an operator a desk login (not staff) and print a one-time link where the "
            "operator sets its password. For an operator that has a login, a fresh link."
        )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("operator", help=_("The operator's id or exact name."))
        parser.add_argument("--username", help=_("Default: made from the operator's name."))

    def handle(self, *args: object, operator: str, username: str | None, **options: object) -> None:
        found = self._operator(operator)
        try:
            user = ensure_operator_login(operator=found, username=username)
        except Conflict as refusal:
            raise CommandError(str(refusal)) from None
        now = timezone.now()
        valid_for = timeuntil(now + timedelta(seconds=settings.PASSWORD_RESET_TIMEOUT), now)
        lines = [
            _("%(name)s signs in to the desk as %(username)r.")
            % {"name": found.name, "username": user.get_username()},
            _("Set the password here (the link works once, for %(duration)s):")
            % {"duration": valid_for},
            f"{settings.SITE_URL}{set_password_path(user)}",
        ]
        self.stdout.write("\n".join(lines))

    def _operator(self, reference: str) -> Operator:
        matches = list(
            Operator.objects.filter(pk=int(reference))
            if reference.isdigit()
            else Operator.objects.filter(name=reference)[:2]
        )
        if not matches:
            raise CommandError(
                _("No operator has the id or name %(reference)r.") % {"reference": reference}
            )
        if len(matches) > 1:
            raise CommandError(
                _("Several operators are named %(name)r: give the id.") % {"name": reference}
            )
        return matches[0]
