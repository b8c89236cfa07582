"""The demo's data (`manage.py demo`, run by `make run`): named operators and sources,
two weeks of history, and live contacts through the real intake flow."""

import random

from distribution.contacts import register_contact
from distribution.models import Source
from distribution.operators import create_operator
from distribution.seeding import create_history, create_leads, no_progress
from distribution.sources import create_source, set_source_weights
from leads.identity import build_identity

DEMO_SEED = 2024
DEMO_OPERATORS = [
    ("Ivan Petrov", 5),
    ("Maria Sokolova", 3),
    ("Oleg Ivanov", 2),
    ("Anna Smirnova", 4),
]
# code, name, strategy, {operator index: weight}, other settings
DEMO_SOURCES = [
    ("telegram-bot", "Telegram bot", Source.Strategy.WEIGHTED_RANDOM, {0: 3, 1: 1}, {}),
    ("site-form", "Site form", Source.Strategy.ROUND_ROBIN, {1: 2, 2: 1, 3: 1}, {}),
    # Its contacts are offered: five minutes to accept on the desk.
    (
        "whatsapp-bot",
        "WhatsApp bot",
        Source.Strategy.WEIGHTED_RANDOM,
        {0: 1, 3: 2},
        {"accept_timeout_seconds": 300},
    ),
    # A call takes an operator three times what a chat does, and goes first.
    (
        "phone-line",
        "Phone line",
        Source.Strategy.WEIGHTED_RANDOM,
        {0: 1, 3: 1},
        {"load_units": 3, "priority": 10},
    ),
]
DEMO_LEADS = 300
DEMO_HISTORY = 3000


def seed_demo() -> None:
    """The demo's named operators and sources, two weeks of history, a dozen live
    contacts through the real intake flow (some of which wait: the operators fill up),
    and a late joiner on the Telegram bot who takes its waiting contacts."""
    operators = [
        create_operator(name=name, max_open_contacts=limit) for name, limit in DEMO_OPERATORS
    ]
    sources = []
    for code, name, strategy, weights, settings in DEMO_SOURCES:
        source = create_source(code=code, name=name, strategy=strategy, **settings)
        set_source_weights(
            source=source,
            weights={operators[index].pk: weight for index, weight in weights.items()},
        )
        sources.append(source)
    lead_ids = create_leads(
        count=DEMO_LEADS, batch_size=DEMO_LEADS, writers=1, progress=no_progress
    )
    create_history(
        count=DEMO_HISTORY,
        lead_ids=lead_ids,
        days=14,
        rng=random.Random(DEMO_SEED),
        batch_size=DEMO_HISTORY,
        writers=1,
        progress=no_progress,
    )
    for number in range(12):
        register_contact(
            source=sources[number % len(sources)],
            identity=build_identity(phone=f"+7926000{number:04d}", name=f"Demo lead {number}"),
            payload={"text": "Hello, I would like to know more."},
        )
    # A late joiner with room: adding him to the Telegram bot hands him its waiting
    # contacts at once, and leaves someone free for the first request a person sends.
    telegram = sources[0]
    joiner = create_operator(name="Pavel Volkov", max_open_contacts=20)
    weights = dict(telegram.weights.values_list("operator_id", "weight"))
    set_source_weights(source=telegram, weights={**weights, joiner.pk: 2})
