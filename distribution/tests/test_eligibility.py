"""The eligibility rules, decisions and choice: pure, no database (but for the one test
that holds `OperatorQuerySet.at_limit` equal to `is_at_limit`)."""

import json
import random
from collections import Counter
from dataclasses import replace

import pytest

from distribution.eligibility import (
    CandidateReport,
    Decision,
    OperatorState,
    Reason,
    choose,
    explain,
    is_at_limit,
    left_out_reason,
    manual_decision,
    room,
    state_of,
    waiting_queue_decision,
)
from distribution.models import Operator
from distribution.picking import ROUND_ROBIN, WEIGHTED_RANDOM
from tests.factories import ContactFactory, OperatorFactory


def state(
    operator_id: int = 1,
    *,
    name: str = "Ivan",
    is_active: bool = True,
    load: int = 0,
    limit: int = 10,
    weight: int | None = 1,
    credit: int = 0,
) -> OperatorState:
    """An operator on a source (weight 1) with room, unless told otherwise."""
    return OperatorState(
        operator_id=operator_id,
        name=name,
        is_active=is_active,
        load=load,
        limit=limit,
        weight=weight,
        round_robin_credit=credit,
    )


# left_out_reason


def test_an_active_operator_on_the_source_with_room_is_not_left_out():
    assert left_out_reason(state(load=9, limit=10)) is None


def test_the_current_operator_is_left_out_before_any_other_reason():
    everything_wrong = state(7, is_active=False, weight=None, load=3, limit=3)

    assert left_out_reason(everything_wrong, exclude_operator_id=7) == Reason.CURRENT_OPERATOR


def test_inactive_comes_before_not_on_source_and_at_limit():
    assert left_out_reason(state(is_active=False, weight=None, load=3, limit=3)) == Reason.INACTIVE


def test_not_on_source_comes_before_at_limit():
    assert left_out_reason(state(weight=None, load=3, limit=3)) == Reason.NOT_ON_SOURCE


def test_at_limit_is_the_last_reason():
    assert left_out_reason(state(load=3, limit=3)) == Reason.AT_LIMIT


def test_excluding_another_operator_does_not_leave_this_one_out():
    assert left_out_reason(state(7), exclude_operator_id=8) is None


def test_reasons_keep_the_values_stored_in_decisions():
    assert [reason.value for reason in Reason] == [
        "current_operator",
        "inactive",
        "not_on_source",
        "away",
        "offline",
        "off_shift",
        "at_limit",
        "burst_limit",
        "missed_offer",
    ]


# is_at_limit and room


@pytest.mark.parametrize(
    ("load", "limit", "at_limit"),
    [(2, 3, False), (3, 3, True), (4, 3, True), (0, 0, True), (0, 1, False)],
)
def test_is_at_limit_from_the_limit_on(load, limit, at_limit):
    assert is_at_limit(load, limit) is at_limit


def test_room_is_what_is_left_under_the_limit():
    assert room(state(load=2, limit=5)) == 3


def test_room_of_an_inactive_operator_is_zero():
    assert room(state(is_active=False, load=0, limit=5)) == 0


def test_room_of_an_operator_over_its_limit_is_zero_not_negative():
    assert room(state(load=7, limit=5)) == 0


def test_room_does_not_depend_on_the_source():
    assert room(state(weight=None, load=1, limit=5)) == 4


# explain


@pytest.mark.parametrize(
    ("reason", "message"),
    [
        (Reason.CURRENT_OPERATOR, "The contact is already with Ivan."),
        (Reason.INACTIVE, "Ivan is inactive."),
        (Reason.NOT_ON_SOURCE, "Ivan does not serve the source bot-1."),
        (Reason.AT_LIMIT, "Ivan is at the limit (3 / 3 open)."),
    ],
)
def test_explain_says_why_in_words_staff_read(reason, message):
    assert explain(reason, state(name="Ivan", load=3, limit=3), source_code="bot-1") == message


# Decision as stored


def test_decision_as_json_is_the_shape_the_engine_has_always_stored():
    ivan = state(1, name="Ivan", weight=3, load=0, limit=2)
    decision = Decision(
        strategy=WEIGHTED_RANDOM,
        candidates=(CandidateReport.of(ivan, None),),
        chosen_operator_id=1,
    )

    stored = json.loads(json.dumps(decision.as_json()))

    assert stored == {
        "strategy": "weighted_random",
        "candidates": [
            {"operator_id": 1, "name": "Ivan", "weight": 3, "load": 0, "limit": 2, "left_out": None}
        ],
        "chosen_operator_id": 1,
    }
    assert list(stored) == ["strategy", "candidates", "chosen_operator_id"]
    assert list(stored["candidates"][0]) == [
        "operator_id",
        "name",
        "weight",
        "load",
        "limit",
        "left_out",
    ]


def test_decision_as_json_stores_a_reason_as_its_plain_value():
    full = state(2, name="Maria", weight=1, load=3, limit=3)
    decision = Decision(
        strategy=ROUND_ROBIN, candidates=(CandidateReport.of(full, Reason.AT_LIMIT),)
    )

    assert json.dumps(decision.as_json()) == (
        '{"strategy": "round_robin", "candidates": [{"operator_id": 2, "name": "Maria",'
        ' "weight": 1, "load": 3, "limit": 3, "left_out": "at_limit"}],'
        ' "chosen_operator_id": null}'
    )


def test_waiting_queue_decision_has_trigger_after_strategy_and_no_weight():
    ivan = state(1, name="Ivan", weight=None, load=1, limit=2)

    stored = json.loads(
        json.dumps(waiting_queue_decision(ivan, trigger="contact_closed").as_json())
    )

    assert stored == {
        "strategy": "waiting_queue",
        "trigger": "contact_closed",
        "candidates": [{"operator_id": 1, "name": "Ivan", "load": 1, "limit": 2, "left_out": None}],
        "chosen_operator_id": 1,
    }
    assert list(stored) == ["strategy", "trigger", "candidates", "chosen_operator_id"]
    assert list(stored["candidates"][0]) == ["operator_id", "name", "load", "limit", "left_out"]


def test_manual_decision_names_the_operator_and_no_candidates():
    assert manual_decision(state(5)).as_json() == {
        "strategy": "manual",
        "candidates": [],
        "chosen_operator_id": 5,
    }


@pytest.mark.parametrize(
    "decision",
    [
        Decision(
            strategy=WEIGHTED_RANDOM,
            candidates=(
                CandidateReport.of(state(1, weight=3), None),
                CandidateReport.of(state(2, is_active=False), Reason.INACTIVE),
                CandidateReport.of(state(3, load=2, limit=2), Reason.AT_LIMIT),
                CandidateReport.of(state(4, weight=None), Reason.NOT_ON_SOURCE),
            ),
            chosen_operator_id=1,
        ),
        Decision(strategy=ROUND_ROBIN, candidates=(CandidateReport.of(state(1), None),)),
        waiting_queue_decision(state(9, weight=None), trigger="weights_changed"),
        manual_decision(state(4)),
    ],
    ids=["weighted_random", "nobody_chosen", "waiting_queue", "manual"],
)
def test_decision_reads_back_what_it_stored(decision):
    assert Decision.from_json(json.loads(json.dumps(decision.as_json()))) == decision


def test_seeded_history_without_a_decision_reads_as_an_empty_one():
    decision = Decision.from_json({"strategy": "seeded"})

    assert decision == Decision(strategy="seeded")
    assert decision.candidates == ()
    assert decision.chosen_operator_id is None


def test_outcome_of_each_candidate():
    chosen, full, passed_over = state(1), state(2, load=1, limit=1), state(3)
    decision = Decision(
        strategy=WEIGHTED_RANDOM,
        candidates=(
            CandidateReport.of(chosen, None),
            CandidateReport.of(full, Reason.AT_LIMIT),
            CandidateReport.of(passed_over, None),
        ),
        chosen_operator_id=1,
    )

    assert [decision.outcome(c) for c in decision.candidates] == [
        "chosen",
        "no room",
        "not picked",
    ]


# choose


def test_choose_leaves_out_each_ineligible_operator_with_its_reason():
    states = [
        state(1, name="Current"),
        state(2, name="Away", is_active=False),
        state(3, name="Elsewhere", weight=None),
        state(4, name="Full", load=2, limit=2),
        state(5, name="Free", weight=1),
    ]

    choice = choose(WEIGHTED_RANDOM, states, rng=random.Random(0), exclude_operator_id=1)

    assert [(c.operator_id, c.left_out) for c in choice.decision.candidates] == [
        (1, Reason.CURRENT_OPERATOR),
        (2, Reason.INACTIVE),
        (3, Reason.NOT_ON_SOURCE),
        (4, Reason.AT_LIMIT),
        (5, None),
    ]
    assert choice.chosen == states[4]
    assert choice.decision.chosen_operator_id == 5


@pytest.mark.parametrize("strategy", [WEIGHTED_RANDOM, ROUND_ROBIN])
def test_choose_never_picks_an_ineligible_operator_however_heavy(strategy):
    states = [
        state(1, weight=1000, is_active=False),
        state(2, weight=1000, load=5, limit=5),
        state(3, weight=1),
        state(4, weight=1000),
    ]
    rng = random.Random(1)

    chosen = {choose(strategy, states, rng=rng, exclude_operator_id=4).chosen for _ in range(50)}

    assert chosen == {states[2]}


@pytest.mark.parametrize("strategy", [WEIGHTED_RANDOM, ROUND_ROBIN])
def test_choose_with_nobody_eligible_chooses_nobody_and_keeps_every_credit(strategy):
    states = [state(1, is_active=False, credit=2), state(2, load=1, limit=1, credit=-2)]

    choice = choose(strategy, states, rng=random.Random(0))

    assert choice.chosen is None
    assert choice.credits == {}
    assert choice.decision.chosen_operator_id is None
    assert [c.left_out for c in choice.decision.candidates] == [Reason.INACTIVE, Reason.AT_LIMIT]


def test_choose_with_no_operators_at_all_records_an_empty_decision():
    choice = choose(ROUND_ROBIN, [], rng=random.Random(0))

    assert choice.decision == Decision(strategy=ROUND_ROBIN)
    assert (choice.chosen, choice.credits) == (None, {})


def test_round_robin_two_to_one_alternates_when_credits_are_fed_back():
    states = [state(1, name="A", weight=2), state(2, name="B", weight=1)]
    names = []

    for _ in range(6):
        choice = choose(ROUND_ROBIN, states, rng=random.Random(0))
        names.append(choice.chosen.name)
        states = [replace(s, round_robin_credit=choice.credits[s.operator_id]) for s in states]

    assert names == ["A", "B", "A", "A", "B", "A"]
    assert sum(s.round_robin_credit for s in states) == 0


def test_round_robin_gives_new_credits_only_to_the_eligible():
    states = [state(1, weight=2), state(2, weight=1, is_active=False, credit=5), state(3)]

    choice = choose(ROUND_ROBIN, states, rng=random.Random(0))

    assert set(choice.credits) == {1, 3}


def test_weighted_random_picks_only_the_eligible_in_proportion_to_weight():
    states = [state(1, weight=3), state(2, weight=50, load=4, limit=4), state(3, weight=1)]
    rng = random.Random(20240601)

    choices = [choose(WEIGHTED_RANDOM, states, rng=rng) for _ in range(400)]

    counts = Counter(choice.chosen.operator_id for choice in choices)
    assert set(counts) == {1, 3}
    # Expected 300 / 100; one standard deviation of the first count is about 9.
    assert abs(counts[1] - 300) < 40
    assert all(choice.credits == {} for choice in choices)


def test_weighted_random_with_the_same_seed_chooses_the_same():
    states = [state(n, weight=n) for n in range(1, 6)]

    def picks(seed: int) -> list[int]:
        rng = random.Random(seed)
        return [choose(WEIGHTED_RANDOM, states, rng=rng).chosen.operator_id for _ in range(20)]

    assert picks(7) == picks(7)


# state_of


def test_state_of_reads_an_operator_annotated_with_its_load():
    operator = OperatorFactory.build(id=7, name="Ivan", is_active=False, max_open_contacts=4)
    operator.load = 3

    assert state_of(operator) == OperatorState(
        operator_id=7, name="Ivan", is_active=False, load=3, limit=4
    )


def test_state_of_takes_load_and_weight_when_given():
    operator = OperatorFactory.build(id=7, max_open_contacts=4)
    operator.load = 3

    state_on_source = state_of(operator, load=0, weight=2)

    assert (state_on_source.load, state_on_source.weight) == (0, 2)
    assert state_on_source.round_robin_credit == 0


# The SQL twin of is_at_limit


@pytest.mark.django_db
def test_at_limit_queryset_agrees_with_is_at_limit():
    below = OperatorFactory(max_open_contacts=3)
    at = OperatorFactory(max_open_contacts=2)
    above = OperatorFactory(max_open_contacts=1)
    empty_at_zero = OperatorFactory(max_open_contacts=0)
    idle = OperatorFactory(max_open_contacts=1)
    for operator, load in [(below, 2), (at, 2), (above, 3)]:
        for _ in range(load):
            ContactFactory(open=True, operator=operator)
    ContactFactory(closed=True, operator=idle)  # closed contacts are no load

    operators = list(Operator.objects.with_load().order_by("id"))
    full = {o.pk for o in operators if is_at_limit(o.load, o.max_open_contacts)}
    over = {o.pk for o in operators if o.load > o.max_open_contacts}

    assert full == {at.pk, above.pk, empty_at_zero.pk}
    assert set(Operator.objects.with_load().at_limit().values_list("pk", flat=True)) == full
    assert set(Operator.objects.with_load().at_limit(False).values_list("pk", flat=True)) == {
        below.pk,
        idle.pk,
    }
    assert over == {above.pk}
    assert set(Operator.objects.with_load().over_limit().values_list("pk", flat=True)) == over


def test_state_of_an_operator_row_keeps_its_presence():
    operator = OperatorFactory.build(id=3, status="away")
    operator.load = 0

    state = state_of(operator)

    assert state.status == "away"
    assert room(state) == 0
