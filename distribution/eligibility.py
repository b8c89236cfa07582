"""Who may take a contact now, who is chosen, and the record of why: pure, no database.

Every place that decides or explains an assignment reads these rules: the engine and
the waiting queue (engine.py), reassigning (contacts.py), the preview and the warnings
(preview.py), the reports, the admin and the API. The one rule with an SQL twin is
"at the limit": `OperatorQuerySet.at_limit` filters lists with it (a test holds the
two equal).
"""

import random
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from distribution.picking import ROUND_ROBIN, Candidate, pick_round_robin, pick_weighted_random

# Decisions not made by a source's strategy.
MANUAL = "manual"  # staff named the operator
WAITING_QUEUE = "waiting_queue"  # a waiting contact taken when capacity appeared


class Reason(StrEnum):
    """Why an operator is left out; stored in decisions, so values never change."""

    CURRENT_OPERATOR = "current_operator"
    INACTIVE = "inactive"
    NOT_ON_SOURCE = "not_on_source"
    AWAY = "away"
    OFFLINE = "offline"
    OFF_SHIFT = "off_shift"
    AT_LIMIT = "at_limit"
    MISSED_OFFER = "missed_offer"  # declined this contact or let its offer expire


AVAILABLE = "available"  # the one status that takes new contacts (Operator.Status)


@dataclass(frozen=True)
class OperatorState:
    """One operator as a decision sees it, on one source (or on none)."""

    operator_id: int
    name: str
    is_active: bool
    load: int  # open and offered contacts now
    limit: int  # the operator's max_open_contacts
    weight: int | None = None  # on the source; None: not on it
    round_robin_credit: int = 0
    status: str = AVAILABLE  # available, away or offline
    on_shift: bool = True  # at the moment the state was read (shifts.is_on_shift)


def state_of(operator: Any, *, load: int | None = None, weight: int | None = None) -> OperatorState:
    """An Operator row as the rules see it, shifts aside (lists do not read them). Its
    load is `load`, or the `load` it was annotated with (Operator.objects.with_load())."""
    return OperatorState(
        operator_id=operator.pk,
        name=operator.name,
        is_active=operator.is_active,
        load=operator.load if load is None else load,
        limit=operator.max_open_contacts,
        weight=weight,
        status=operator.status,
    )


def is_at_limit(load: int, limit: int) -> bool:
    return load >= limit


def percent_full(state: OperatorState) -> int:
    """How full the operator is, for load bars: 100 only at the limit (and with a limit of 0)."""
    if is_at_limit(state.load, state.limit):
        return 100
    return min(99, round(100 * state.load / state.limit))


def takes_work(state: OperatorState) -> bool:
    """On the team, available and on shift: whether new contacts may come at all."""
    return state.is_active and state.status == AVAILABLE and state.on_shift


def room(state: OperatorState) -> int:
    """How many more contacts the operator may take now, from any source it serves."""
    if not takes_work(state):
        return 0
    return max(0, state.limit - state.load)


def left_out_reason(
    state: OperatorState,
    *,
    exclude_operator_id: int | None = None,
    missed_by: Collection[int] = (),
) -> Reason | None:
    """Why the operator cannot take a contact of the source now, or None if it can.
    `missed_by`: the operators who declined this contact or let its offer expire."""
    if state.operator_id == exclude_operator_id:
        return Reason.CURRENT_OPERATOR
    if not state.is_active:
        return Reason.INACTIVE
    if state.weight is None:
        return Reason.NOT_ON_SOURCE
    if state.status != AVAILABLE:
        return Reason(state.status)  # away or offline
    if not state.on_shift:
        return Reason.OFF_SHIFT
    if is_at_limit(state.load, state.limit):
        return Reason.AT_LIMIT
    # Last, so it is said only of operators who could take the contact otherwise.
    if state.operator_id in missed_by:
        return Reason.MISSED_OFFER
    return None


def explain(reason: Reason, state: OperatorState, *, source_code: str) -> str:
    """The reason as staff read it, e.g. in a refused reassignment."""
    return {
        Reason.CURRENT_OPERATOR: f"The contact is already with {state.name}.",
        Reason.MISSED_OFFER: f"{state.name} declined this contact or let its offer expire.",
        Reason.INACTIVE: f"{state.name} is inactive.",
        Reason.NOT_ON_SOURCE: f"{state.name} does not serve the source {source_code}.",
        Reason.AWAY: f"{state.name} is away.",
        Reason.OFFLINE: f"{state.name} is offline.",
        Reason.OFF_SHIFT: f"{state.name} is off shift.",
        Reason.AT_LIMIT: f"{state.name} is at the limit ({state.load} / {state.limit} open).",
    }[reason]


@dataclass(frozen=True)
class CandidateReport:
    """One operator considered for a contact, and why it was left out (None: it was not)."""

    operator_id: int
    name: str
    load: int
    limit: int
    left_out: Reason | None
    weight: int | None = None  # None where the decision was not made on a source's weights

    @classmethod
    def of(cls, state: OperatorState, left_out: Reason | None) -> "CandidateReport":
        return cls(
            operator_id=state.operator_id,
            name=state.name,
            load=state.load,
            limit=state.limit,
            left_out=left_out,
            weight=state.weight,
        )

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"operator_id": self.operator_id, "name": self.name}
        if self.weight is not None:
            data["weight"] = self.weight
        data |= {"load": self.load, "limit": self.limit, "left_out": self.left_out}
        return data


@dataclass(frozen=True)
class Decision:
    """Why a contact went to whom (or to nobody): stored on the contact as JSON."""

    strategy: str  # the source's strategy, MANUAL or WAITING_QUEUE
    candidates: tuple[CandidateReport, ...] = ()
    chosen_operator_id: int | None = None
    trigger: str | None = None  # for WAITING_QUEUE: what freed the capacity

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"strategy": self.strategy}
        if self.trigger is not None:
            data["trigger"] = self.trigger
        data["candidates"] = [candidate.as_json() for candidate in self.candidates]
        data["chosen_operator_id"] = self.chosen_operator_id
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Decision":
        """A stored decision; rows written without one (seeded history) read as empty."""
        candidates = tuple(
            CandidateReport(
                operator_id=candidate.get("operator_id"),
                name=candidate.get("name", ""),
                load=candidate.get("load", 0),
                limit=candidate.get("limit", 0),
                left_out=Reason(candidate["left_out"]) if candidate.get("left_out") else None,
                weight=candidate.get("weight"),
            )
            for candidate in data.get("candidates", [])
        )
        return cls(
            strategy=data.get("strategy", ""),
            candidates=candidates,
            chosen_operator_id=data.get("chosen_operator_id"),
            trigger=data.get("trigger"),
        )

    def outcome(self, candidate: CandidateReport) -> str:
        """What happened to a candidate: chosen, its reason, or not picked."""
        if candidate.operator_id == self.chosen_operator_id:
            return "chosen"
        return candidate.left_out or "not picked"


def manual_decision(state: OperatorState) -> Decision:
    return Decision(strategy=MANUAL, chosen_operator_id=state.operator_id)


def waiting_queue_decision(state: OperatorState, *, trigger: str) -> Decision:
    """A waiting contact given to the one operator whose capacity appeared."""
    return Decision(
        strategy=WAITING_QUEUE,
        trigger=trigger,
        candidates=(CandidateReport.of(state, None),),
        chosen_operator_id=state.operator_id,
    )


@dataclass(frozen=True)
class Choice:
    decision: Decision
    chosen: OperatorState | None
    # Round robin: every eligible operator's new credit, for the caller to store.
    credits: dict[int, int] = field(default_factory=dict)


def choose(
    strategy: str,
    states: Sequence[OperatorState],
    *,
    rng: random.Random,
    exclude_operator_id: int | None = None,
    missed_by: Collection[int] = (),
) -> Choice:
    """Leave out who cannot take the contact, with the reason; pick among the rest."""
    reports = []
    eligible = []
    for state in states:
        reason = left_out_reason(
            state, exclude_operator_id=exclude_operator_id, missed_by=missed_by
        )
        reports.append(CandidateReport.of(state, reason))
        if reason is None:
            eligible.append(state)
    chosen, credits = pick(strategy, eligible, rng=rng)
    decision = Decision(
        strategy=strategy,
        candidates=tuple(reports),
        chosen_operator_id=chosen.operator_id if chosen else None,
    )
    return Choice(decision=decision, chosen=chosen, credits=credits)


def pick(
    strategy: str, eligible: Sequence[OperatorState], *, rng: random.Random
) -> tuple[OperatorState | None, dict[int, int]]:
    """One of the eligible operators (in id order) by the strategy, and for round robin
    everyone's new credit ({} for weighted random); (None, {}) when none is eligible."""
    if not eligible:
        return None, {}
    candidates = [
        Candidate(state.operator_id, state.weight or 0, state.round_robin_credit)
        for state in eligible
    ]
    if strategy == ROUND_ROBIN:
        chosen, credits = pick_round_robin(candidates)
    else:
        chosen, credits = pick_weighted_random(candidates, rng), {}
    return next(s for s in eligible if s.operator_id == chosen.operator_id), credits
