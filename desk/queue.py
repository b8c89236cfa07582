"""What the waiting-queue page shows: per source, the contacts waiting (oldest first),
why nobody took each (from its stored decision), and who could take one now. Reads only.
"""

from dataclasses import dataclass, replace
from datetime import datetime

from django.db.models import Count
from django.utils.translation import gettext as _

from distribution import eligibility, queries
from distribution.eligibility import CandidateReport, Decision, OperatorState, Reason
from distribution.models import Contact, Source

# The oldest waiting contacts shown per source; the count says how many more there are.
SHOWN_PER_SOURCE = 50


@dataclass(frozen=True)
class OperatorChoice:
    """An operator of the source, and why it cannot take a contact of it now (None: it can)."""

    state: OperatorState
    reason: Reason | None

    @property
    def short_reason(self) -> str:
        return "" if self.reason is None else str(eligibility.SHORT_REASONS[self.reason])


@dataclass(frozen=True)
class WaitingRow:
    contact: Contact  # with its lead and, where it waits for its lead's own operator, that one
    reasons: list[str]  # why nobody took it, as sentences
    units: int  # what it costs an operator, in load units, when it was decided


@dataclass(frozen=True)
class SourceQueue:
    source: Source
    waiting: int
    rows: list[WaitingRow]  # the oldest SHOWN_PER_SOURCE
    operators: list[OperatorChoice]  # those who can take one first, then by name

    @property
    def can_take(self) -> list[OperatorChoice]:
        return [choice for choice in self.operators if choice.reason is None]

    @property
    def cannot_take(self) -> list[OperatorChoice]:
        return [choice for choice in self.operators if choice.reason is not None]

    @property
    def not_shown(self) -> int:
        return self.waiting - len(self.rows)


@dataclass(frozen=True)
class Queue:
    sources: list[SourceQueue]

    @property
    def waiting(self) -> int:
        return sum(queue.waiting for queue in self.sources)


def read_queue(now: datetime) -> Queue:
    """Every active source (and any inactive one with contacts waiting), by priority,
    higher first, then code; the operators are read only for sources with a queue."""
    # The partial index contact_waiting_by_source: only waiting rows are read.
    counts = dict(
        Contact.objects.filter(status=Contact.Status.WAITING)
        .values_list("source_id")
        .annotate(waiting=Count("id"))
        .order_by()
    )
    sources = Source.objects.filter(is_active=True) | Source.objects.filter(pk__in=list(counts))
    return Queue(
        [
            _source_queue(source, counts[source.pk], now)
            if counts.get(source.pk)
            else SourceQueue(source, 0, [], [])
            for source in sources.order_by("-priority", "code")
        ]
    )


def _source_queue(source: Source, waiting: int, now: datetime) -> SourceQueue:
    contacts = (
        # The partial index contact_waiting_by_source, in its order.
        Contact.objects.filter(source=source, status=Contact.Status.WAITING)
        .select_related("lead", "waits_for")
        .order_by("created_at", "id")[:SHOWN_PER_SOURCE]
    )
    rows = []
    for contact in contacts:
        decision = Decision.from_json(contact.decision or {})
        rows.append(WaitingRow(contact, why_waiting(decision, source.code), decision.units))
    return SourceQueue(source, waiting, rows, operator_choices(source, now))


def operator_choices(source: Source, now: datetime) -> list[OperatorChoice]:
    """The source's operators as staff may name them for one of its waiting contacts."""
    choices = []
    for state in queries.operator_states(source_id=source.pk, operator_ids=None, now=now):
        # Staff's choice is not held to the burst limit (contacts._named_operator).
        state = replace(state, burst_limit=None)
        reason = eligibility.left_out_reason(state, units=source.load_units)
        choices.append(OperatorChoice(state, reason))
    return sorted(choices, key=lambda choice: (choice.reason is not None, choice.state.name))


def why_waiting(decision: Decision, source_code: str) -> list[str]:
    """Why nobody took a contact when it was last decided, from its stored decision: why
    the lead's own operator did not, then every candidate left out."""
    if not decision.strategy:
        return [_("No decision was recorded for it (loaded with the history).")]
    reasons = []
    owner = decision.owner
    if owner is not None and owner.left_out is not None:
        reasons.append(
            _("The lead's own operator: %(reason)s") % {"reason": _sentence(owner, source_code)}
        )
    for candidate in decision.candidates:
        if candidate.left_out is not None and candidate != owner:
            reasons.append(_sentence(candidate, source_code))
    if not decision.candidates:
        reasons.append(_("No operator served the source."))
    return reasons


def _sentence(candidate: CandidateReport, source_code: str) -> str:
    if candidate.left_out == Reason.BURST_LIMIT:
        # The decision does not keep how many it had been given.
        return _("%(name)s had taken the most new contacts allowed in its burst window.") % {
            "name": candidate.name
        }
    state = OperatorState(
        operator_id=candidate.operator_id,
        name=candidate.name,
        is_active=True,
        load=candidate.load,
        limit=candidate.limit,
    )
    return eligibility.explain(candidate.left_out, state, source_code=source_code)
