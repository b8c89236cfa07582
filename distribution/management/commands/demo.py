from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction
from rest_framework.authtoken.models import Token

from distribution.models import Operator, Source
from distribution.services import create_operator, set_source_weights
from leads.identity import build_identity
from leads.services import register_contact

DEMO_USERNAME = "demo"
DEMO_PASSWORD = "demo-password"

OPERATORS = [
    ("Ivan Petrov", 5),
    ("Maria Sokolova", 3),
    ("Oleg Ivanov", 2),
    ("Anna Smirnova", 4),
]
# code, name, strategy, {operator index: weight}
SOURCES = [
    ("telegram-bot", "Telegram bot", Source.Strategy.WEIGHTED_RANDOM, {0: 3, 1: 1}),
    ("site-form", "Site form", Source.Strategy.ROUND_ROBIN, {1: 2, 2: 1, 3: 1}),
    ("whatsapp-bot", "WhatsApp bot", Source.Strategy.WEIGHTED_RANDOM, {0: 1, 3: 2}),
]


class Command(BaseCommand):
    help = (
        "Create a demo staff login and API token; on an empty database, demo operators and sources."
    )

    def handle(self, *args: object, **options: object) -> None:
        user = self._demo_user()
        token, _ = Token.objects.get_or_create(user=user)
        if not Operator.objects.exists() and not Source.objects.exists():
            self._demo_data()
            self.stdout.write("Demo operators, sources and contacts created.")
        self.stdout.write(
            f"Admin:     http://127.0.0.1:8000/admin/  login {DEMO_USERNAME} / {DEMO_PASSWORD}\n"
            f"API token: {token.key}\n"
            f"Try:       curl -H 'Authorization: Token {token.key}' "
            "-H 'Content-Type: application/json' "
            '-d \'{"source": "telegram-bot", "lead": {"phone": "+79161234567"}}\' '
            "http://127.0.0.1:8000/api/contacts/"
        )

    def _demo_user(self):
        user, created = get_user_model().objects.get_or_create(
            username=DEMO_USERNAME, defaults={"is_staff": True, "is_superuser": True}
        )
        if created:
            user.set_password(DEMO_PASSWORD)
            user.save()
        return user

    @transaction.atomic
    def _demo_data(self) -> None:
        operators = [
            create_operator(name=name, max_open_contacts=limit) for name, limit in OPERATORS
        ]
        sources = []
        for code, name, strategy, weights in SOURCES:
            source = Source.objects.create(code=code, name=name, strategy=strategy)
            set_source_weights(
                source=source,
                weights={operators[index].pk: weight for index, weight in weights.items()},
            )
            sources.append(source)
        for number in range(12):
            register_contact(
                source=sources[number % len(sources)],
                identity=build_identity(phone=f"+7916000{number:04d}", name=f"Demo lead {number}"),
                payload={"text": "Hello, I would like to know more."},
            )
