"""Traffic simulation: contacts through the real intake flow from concurrent workers.

Each worker is a thread with its own database connection, as gunicorn workers would
have. They send contacts with `distribution.contacts.register_contact`, optionally close open
ones with `close_contact`, and afterwards the database is checked for the engine's
invariants.
"""

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from itertools import count as counter

from django.db import connections
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from core.errors import Conflict
from distribution.contacts import close_contact, register_contact
from distribution.eligibility import state_of
from distribution.models import Contact, Operator, OperatorSourceWeight, Source
from leads.identity import build_identity

# SQLite takes at most 32766 parameters in one statement.
ID_CHUNK = 10_000
# (contacts sent so far, contacts to send, seconds since the start)
Progress = Callable[[int, int, float], None]


@dataclass
class SimulationResult:
    started_at: datetime
    sent: int
    contact_ids: list[int]
    closed: int
    seconds: float
    errors: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)


@dataclass
class _Run:
    """What the workers share; the lock guards the lists and the counter."""

    total: int
    sources: list[Source]
    close_rate: float
    leads: int
    seed: int | None
    progress: Progress
    started: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock)
    numbers: counter = field(default_factory=counter)
    contact_ids: list[int] = field(default_factory=list)
    open_ids: list[int] = field(default_factory=list)
    closed: int = 0
    # (contact number, the exception as text): made readable by the calling thread,
    # which has the command's language.
    failures: list[tuple[int, str]] = field(default_factory=list)

    def next_number(self) -> int | None:
        with self.lock:
            number = next(self.numbers)
        return number if number < self.total else None


def simulate_traffic(
    *,
    contacts: int,
    workers: int,
    close_rate: float = 0.0,
    leads: int = 1000,
    seed: int | None = None,
    progress: Progress | None = None,
) -> SimulationResult:
    """Send `contacts` contacts from `workers` threads to the active sources, then check.

    1. Each contact names one of `leads` simulated leads, so leads repeat.
    2. After each contact, with probability `close_rate`, a worker closes one of the
       run's open contacts (freeing load, so the waiting queue drains).
    3. Invariants are then read back from the database (`check_invariants`).
    """
    sources = list(Source.objects.filter(is_active=True, weights__isnull=False).distinct())
    if not sources:
        raise ValueError(_("No active source with operators: seed some first."))
    run = _Run(
        total=contacts,
        sources=sources,
        close_rate=close_rate,
        leads=leads,
        seed=seed,
        progress=progress or (lambda sent, total, seconds: None),
    )
    started_at = timezone.now()
    threads = [threading.Thread(target=_worker, args=(run, index)) for index in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result = SimulationResult(
        started_at=started_at,
        sent=contacts,
        contact_ids=run.contact_ids,
        closed=run.closed,
        seconds=time.monotonic() - run.started,
        errors=[
            _("contact %(number)d: %(error)s") % {"number": number, "error": error}
            for number, error in run.failures
        ],
    )
    result.violations = check_invariants(result)
    return result


def _worker(run: _Run, index: int) -> None:
    rng = random.Random(None if run.seed is None else run.seed * 1000 + index)
    try:
        while (number := run.next_number()) is not None:
            _send_one(run, rng, number)
            if run.close_rate and rng.random() < run.close_rate:
                _close_one(run, rng)
    finally:
        # The thread's connection would otherwise stay open until the process ends.
        connections.close_all()


def _send_one(run: _Run, rng: random.Random, number: int) -> None:
    source = rng.choice(run.sources)
    identity = build_identity(external_id=f"sim-{rng.randrange(run.leads)}")
    try:
        contact = register_contact(
            source=source, identity=identity, payload={"simulated": True, "number": number}
        )
    except Exception as exc:  # Reported as a failed invariant: every contact must be stored.
        with run.lock:
            run.failures.append((number, f"{type(exc).__name__}: {exc}"))
        return
    with run.lock:
        run.contact_ids.append(contact.pk)
        if contact.status == Contact.Status.OPEN:
            run.open_ids.append(contact.pk)
        sent = len(run.contact_ids) + len(run.failures)
    if sent % 100 == 0 or sent == run.total:
        run.progress(sent, run.total, time.monotonic() - run.started)


def _close_one(run: _Run, rng: random.Random) -> None:
    with run.lock:
        if not run.open_ids:
            return
        contact_id = run.open_ids.pop(rng.randrange(len(run.open_ids)))
    try:
        close_contact(contact=Contact.objects.get(pk=contact_id))
    except Conflict:
        return  # closed already: only this run closes its contacts, so this is rare
    with run.lock:
        run.closed += 1


def check_invariants(result: SimulationResult) -> list[str]:
    """What is wrong in the database after a run; an empty list when all holds.

    1. Every contact sent was stored exactly once (no request failed).
    2. No operator holds more open contacts than its limit.
    3. Every open contact of the run is with an active operator that serves its source.
    """
    violations = [_("not stored: %(error)s") % {"error": error} for error in result.errors]
    stored = sum(Contact.objects.filter(pk__in=ids).count() for ids in _chunks(result))
    if stored != len(result.contact_ids) or stored + len(result.errors) != result.sent:
        violations.append(
            _("%(sent)d contacts sent but %(stored)d stored.")
            % {"sent": result.sent, "stored": stored}
        )
    over_limit = map(state_of, Operator.objects.with_load().over_limit().order_by("id"))
    violations += [
        _("%(name)s holds %(load)d open contacts, over its limit of %(limit)d.")
        % {"name": operator.name, "load": operator.load, "limit": operator.limit}
        for operator in over_limit
    ]
    serves_source = OperatorSourceWeight.objects.filter(
        operator_id=OuterRef("operator_id"), source_id=OuterRef("source_id")
    )
    misplaced = sum(
        Contact.objects.filter(pk__in=ids, status=Contact.Status.OPEN)
        .filter(Q(operator__is_active=False) | ~Exists(serves_source))
        .count()
        for ids in _chunks(result)
    )
    if misplaced:
        violations.append(
            _(
                "%(count)d open contacts are with an operator that is inactive or does not "
                "serve their source."
            )
            % {"count": misplaced}
        )
    return violations


def _chunks(result: SimulationResult) -> list[list[int]]:
    """The run's contact ids in slices that fit in one query on every database."""
    ids = result.contact_ids
    return [ids[start : start + ID_CHUNK] for start in range(0, len(ids), ID_CHUNK)]
