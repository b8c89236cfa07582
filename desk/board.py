"""What the supervisors' board shows: every operator's presence and load, every source's
waiting queue, and the latest assignments with their reasons. Reads only."""

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, Min, OuterRef, Q, Subquery
from django.utils.translation import gettext as _

from distribution import eligibility, queries
from distribution.eligibility import MANUAL, WAITING_QUEUE, Decision, OperatorState
from distribution.models import Contact, Operator, OperatorStatusChange, Source, StatusReason

RECENT_ASSIGNMENTS = 50

# Flagged contacts still unanswered, shown for supervisors (oldest first).
FLAGGED_SHOWN = 50


@dataclass(frozen=True)
class OperatorRow:
    operator: Operator  # annotated with `status_reason`: why the service set its status
    state: OperatorState
    oldest_open_at: datetime | None
    offered: int  # offers waiting for the operator's answer (part of the load)

    @property
    def load_percent(self) -> int:
        return eligibility.percent_full(self.state)

    @property
    def status_reason(self) -> str:
        """Why the service set the current status ("" when a person chose it)."""
        reason = self.operator.status_reason or ""
        return StatusReason(reason).label if reason in StatusReason.values else ""


@dataclass(frozen=True)
class SourceRow:
    source: Source
    waiting: int
    oldest_waiting_at: datetime | None


@dataclass(frozen=True)
class Board:
    operators: list[OperatorRow]
    sources: list[SourceRow]
    assignments: list[Contact]
    flagged: list[Contact]  # declined or let expire Source.max_offers times, not closed

    @property
    def waiting(self) -> int:
        return sum(row.waiting for row in self.sources)

    @property
    def presence(self) -> dict[str, int]:
        """How many operators on the team are available, away and offline."""
        counts = dict.fromkeys(Operator.Status.values, 0)
        for row in self.operators:
            if row.state.is_active:
                counts[row.state.status] += 1
        return counts


def read_board(now: datetime) -> Board:
    return Board(
        operators=_operator_rows(now),
        sources=_source_rows(),
        assignments=list(
            # The partial index contact_assigned_at, read backwards.
            Contact.objects.filter(operator__isnull=False, assigned_at__isnull=False)
            .select_related("lead", "source", "operator")
            .order_by("-assigned_at", "-id")[:RECENT_ASSIGNMENTS]
        ),
        flagged=list(
            Contact.objects.filter(flagged_at__isnull=False)
            .exclude(status=Contact.Status.CLOSED)
            .select_related("lead", "source", "operator")
            .order_by("flagged_at", "id")[:FLAGGED_SHOWN]
        ),
    )


def _operator_rows(now: datetime) -> list[OperatorRow]:
    last_change = OperatorStatusChange.objects.filter(operator=OuterRef("pk")).order_by(
        "-changed_at", "-id"
    )
    operators = list(
        Operator.objects.annotate(
            status_reason=Subquery(last_change.values("reason")[:1])
        ).order_by("-is_active", "name", "id")
    )
    states = {
        state.operator_id: state
        for state in queries.operator_states(
            source_id=None, operator_ids=[operator.pk for operator in operators], now=now
        )
    }
    held = {
        row["operator_id"]: row
        for row in Contact.objects.filter(status__in=Contact.LOAD_STATUSES)
        .values("operator_id")
        .annotate(
            oldest=Min("created_at", filter=Q(status=Contact.Status.OPEN)),
            offered=Count("id", filter=Q(status=Contact.Status.OFFERED)),
        )
    }
    return [
        OperatorRow(
            operator,
            states[operator.pk],
            held.get(operator.pk, {}).get("oldest"),
            held.get(operator.pk, {}).get("offered", 0),
        )
        for operator in operators
    ]


def _source_rows() -> list[SourceRow]:
    # The partial index contact_waiting_by_source: only waiting rows are read.
    queues = {
        row["source_id"]: row
        for row in Contact.objects.filter(status=Contact.Status.WAITING)
        .values("source_id")
        .annotate(waiting=Count("id"), oldest=Min("created_at"))
    }
    sources = Source.objects.filter(is_active=True) | Source.objects.filter(pk__in=list(queues))
    rows = [
        SourceRow(
            source,
            queues.get(source.pk, {}).get("waiting", 0),
            queues.get(source.pk, {}).get("oldest"),
        )
        for source in sources.order_by("code")
    ]
    # The longest queue first: that is where someone is needed.
    return sorted(rows, key=lambda row: -row.waiting)


def assignment_reason(contact: Contact) -> str:
    """Why the contact went to its operator, in a few words."""
    decision = Decision.from_json(contact.decision or {})
    if decision.strategy == MANUAL:
        return _("Chosen by staff")
    if decision.strategy == WAITING_QUEUE:
        trigger = eligibility.trigger_text(decision.trigger)
        return _("From the waiting queue: %(trigger)s") % {"trigger": trigger}
    if not decision.candidates:
        # Rows loaded in bulk (manage.py seed, the demo's history) carry no candidates.
        return _("Loaded with the history")
    eligible = sum(1 for candidate in decision.candidates if candidate.left_out is None)
    return _("%(strategy)s; %(eligible)d of %(candidates)d could take it") % {
        "strategy": decision.strategy_text,
        "eligible": eligible,
        "candidates": len(decision.candidates),
    }
