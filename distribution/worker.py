"""The background worker (`manage.py run_worker`): the passes that time, not a request,
makes due, run in one long-lived loop over the database.

A plain loop, in the spirit of healthchecks' `sendalerts`, rather than a task queue: the
work is not a list of jobs someone enqueued but a state to look at ("does an operator
whose shift started have room for a waiting contact?", "which offers are past their
deadline?"). Every pass is safe to run from several workers at once on PostgreSQL: the
drains lock the operator and skip waiting rows another drain holds, the expiry skips
offers another transaction holds, the presence pass checks again under the operator's
lock, the webhook passes lock events with SKIP LOCKED and lease endpoints
(events/webhooks.py), the purge is one conditional DELETE. On SQLite run one copy. Time is the
database's clock (queries.database_now), as offers' deadlines are.
"""

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, close_old_connections, transaction

from core.health import WORKER, beat
from distribution import eligibility, queries
from distribution.contacts import purge_idempotency_keys
from distribution.engine import (
    drain_waiting_for_operator,
    end_owner_waits,
    lock_operators,
    overflow_waiting,
)
from distribution.loads import check_loads
from distribution.models import Contact, Operator, OperatorSourceWeight, StatusReason
from distribution.offers import expire_offers
from distribution.operators import set_operator_status
from events.webhooks import deliver_webhooks, dispatch_events

logger = logging.getLogger("crm.worker")

# The heartbeat is written at least this often, so /health/?worker=1 (stale after a
# minute) stays green through quiet passes without a write every tick.
BEAT_EVERY = timedelta(seconds=10)


@dataclass(frozen=True)
class Pass:
    name: str
    every: timedelta
    run: Callable[[datetime], int]  # the moment of the pass -> how many things it did


def drain_where_time_freed_room(now: datetime) -> int:
    """Waiting contacts to operators who can take them now because time freed them: a
    shift that started, a day off that ended, a burst window that moved on. (Every other
    way capacity appears drains in the transaction that made it.) One transaction per
    operator, under its lock."""
    waiting_sources = Contact.objects.filter(status=Contact.Status.WAITING).values("source_id")
    operator_ids = set(
        OperatorSourceWeight.objects.filter(
            source_id__in=waiting_sources,
            operator__is_active=True,
            operator__status=Operator.Status.AVAILABLE,
        ).values_list("operator_id", flat=True)
    )
    if not operator_ids:
        return 0
    assigned = 0
    for state in queries.operator_states(
        source_id=None, operator_ids=sorted(operator_ids), now=now
    ):
        if eligibility.room(state) > 0:
            with transaction.atomic():
                assigned += drain_waiting_for_operator(
                    operator_id=state.operator_id, trigger="time_freed_room", now=now
                )
    return assigned


def set_away_without_heartbeat(now: datetime) -> int:
    """Operators signed in to the desk whose desk stopped answering for
    PRESENCE_TIMEOUT are set away (their offers go to others). Operators who never
    opened the desk have no heartbeat and are left alone. One transaction each; the
    condition is checked again under the operator's lock, so two workers set it once."""
    cutoff = now - settings.PRESENCE_TIMEOUT
    silent = Operator.objects.filter(
        user__isnull=False, status=Operator.Status.AVAILABLE, seen_at__lt=cutoff
    )
    set_away = 0
    for operator_id in list(silent.values_list("id", flat=True)):
        with transaction.atomic():
            lock_operators(operator_ids=[operator_id])
            if silent.filter(pk=operator_id).exists():
                set_operator_status(
                    operator=Operator(pk=operator_id),
                    status=Operator.Status.AWAY,
                    now=now,
                    reason=StatusReason.NO_HEARTBEAT,
                )
                set_away += 1
    return set_away


def purge_expired_keys(now: datetime) -> int:
    return purge_idempotency_keys()


def repair_loads(now: datetime) -> int:
    """loads.check_loads: how many operators' stored loads had drifted (each logged)."""
    return len(check_loads())


PASSES = [
    Pass("expire_offers", timedelta(seconds=1), expire_offers),
    Pass("end_owner_waits", timedelta(seconds=1), end_owner_waits),
    Pass("overflow_waiting", timedelta(seconds=5), overflow_waiting),
    Pass("drain_where_time_freed_room", timedelta(seconds=5), drain_where_time_freed_room),
    Pass("set_away_without_heartbeat", timedelta(seconds=10), set_away_without_heartbeat),
    Pass("dispatch_events", timedelta(seconds=1), dispatch_events),
    Pass("deliver_webhooks", timedelta(seconds=1), deliver_webhooks),
    Pass("purge_idempotency_keys", timedelta(minutes=10), purge_expired_keys),
    Pass("check_loads", timedelta(hours=1), repair_loads),
]


class Worker:
    """Runs each pass when it is due; `stop()` (from a signal handler) ends the loop
    after the pass in hand."""

    def __init__(
        self, passes: list[Pass] = PASSES, clock: Callable[[], datetime] = queries.database_now
    ) -> None:
        self.passes = passes
        self.clock = clock
        self.next_run: dict[str, datetime] = {}
        self.last_beat: datetime | None = None
        self.stopping = False

    def stop(self, *args: object) -> None:
        self.stopping = True

    def run(self, tick_seconds: float = 1.0) -> None:
        log("started", passes=[p.name for p in self.passes])
        while not self.stopping:
            # A connection past its age or broken by an outage is replaced, as after a request.
            close_old_connections()
            self.run_due()
            # Sleep in short steps so a stop request is heard within a fraction of a second.
            until = time.monotonic() + tick_seconds
            while not self.stopping and time.monotonic() < until:
                time.sleep(min(0.1, tick_seconds))
        log("stopped")

    def run_due(self) -> None:
        """One tick: every pass that is due, then the heartbeat. A database error ends the
        tick (logged) and the next tick tries again: the worker outlives an outage."""
        try:
            for due in self._due(self.clock()):
                self._run(due)
                if self.stopping:
                    return
            now = self.clock()
            if self.last_beat is None or now - self.last_beat >= BEAT_EVERY:
                beat(WORKER, now)
                self.last_beat = now
        except DatabaseError as error:
            log("database_error", error=str(error).strip().splitlines()[0])

    def _due(self, now: datetime) -> list[Pass]:
        return [p for p in self.passes if self.next_run.get(p.name, now) <= now]

    def _run(self, due: Pass) -> None:
        now = self.clock()
        started = time.perf_counter()
        done = due.run(now)
        self.next_run[due.name] = now + due.every
        if done:
            log(due.name, done=done, ms=round((time.perf_counter() - started) * 1000, 1))


def log(action: str, **fields: object) -> None:
    """One JSON line per thing the worker did (or failed to do)."""
    logger.info(json.dumps({"worker": action, **fields}))
