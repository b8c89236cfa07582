from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.management.base import BaseCommand
from django.db import transaction
from rest_framework.authtoken.models import Token

from distribution.demo import seed_demo
from distribution.models import Operator, Source

DEMO_USERNAME = "demo"
DEMO_PASSWORD = "demo-password"


class Command(BaseCommand):
    help = (
        "Create a demo staff login and API token; on an empty database, demo operators, "
        "sources, two weeks of contact history and a few live contacts."
    )

    def handle(self, *args: object, **options: object) -> None:
        user = self._demo_user()
        token, _ = Token.objects.get_or_create(user=user)
        if not Operator.objects.exists() and not Source.objects.exists():
            with transaction.atomic():
                seed_demo()
            self.stdout.write("Demo operators, sources and contacts created.")
        self.stdout.write(
            f"Admin:     http://127.0.0.1:8000/admin/  login {DEMO_USERNAME} / {DEMO_PASSWORD}\n"
            f"API token: {token.key}\n"
            f"Try:       curl -H 'Authorization: Token {token.key}' "
            "-H 'Content-Type: application/json' "
            '-d \'{"source": "telegram-bot", "lead": {"phone": "+79161234567"}}\' '
            "http://127.0.0.1:8000/api/contacts/"
        )

    def _demo_user(self) -> AbstractBaseUser:
        user, created = get_user_model().objects.get_or_create(
            username=DEMO_USERNAME, defaults={"is_staff": True, "is_superuser": True}
        )
        if created:
            user.set_password(DEMO_PASSWORD)
            user.save()
        return user
