"""Bulk demo and load-test data: operators, sources, weights, leads and contact history.

Operators and weights go through the services (there are tens or hundreds of them).
Leads and historical contacts are written with `bulk_create` in batches, one
transaction per batch, and keep every rule the engine keeps: an open contact has an
active operator who serves its source, and no operator ends up over its limit (its
existing open contacts count). The same `seed` gives the same data; times are laid
out backwards from the moment of the run.
"""

import bisect
import itertools
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import accumulate

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from distribution.models import Operator, OperatorSourceWeight, Source
from distribution.services import (
    create_operator,
    create_source,
    operator_load,
    set_source_weights,
)
from leads.identity import build_identity
from leads.models import Contact, Lead
from leads.services import register_contact

# (stage, done, total, seconds since the stage started)
Progress = Callable[[str, int, int, float], None]

FIRST_NAMES = ["Ivan", "Maria", "Oleg", "Anna", "Pavel", "Olga", "Sergey", "Elena", "Dmitry"]
LAST_NAMES = ["Petrov", "Sokolova", "Ivanov", "Smirnova", "Kuznetsov", "Popova", "Volkov"]
CHANNELS = ["telegram-bot", "whatsapp-bot", "vk-bot", "site-form", "phone-line", "email-desk"]
SEEDED_DECISION = {"strategy": "seeded"}
# Phones are +7916 and seven digits: valid Russian mobile numbers, unique per lead number.
PHONE_PREFIX = "+7916"
PHONE_NUMBERS = 10**7


@dataclass(frozen=True)
class SeedPlan:
    operators: int = 0
    sources: int = 0
    weights_per_source: int = 0
    leads: int = 0
    contacts: int = 0
    days: int = 30  # historical contacts are spread over this many days before now
    seed: int | None = None
    batch_size: int = 5000


@dataclass
class SeedResult:
    operators: list[Operator]
    sources: list[Source]
    leads: int
    contacts: int
    open_contacts: int


def reset_data() -> None:
    """Delete every contact, lead, weight, source and operator (users and tokens stay)."""
    with transaction.atomic():
        Contact.objects.all().delete()
        Lead.objects.all().delete()
        OperatorSourceWeight.objects.all().delete()
        Source.objects.all().delete()
        Operator.objects.all().delete()


def seed_data(*, plan: SeedPlan, progress: Progress | None = None) -> SeedResult:
    """Create what `plan` asks for, in order: operators, sources with weights, leads, history.

    New sources draw their operators from every operator in the database. Contacts go
    to every source that has an active operator, and to the new leads (or, when none
    are asked for, to the existing ones).
    """
    rng = random.Random(plan.seed)
    report = progress or _no_progress
    operators = create_operators(count=plan.operators, rng=rng)
    sources = create_sources(count=plan.sources, rng=rng)
    if plan.weights_per_source:
        assign_weights(sources=sources, per_source=plan.weights_per_source, rng=rng)
    lead_ids = create_leads(count=plan.leads, batch_size=plan.batch_size, progress=report)
    open_contacts = 0
    if plan.contacts:
        lead_ids = lead_ids or list(Lead.objects.order_by("id").values_list("id", flat=True))
        open_contacts = create_history(
            count=plan.contacts,
            lead_ids=lead_ids,
            days=plan.days,
            rng=rng,
            batch_size=plan.batch_size,
            progress=report,
        )
    return SeedResult(
        operators=operators,
        sources=sources,
        leads=plan.leads,
        contacts=plan.contacts,
        open_contacts=open_contacts,
    )


def create_operators(*, count: int, rng: random.Random) -> list[Operator]:
    """Operators with names and limits from `rng`; about one in ten inactive."""
    start = Operator.objects.count()
    return [
        create_operator(
            name=f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)} #{start + number + 1}",
            is_active=rng.random() >= 0.1,
            max_open_contacts=rng.randint(5, 50),
        )
        for number in range(count)
    ]


def create_sources(*, count: int, rng: random.Random) -> list[Source]:
    """Sources named after channels, with codes no existing source uses; one in four round robin."""
    taken = set(Source.objects.values_list("code", flat=True))
    codes = (f"{channel}-{number}" for number in itertools.count(1) for channel in CHANNELS)
    sources = []
    for code in (code for code in codes if code not in taken):
        if len(sources) == count:
            break
        strategy = (
            Source.Strategy.ROUND_ROBIN if rng.random() < 0.25 else Source.Strategy.WEIGHTED_RANDOM
        )
        name = code.replace("-", " ").capitalize()
        sources.append(create_source(code=code, name=name, strategy=strategy))
    return sources


def assign_weights(*, sources: Sequence[Source], per_source: int, rng: random.Random) -> None:
    """Give each source `per_source` operators drawn from all operators, weights 1 to 10."""
    operator_ids = list(Operator.objects.order_by("id").values_list("id", flat=True))
    if per_source > len(operator_ids):
        raise ValueError(
            f"{per_source} operators per source asked for, but there are {len(operator_ids)}."
        )
    for source in sources:
        chosen = rng.sample(operator_ids, per_source)
        set_source_weights(
            source=source, weights={operator_id: rng.randint(1, 10) for operator_id in chosen}
        )


def create_leads(*, count: int, batch_size: int, progress: Progress) -> list[int]:
    """`count` leads, numbered after the highest lead id so identifiers stay unique.

    Every lead has an external id; most also have a phone, about half an email.
    """
    first = (Lead.objects.aggregate(last=Max("id"))["last"] or 0) + 1
    ids: list[int] = []
    started = time.monotonic()
    for batch_start in range(0, count, batch_size):
        numbers = range(first + batch_start, first + min(count, batch_start + batch_size))
        with transaction.atomic():
            leads = Lead.objects.bulk_create([_lead(number) for number in numbers])
        ids.extend(lead.pk for lead in leads)
        progress("leads", len(ids), count, time.monotonic() - started)
    return ids


def _lead(number: int) -> Lead:
    phone = f"{PHONE_PREFIX}{number:07d}" if number % 5 and number < PHONE_NUMBERS else None
    email = f"lead{number}@example.com" if number % 2 else None
    return Lead(external_id=f"seed-{number}", phone=phone, email=email, name=f"Lead {number}")


@dataclass
class _SourcePool:
    """One source's active operators and cumulative weights, for drawing by weight."""

    source_id: int
    operator_ids: list[int]
    cumulative: list[int]


def create_history(
    *,
    count: int,
    lead_ids: Sequence[int],
    days: int,
    rng: random.Random,
    batch_size: int,
    progress: Progress,
) -> int:
    """`count` contacts spread evenly over the last `days` days, oldest first.

    1. Each contact goes to a source with an active operator and, on it, to an operator
       drawn by weight: actual shares then follow the targets.
    2. Most are closed. Among the newest, those whose operator still has room (half of
       its free places, so new traffic is not all waiting) stay open.
    3. Written `batch_size` at a time, one transaction each. Returns the open count.
    """
    if not lead_ids:
        raise ValueError("Historical contacts need leads: ask for some, or create them first.")
    pools = _source_pools()
    if not pools:
        raise ValueError("Historical contacts need a source with an active operator.")
    room = _free_room()
    open_quota = sum(room.values())
    now = timezone.now()
    step = timedelta(days=days) / count
    start = now - timedelta(days=days)
    opened = 0
    started = time.monotonic()
    for batch_start in range(0, count, batch_size):
        batch = []
        for number in range(batch_start, min(count, batch_start + batch_size)):
            created_at = start + step * (number + rng.random())
            contact = _historical_contact(rng, pools, lead_ids, created_at, now)
            may_stay_open = count - number <= open_quota
            if may_stay_open and room.get(contact.operator_id, 0) > 0:
                room[contact.operator_id] -= 1
                opened += 1
                contact.status = Contact.Status.OPEN
                contact.closed_at = None
            batch.append(contact)
        with transaction.atomic():
            Contact.objects.bulk_create(batch, batch_size=batch_size)
        progress("contacts", batch_start + len(batch), count, time.monotonic() - started)
    return opened


def _historical_contact(
    rng: random.Random,
    pools: Sequence[_SourcePool],
    lead_ids: Sequence[int],
    created_at: datetime,
    now: datetime,
) -> Contact:
    pool = pools[int(rng.random() * len(pools))]
    drawn = rng.random() * pool.cumulative[-1]
    operator_id = pool.operator_ids[bisect.bisect_right(pool.cumulative, drawn)]
    assigned_at = min(now, created_at + timedelta(seconds=1 + rng.random() * 120))
    closed_at = min(now, assigned_at + timedelta(seconds=60 + rng.random() * 14_400))
    return Contact(
        lead_id=lead_ids[int(rng.random() * len(lead_ids))],
        source_id=pool.source_id,
        operator_id=operator_id,
        status=Contact.Status.CLOSED,
        payload={},
        decision=SEEDED_DECISION,
        created_at=created_at,
        assigned_at=assigned_at,
        closed_at=closed_at,
    )


def _source_pools() -> list[_SourcePool]:
    rows = (
        OperatorSourceWeight.objects.filter(operator__is_active=True)
        .order_by("source_id", "operator_id")
        .values_list("source_id", "operator_id", "weight")
    )
    pools = []
    for source_id, group in itertools.groupby(rows, key=lambda row: row[0]):
        group = list(group)
        pools.append(
            _SourcePool(
                source_id=source_id,
                operator_ids=[operator_id for _, operator_id, _ in group],
                cumulative=list(accumulate(weight for _, _, weight in group)),
            )
        )
    return pools


def _free_room() -> dict[int, int]:
    """Half of each active operator's free places: how many seeded contacts may stay open."""
    operators = Operator.objects.filter(is_active=True).annotate(load=operator_load())
    return {
        operator.pk: max(0, operator.max_open_contacts - operator.load) // 2
        for operator in operators
    }


def _no_progress(stage: str, done: int, total: int, seconds: float) -> None:
    """Progress callback for callers that do not report progress."""


DEMO_SEED = 2024
DEMO_OPERATORS = [
    ("Ivan Petrov", 5),
    ("Maria Sokolova", 3),
    ("Oleg Ivanov", 2),
    ("Anna Smirnova", 4),
]
# code, name, strategy, {operator index: weight}
DEMO_SOURCES = [
    ("telegram-bot", "Telegram bot", Source.Strategy.WEIGHTED_RANDOM, {0: 3, 1: 1}),
    ("site-form", "Site form", Source.Strategy.ROUND_ROBIN, {1: 2, 2: 1, 3: 1}),
    ("whatsapp-bot", "WhatsApp bot", Source.Strategy.WEIGHTED_RANDOM, {0: 1, 3: 2}),
]
DEMO_LEADS = 300
DEMO_HISTORY = 3000


def seed_demo() -> None:
    """The demo's named operators and sources, two weeks of history, and a dozen live
    contacts through the real intake flow (some of which wait: the operators fill up)."""
    operators = [
        create_operator(name=name, max_open_contacts=limit) for name, limit in DEMO_OPERATORS
    ]
    sources = []
    for code, name, strategy, weights in DEMO_SOURCES:
        source = create_source(code=code, name=name, strategy=strategy)
        set_source_weights(
            source=source,
            weights={operators[index].pk: weight for index, weight in weights.items()},
        )
        sources.append(source)
    lead_ids = create_leads(count=DEMO_LEADS, batch_size=DEMO_LEADS, progress=_no_progress)
    create_history(
        count=DEMO_HISTORY,
        lead_ids=lead_ids,
        days=14,
        rng=random.Random(DEMO_SEED),
        batch_size=DEMO_HISTORY,
        progress=_no_progress,
    )
    for number in range(12):
        register_contact(
            source=sources[number % len(sources)],
            identity=build_identity(phone=f"+7926000{number:04d}", name=f"Demo lead {number}"),
            payload={"text": "Hello, I would like to know more."},
        )
