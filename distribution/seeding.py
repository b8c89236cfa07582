"""Bulk load-test data for `manage.py seed` (the demo's own is demo.py): operators,
sources, weights, leads and contact history.

Operators and weights go through the services (there are tens or hundreds of them).
Leads and historical contacts are written with `bulk_create` in batches, one
transaction per batch, and keep every rule the engine keeps: an open contact has an
active operator who serves its source, and no operator ends up over its limit (its
existing open contacts count). The same `seed` gives the same data; times are laid
out backwards from the moment of the run.
"""

import bisect
import itertools
import json
import random
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import accumulate

from django.core.management.color import no_style
from django.db import connection, transaction
from django.db.models import JSONField, Max, Model
from django.utils import timezone
from django.utils.translation import gettext

from distribution.eligibility import room, state_of
from distribution.models import Contact, Operator, OperatorSourceWeight, Source, counted_load
from distribution.operators import create_operator
from distribution.sources import create_source, set_source_weights
from leads.models import Lead

# (stage, done, total, seconds since the stage started)
Progress = Callable[[str, int, int, float], None]

FIRST_NAMES = ["Ivan", "Maria", "Oleg", "Anna", "Pavel", "Olga", "Sergey", "Elena", "Dmitry"]
LAST_NAMES = ["Petrov", "Sokolova", "Ivanov", "Smirnova", "Kuznetsov", "Popova", "Volkov"]
CHANNELS = ["telegram-bot", "whatsapp-bot", "vk-bot", "site-form", "phone-line", "email-desk"]
SEEDED_DECISION = json.dumps({"strategy": "seeded"})
# Phones are +7916 and seven digits: valid Russian mobile numbers, unique per lead number.
PHONE_PREFIX = "+7916"
PHONE_NUMBERS = 10**7


@dataclass(frozen=True)
class SeedPlan:
    operators: int = 0
    sources: int = 0
    weights_per_source: int | None = None  # None: DEFAULT_WEIGHTS_PER_SOURCE, at most all
    leads: int = 0
    contacts: int = 0
    days: int = 30  # historical contacts are spread over this many days before now
    seed: int | None = None
    batch_size: int = 20_000
    writers: int = 1  # threads writing batches (PostgreSQL only)


@dataclass
class SeedResult:
    operators: list[Operator]
    sources: list[Source]
    leads: int
    contacts: int
    open_contacts: int


def reset_data() -> None:
    """Delete every contact, lead, weight, source and operator (users and tokens stay).

    The way `manage.py flush` empties tables: TRUNCATE on PostgreSQL, where deleting a
    million contacts row by row takes longer than seeding them; rows that point at
    these tables (a source's API keys) go with them.
    """
    tables = [
        model._meta.db_table for model in (Contact, Lead, OperatorSourceWeight, Source, Operator)
    ]
    statements = connection.ops.sql_flush(no_style(), tables, allow_cascade=True)
    connection.ops.execute_sql_flush(statements)


def seed_data(*, plan: SeedPlan, progress: Progress | None = None) -> SeedResult:
    """Create what `plan` asks for, in order: operators, sources with weights, leads, history.

    New sources draw their operators from every operator in the database. Contacts go
    to every source that has an active operator, and to the new leads (or, when none
    are asked for, to the existing ones).
    """
    rng = random.Random(plan.seed)
    report = progress or no_progress
    operators = create_operators(count=plan.operators, rng=rng)
    sources = create_sources(count=plan.sources, rng=rng)
    per_source = plan.weights_per_source
    if per_source is None:
        per_source = min(DEFAULT_WEIGHTS_PER_SOURCE, Operator.objects.count())
    if per_source:
        assign_weights(sources=sources, per_source=per_source, rng=rng)
    lead_ids = create_leads(
        count=plan.leads, batch_size=plan.batch_size, writers=plan.writers, progress=report
    )
    open_contacts = 0
    if plan.contacts:
        lead_ids = lead_ids or list(Lead.objects.order_by("id").values_list("id", flat=True))
        open_contacts = create_history(
            count=plan.contacts,
            lead_ids=lead_ids,
            days=plan.days,
            rng=rng,
            batch_size=plan.batch_size,
            writers=plan.writers,
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


# Operators on each new source when the plan names no number: enough that a source
# survives an operator or two being away, few enough that weights still differ.
DEFAULT_WEIGHTS_PER_SOURCE = 5


def assign_weights(*, sources: Sequence[Source], per_source: int, rng: random.Random) -> None:
    """Give each source `per_source` operators drawn from all operators, weights 1 to 10."""
    operator_ids = list(Operator.objects.order_by("id").values_list("id", flat=True))
    if per_source > len(operator_ids):
        # `_` names the throwaway values in this module: gettext is called by its name.
        raise ValueError(
            gettext("%(asked)d operators per source asked for, but there are %(count)d.")
            % {"asked": per_source, "count": len(operator_ids)}
        )
    for source in sources:
        chosen = rng.sample(operator_ids, per_source)
        set_source_weights(
            source=source, weights={operator_id: rng.randint(1, 10) for operator_id in chosen}
        )


def bulk_insert(model: type[Model], fields: Sequence[str], rows: Sequence[tuple]) -> None:
    """Insert `rows` (values in `fields` order, JSON already as JSON text) into `model`.

    On PostgreSQL through COPY: `bulk_create` spends about 100 µs of Python per contact
    preparing its fields, which alone takes a million contacts past a minute on two
    cores; COPY formats a row in a few µs and lets the server parse while we generate.
    Elsewhere, `bulk_create`. The caller owns the transaction.
    """
    model_fields = [model._meta.get_field(name) for name in fields]
    if connection.vendor == "postgresql":
        quote = connection.ops.quote_name
        columns = ", ".join(quote(field.column) for field in model_fields)
        with connection.cursor() as cursor:
            statement = f"COPY {quote(model._meta.db_table)} ({columns}) FROM STDIN"
            with cursor.copy(statement) as copy:
                for row in rows:
                    copy.write_row(row)
        return
    objects = [
        model(
            **{
                field.attname: json.loads(value) if isinstance(field, JSONField) else value
                for field, value in zip(model_fields, row, strict=True)
            }
        )
        for row in rows
    ]
    model.objects.bulk_create(objects, batch_size=len(objects) or None)


class BatchWriter:
    """Writes batches of rows, one transaction each, from `writers` threads.

    With one writer (always off PostgreSQL or inside the caller's transaction) a batch
    is written at once, in the caller's connection. With more, each thread has its own
    connection, so the server checks one batch's foreign keys at commit while the
    next batch streams in and the caller generates a third; at most `writers`
    batches wait, so memory stays bounded. Progress is reported as batches commit.
    """

    def __init__(
        self,
        *,
        model: type[Model],
        fields: Sequence[str],
        total: int,
        writers: int,
        progress: Progress,
    ) -> None:
        self.model, self.fields, self.total, self.progress = model, fields, total, progress
        # Other threads cannot see rows the caller has not committed yet (its leads,
        # operators); SQLite takes one writer at a time anyway.
        parallel = connection.vendor == "postgresql" and not connection.in_atomic_block
        self.writers = writers if parallel else 1
        self.pool = ThreadPoolExecutor(self.writers) if self.writers > 1 else None
        self.pending: deque[Future[int]] = deque()
        self.done = 0
        self.started = time.monotonic()

    def write(self, rows: list[tuple]) -> None:
        if self.pool is None:
            self._committed(self._write(rows))
            return
        while len(self.pending) >= self.writers:
            self._committed(self.pending.popleft().result())
        self.pending.append(self.pool.submit(self._write_in_thread, rows))

    def close(self) -> None:
        """Wait for every batch; the first failed batch's error is raised here."""
        try:
            while self.pending:
                self._committed(self.pending.popleft().result())
        finally:
            if self.pool is not None:
                self.pool.shutdown(cancel_futures=True)

    def _write(self, rows: list[tuple]) -> int:
        with transaction.atomic():
            bulk_insert(self.model, self.fields, rows)
        return len(rows)

    def _write_in_thread(self, rows: list[tuple]) -> int:
        try:
            return self._write(rows)
        finally:
            connection.close()  # this thread's own connection

    def _committed(self, count: int) -> None:
        self.done += count
        stage = self.model._meta.verbose_name_plural
        self.progress(str(stage), self.done, self.total, time.monotonic() - self.started)


LEAD_FIELDS = ("external_id", "phone", "email", "name", "created_at")


def create_leads(*, count: int, batch_size: int, writers: int, progress: Progress) -> list[int]:
    """`count` leads, numbered after the highest lead id so identifiers stay unique.

    Every lead has an external id; most also have a phone, about half an email.
    Returns their ids (read back by id range: COPY returns none).
    """
    last = Lead.objects.aggregate(last=Max("id"))["last"] or 0
    now = timezone.now()
    writer = BatchWriter(
        model=Lead, fields=LEAD_FIELDS, total=count, writers=writers, progress=progress
    )
    try:
        for batch_start in range(last + 1, last + 1 + count, batch_size):
            numbers = range(batch_start, min(last + 1 + count, batch_start + batch_size))
            writer.write([_lead(number, now) for number in numbers])
    finally:
        writer.close()
    if not count:
        return []
    return list(Lead.objects.filter(id__gt=last).order_by("id").values_list("id", flat=True))


def _lead(number: int, now: datetime) -> tuple:
    phone = f"{PHONE_PREFIX}{number:07d}" if number % 5 and number < PHONE_NUMBERS else None
    email = f"lead{number}@example.com" if number % 2 else None
    return (f"seed-{number}", phone, email, f"Lead {number}", now)


@dataclass
class _SourcePool:
    """One source's active operators and cumulative weights, for drawing by weight."""

    source_id: int
    operator_ids: list[int]
    cumulative: list[int]


CONTACT_FIELDS = (
    "lead",
    "source",
    "operator",
    "status",
    "payload",
    "decision",
    "lead_conflicts",
    "created_at",
    "assigned_at",
    "closed_at",
    "load_units",
    "by_owner",
)


def create_history(
    *,
    count: int,
    lead_ids: Sequence[int],
    days: int,
    rng: random.Random,
    batch_size: int,
    writers: int,
    progress: Progress,
) -> int:
    """`count` contacts spread evenly over the last `days` days, oldest first.

    1. Each contact goes to a source with an active operator and, on it, to an operator
       drawn by weight: actual shares then follow the targets.
    2. Most are closed. Among the newest, those whose operator still has room (half of
       its free places, so new traffic is not all waiting) stay open.
    3. Written `batch_size` at a time, one transaction each, by `writers` threads.
       Returns how many stay open.
    """
    if not lead_ids:
        raise ValueError(
            gettext("Historical contacts need leads: ask for some, or create them first.")
        )
    pools = _source_pools()
    if not pools:
        raise ValueError(gettext("Historical contacts need a source with an active operator."))
    room = _free_room()
    open_quota = sum(room.values())
    now = timezone.now()
    step = timedelta(days=days) / count
    start = now - timedelta(days=days)
    opened = 0
    writer = BatchWriter(
        model=Contact, fields=CONTACT_FIELDS, total=count, writers=writers, progress=progress
    )
    units = dict(Source.objects.values_list("id", "load_units"))
    try:
        for batch_start in range(0, count, batch_size):
            batch = []
            for number in range(batch_start, min(count, batch_start + batch_size)):
                created_at = start + step * (number + rng.random())
                source_id, operator_id = _draw_operator(rng, pools)
                cost = units[source_id]
                stays_open = count - number <= open_quota and room.get(operator_id, 0) >= cost
                if stays_open:
                    room[operator_id] -= cost
                    opened += 1
                lead_id = lead_ids[int(rng.random() * len(lead_ids))]
                row = _contact_row(
                    rng, lead_id, source_id, operator_id, created_at, now, stays_open
                )
                batch.append((*row, cost, False))
            writer.write(batch)
    finally:
        writer.close()
    # The engine keeps stored loads as it assigns; rows written here are counted once.
    Operator.objects.update(open_load=counted_load("pk"))
    # The history says these operators were on their sources from its start: their
    # shares (the distribution report) are measured from when they joined.
    OperatorSourceWeight.objects.filter(
        source_id__in=[pool.source_id for pool in pools], since__gt=start
    ).update(since=start)
    return opened


def _draw_operator(rng: random.Random, pools: Sequence[_SourcePool]) -> tuple[int, int]:
    """A source with an active operator, then one of its operators by weight."""
    pool = pools[int(rng.random() * len(pools))]
    drawn = rng.random() * pool.cumulative[-1]
    return pool.source_id, pool.operator_ids[bisect.bisect_right(pool.cumulative, drawn)]


def _contact_row(
    rng: random.Random,
    lead_id: int,
    source_id: int,
    operator_id: int,
    created_at: datetime,
    now: datetime,
    stays_open: bool,
) -> tuple:
    """A contact in CONTACT_FIELDS order up to its units, assigned within two minutes of
    arriving."""
    assigned_at = min(now, created_at + timedelta(seconds=1 + rng.random() * 120))
    closed_at = min(now, assigned_at + timedelta(seconds=60 + rng.random() * 14_400))
    return (
        lead_id,
        source_id,
        operator_id,
        Contact.Status.OPEN.value if stays_open else Contact.Status.CLOSED.value,
        "{}",
        SEEDED_DECISION,
        "[]",
        created_at,
        assigned_at,
        None if stays_open else closed_at,
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
    operators = Operator.objects.filter(is_active=True).with_load()
    return {operator.pk: room(state_of(operator)) // 2 for operator in operators}


def no_progress(stage: str, done: int, total: int, seconds: float) -> None:
    """Progress callback for callers that do not report progress."""
