from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils.translation import gettext as _
from rest_framework.authtoken.models import Token

from core.errors import Conflict
from distribution.demo import DEMO_OPERATORS, seed_demo
from distribution.logins import ensure_operator_login
from distribution.models import Operator, Source

DEMO_USERNAME = "demo"
DEMO_PASSWORD = "demo-password"
# The first demo operator's desk login.
DEMO_OPERATOR_USERNAME = "ivan"
DEMO_OPERATOR_PASSWORD = "ivan-password"
SITE = "http://127.0.0.1:8000"


class Command(BaseCommand):
    @property
    def help(self) -> str:
        return _(
            "Create a demo staff login and API token; on an empty database, demo operators "
            "(the first with a desk login), sources, two weeks of contact history and a few "
            "live contacts."
        )

    def handle(self, *args: object, **options: object) -> None:
        user = self._demo_user()
        token, _created = Token.objects.get_or_create(user=user)
        if not Operator.objects.exists() and not Source.objects.exists():
            with transaction.atomic():
                seed_demo()
            self.stdout.write(_("Demo operators, sources and contacts created."))
        # The labels are padded so the addresses line up; the logins stay as they are.
        admin = _("Admin:     %(url)s  login %(username)s / %(password)s") % {
            "url": f"{SITE}/admin/",
            "username": DEMO_USERNAME,
            "password": DEMO_PASSWORD,
        }
        board = _("Board:     %(url)s  (the same staff login)") % {"url": f"{SITE}/desk/board/"}
        self.stdout.write(f"{admin}\n{board}")
        operator = self._demo_operator()
        if operator is not None:
            self.stdout.write(
                _("Desk:      %(url)s   login %(username)s / %(password)s  (operator %(name)s)")
                % {
                    "url": f"{SITE}/desk/",
                    "username": DEMO_OPERATOR_USERNAME,
                    "password": DEMO_OPERATOR_PASSWORD,
                    "name": operator.name,
                }
            )
        request = (
            f"curl -H 'Authorization: Token {token.key}' "
            "-H 'Content-Type: application/json' "
            '-d \'{"source": "telegram-bot", "lead": {"phone": "+79161234567"}}\' '
            f"{SITE}/api/contacts/"
        )
        api_token = _("API token: %(token)s") % {"token": token.key}
        try_it = _("Try:       %(command)s") % {"command": request}
        self.stdout.write(f"{api_token}\n{try_it}")

    def _demo_operator(self) -> Operator | None:
        """The first demo operator, given its desk login if it has none; None when the
        demo's operator or its login has been changed since."""
        operator = Operator.objects.filter(name=DEMO_OPERATORS[0][0]).first()
        if operator is None:
            return None
        if operator.user_id is None:
            try:
                user = ensure_operator_login(operator=operator, username=DEMO_OPERATOR_USERNAME)
            except Conflict:
                return None
            user.set_password(DEMO_OPERATOR_PASSWORD)
            user.save()
            return operator
        return operator if operator.user.get_username() == DEMO_OPERATOR_USERNAME else None

    def _demo_user(self) -> AbstractBaseUser:
        user, created = get_user_model().objects.get_or_create(
            username=DEMO_USERNAME, defaults={"is_staff": True, "is_superuser": True}
        )
        if created:
            user.set_password(DEMO_PASSWORD)
            user.save()
        return user
