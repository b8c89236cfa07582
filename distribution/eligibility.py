"""Who may take a contact now, who is chosen, and the record of why: pure, no database.

Every place that decides or explains an assignment reads these rules: the engine and
the waiting queue (engine.py), reassigning (contacts.py), the preview and the warnings
(preview.py), the reports, the admin and the API. The one rule with an SQL twin is
"at the limit": `OperatorQuerySet.at_limit` filters lists with it (a test holds the
two equal).
"""

import random
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from django.utils.translation import gettext_lazy

from distribution.picking import (
    ROUND_ROBIN,
    WEIGHTED_RANDOM,
    Candidate,
    pick_round_robin,
    pick_weighted_random,
)

# Decisions not made by a source's strategy.
MANUAL = "manual"  # staff named the operator
WAITING_QUEUE = "waiting_queue"  # a waiting contact taken when capacity appeared
STICKY = "sticky"  # the lead's own operator (Source.sticky)
OVERFLOW = "overflow"  # waited past Source.overflow_after_seconds: the overflow list

# Source.sticky's values.
STICKY_OFF, STICKY_PREFER, STICKY_REQUIRE = "off", "prefer", "require"


class Reason(StrEnum):
    """Why an operator is left out; stored in decisions, so values never change."""

    CURRENT_OPERATOR = "current_operator"
    INACTIVE = "inactive"
    NOT_ON_SOURCE = "not_on_source"
    AWAY = "away"
    OFFLINE = "offline"
    OFF_SHIFT = "off_shift"
    AT_LIMIT = "at_limit"
    BURST_LIMIT = "burst_limit"  # took its burst of new contacts for the window
    MISSED_OFFER = "missed_offer"  # declined this contact or let its offer expire


# What may pass while a contact waits for its lead's own operator (sticky 'require');
# for the other reasons it goes by the source's rule at once.
PASSING = {Reason.AWAY, Reason.OFFLINE, Reason.OFF_SHIFT, Reason.AT_LIMIT, Reason.BURST_LIMIT}


AVAILABLE = "available"  # the one status that takes new contacts (Operator.Status)


@dataclass(frozen=True)
class OperatorState:
    """One operator as a decision sees it, on one source (or on none)."""

    operator_id: int
    name: str
    is_active: bool
    load: int  # load units of its open and offered contacts now
    limit: int  # the operator's max_open_contacts, in load units
    weight: int | None = None  # on the source; None: not on it
    round_robin_credit: int = 0
    status: str = AVAILABLE  # available, away or offline
    on_shift: bool = True  # at the moment the state was read (shifts.is_on_shift)
    last_assigned_at: datetime | None = None  # round robin's ties: least recent first
    burst_limit: int | None = None  # new contacts per window; None: no burst limit
    given_in_window: int = 0  # new contacts given within its burst window


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
    """Full: no room for even a one-unit contact."""
    return load >= limit


def fits(state: OperatorState, units: int) -> bool:
    """Whether a contact costing `units` fits under the operator's limit."""
    return state.load + units <= state.limit


def is_at_burst_limit(state: OperatorState) -> bool:
    return state.burst_limit is not None and state.given_in_window >= state.burst_limit


def percent_full(state: OperatorState) -> int:
    """How full the operator is, for load bars: 100 only at the limit (and with a limit of 0)."""
    if is_at_limit(state.load, state.limit):
        return 100
    return min(99, round(100 * state.load / state.limit))


def takes_work(state: OperatorState) -> bool:
    """On the team, available and on shift: whether new contacts may come at all."""
    return state.is_active and state.status == AVAILABLE and state.on_shift


def room(state: OperatorState) -> int:
    """How many more load units the operator may take now, from any source it serves."""
    if not takes_work(state):
        return 0
    return max(0, state.limit - state.load)


def burst_room(state: OperatorState) -> int | None:
    """How many more contacts the operator may be given in its burst window (None: no
    burst limit)."""
    if state.burst_limit is None:
        return None
    return max(0, state.burst_limit - state.given_in_window)


def left_out_reason(
    state: OperatorState,
    *,
    exclude_operator_id: int | None = None,
    missed_by: Collection[int] = (),
    units: int = 1,
) -> Reason | None:
    """Why the operator cannot take a contact of the source (costing `units`) now, or
    None if it can. `missed_by`: the operators who declined this contact or let its
    offer expire."""
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
    if not fits(state, units):
        return Reason.AT_LIMIT
    if is_at_burst_limit(state):
        return Reason.BURST_LIMIT
    # Last, so it is said only of operators who could take the contact otherwise.
    if state.operator_id in missed_by:
        return Reason.MISSED_OFFER
    return None


# Why an operator cannot take a contact now, in a word or two beside its name.
SHORT_REASONS = {
    Reason.CURRENT_OPERATOR: gettext_lazy("has it now"),
    Reason.INACTIVE: gettext_lazy("off the team"),
    Reason.NOT_ON_SOURCE: gettext_lazy("not on this source"),
    Reason.AWAY: gettext_lazy("away"),
    Reason.OFFLINE: gettext_lazy("offline"),
    Reason.OFF_SHIFT: gettext_lazy("off shift"),
    Reason.AT_LIMIT: gettext_lazy("no room"),
    Reason.BURST_LIMIT: gettext_lazy("took its burst"),
    Reason.MISSED_OFFER: gettext_lazy("missed the offer"),
}


CHOSEN, NOT_PICKED = gettext_lazy("chosen"), gettext_lazy("not picked")
# A decision's strategy as staff read it: a source's own (Source.Strategy) or the engine's.
STRATEGIES = {
    WEIGHTED_RANDOM: gettext_lazy("Weighted random"),
    ROUND_ROBIN: gettext_lazy("Round robin (smooth, by weight)"),
    MANUAL: gettext_lazy("Chosen by staff"),
    WAITING_QUEUE: gettext_lazy("From the waiting queue"),
    STICKY: gettext_lazy("The lead's own operator"),
    OVERFLOW: gettext_lazy("Overflow"),
}
# What freed the capacity a waiting contact was given from (Decision.trigger).
TRIGGERS = {
    "contact_closed": gettext_lazy("a contact was closed"),
    "contact_reassigned": gettext_lazy("a contact was handed on"),
    "operator_available": gettext_lazy("the operator became available"),
    "operator_updated": gettext_lazy("the operator's limit or team membership changed"),
    "weights_changed": gettext_lazy("the source's weights changed"),
    "shifts_changed": gettext_lazy("the operator's shifts changed"),
    "time_freed_room": gettext_lazy("a shift started or a burst window moved on"),
    "offer_declined": gettext_lazy("the operator declined an offer"),
    "offer_expired": gettext_lazy("an offer to the operator expired"),
    "offer_withdrawn": gettext_lazy("an offer was withdrawn"),
}


def trigger_text(trigger: str | None) -> str:
    """What freed the room, in words; a code this version does not know, as it is."""
    return str(TRIGGERS.get(trigger or "", trigger or ""))


# explain()'s sentence for each reason.
EXPLANATIONS = {
    Reason.CURRENT_OPERATOR: gettext_lazy("The contact is already with %(name)s."),
    Reason.MISSED_OFFER: gettext_lazy("%(name)s declined this contact or let its offer expire."),
    Reason.INACTIVE: gettext_lazy("%(name)s is inactive."),
    Reason.NOT_ON_SOURCE: gettext_lazy("%(name)s does not serve the source %(source)s."),
    Reason.AWAY: gettext_lazy("%(name)s is away."),
    Reason.OFFLINE: gettext_lazy("%(name)s is offline."),
    Reason.OFF_SHIFT: gettext_lazy("%(name)s is off shift."),
    Reason.AT_LIMIT: gettext_lazy("%(name)s is at the limit (%(load)s / %(limit)s open)."),
    Reason.BURST_LIMIT: gettext_lazy(
        "%(name)s has taken %(count)s new contacts in the burst window, the most allowed."
    ),
}
# AT_LIMIT of an operator with room, but not for a contact of this many load units.
NO_ROOM_FOR_SIZE = gettext_lazy(
    "%(name)s has no room for a contact this size (%(load)s / %(limit)s load units)."
)


def explain(reason: Reason, state: OperatorState, *, source_code: str) -> str:
    """The reason as staff read it, e.g. in a refused reassignment."""
    sentence = EXPLANATIONS[reason]
    if reason == Reason.AT_LIMIT and not is_at_limit(state.load, state.limit):
        sentence = NO_ROOM_FOR_SIZE
    return str(sentence) % {
        "name": state.name,
        "source": source_code,
        "load": state.load,
        "limit": state.limit,
        "count": state.given_in_window,
    }


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

    strategy: str  # the source's strategy, MANUAL, WAITING_QUEUE, STICKY or OVERFLOW
    candidates: tuple[CandidateReport, ...] = ()
    chosen_operator_id: int | None = None
    trigger: str | None = None  # for WAITING_QUEUE: what freed the capacity
    # The lead's own operator where the source is sticky, and why it was left out.
    owner: CandidateReport | None = None
    units: int = 1  # what the contact costs, in load units

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"strategy": self.strategy}
        if self.trigger is not None:
            data["trigger"] = self.trigger
        if self.owner is not None:
            data["owner"] = self.owner.as_json()
        if self.units != 1:
            data["units"] = self.units
        data["candidates"] = [candidate.as_json() for candidate in self.candidates]
        data["chosen_operator_id"] = self.chosen_operator_id
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Decision":
        """A stored decision; rows written without one (seeded history) read as empty."""
        owner = data.get("owner")
        return cls(
            strategy=data.get("strategy", ""),
            candidates=tuple(_report(candidate) for candidate in data.get("candidates", [])),
            chosen_operator_id=data.get("chosen_operator_id"),
            trigger=data.get("trigger"),
            owner=None if owner is None else _report(owner),
            units=data.get("units", 1),
        )

    @property
    def strategy_text(self) -> str:
        """The strategy in words (STRATEGIES); "" where none was recorded."""
        return str(STRATEGIES.get(self.strategy, self.strategy))

    def outcome(self, candidate: CandidateReport) -> str:
        """What happened to a candidate, as staff read it: chosen, why it was left out
        (SHORT_REASONS), or not picked."""
        if candidate.operator_id == self.chosen_operator_id:
            return str(CHOSEN)
        if candidate.left_out:
            return str(SHORT_REASONS[candidate.left_out])
        return str(NOT_PICKED)


def _report(candidate: dict[str, Any]) -> CandidateReport:
    return CandidateReport(
        operator_id=candidate.get("operator_id"),
        name=candidate.get("name", ""),
        load=candidate.get("load", 0),
        limit=candidate.get("limit", 0),
        left_out=Reason(candidate["left_out"]) if candidate.get("left_out") else None,
        weight=candidate.get("weight"),
    )


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
    # Sticky 'require': the lead's own operator the contact waits for (nobody chosen).
    waits_for: int | None = None


def choose(
    strategy: str,
    states: Sequence[OperatorState],
    *,
    rng: random.Random,
    exclude_operator_id: int | None = None,
    missed_by: Collection[int] = (),
    units: int = 1,
    owner: OperatorState | None = None,
    sticky: str = STICKY_OFF,
) -> Choice:
    """Leave out who cannot take the contact (costing `units`), with the reason; pick
    among the rest by `strategy`.

    With `owner` (the lead's own operator, in any state) and `sticky` 'prefer' or
    'require', the owner takes it if eligible. If not, 'require' waits for the owner
    while the reason may pass (PASSING); otherwise the strategy picks, and the
    decision says why the owner did not.
    """

    def reason_of(state: OperatorState) -> Reason | None:
        return left_out_reason(
            state, exclude_operator_id=exclude_operator_id, missed_by=missed_by, units=units
        )

    owner_report = None
    if owner is not None and sticky != STICKY_OFF:
        reason = reason_of(owner)
        owner_report = CandidateReport.of(owner, reason)
        if reason is None or (sticky == STICKY_REQUIRE and reason in PASSING):
            chosen = owner if reason is None else None
            decision = Decision(
                strategy=STICKY,
                candidates=(owner_report,),
                chosen_operator_id=None if chosen is None else owner.operator_id,
                owner=owner_report,
                units=units,
            )
            return Choice(decision, chosen, waits_for=None if chosen else owner.operator_id)
    reports = []
    eligible = []
    for state in states:
        reason = reason_of(state)
        reports.append(CandidateReport.of(state, reason))
        if reason is None:
            eligible.append(state)
    chosen, credits = pick(strategy, eligible, rng=rng)
    decision = Decision(
        strategy=strategy,
        candidates=tuple(reports),
        chosen_operator_id=chosen.operator_id if chosen else None,
        owner=owner_report,
        units=units,
    )
    return Choice(decision=decision, chosen=chosen, credits=credits)


def with_given_in_window(state: OperatorState, given: int) -> OperatorState:
    return replace(state, given_in_window=given)


def pick(
    strategy: str, eligible: Sequence[OperatorState], *, rng: random.Random
) -> tuple[OperatorState | None, dict[int, int]]:
    """One of the eligible operators (in id order) by the strategy, and for round robin
    everyone's new credit ({} for weighted random); (None, {}) when none is eligible."""
    if not eligible:
        return None, {}
    candidates = [
        Candidate(
            state.operator_id,
            state.weight or 0,
            state.round_robin_credit,
            state.last_assigned_at.timestamp() if state.last_assigned_at else 0.0,
        )
        for state in eligible
    ]
    if strategy == ROUND_ROBIN:
        chosen, credits = pick_round_robin(candidates)
    else:
        chosen, credits = pick_weighted_random(candidates, rng), {}
    return next(s for s in eligible if s.operator_id == chosen.operator_id), credits
