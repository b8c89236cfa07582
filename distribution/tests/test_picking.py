"""The pure choice functions: properties of both strategies, no database."""

import random
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from distribution.picking import Candidate, pick_round_robin, pick_weighted_random

weight_lists = st.lists(st.integers(min_value=1, max_value=100), min_size=1, max_size=8)


def run_round_robin(candidates: list[Candidate], picks: int) -> tuple[list[int], list[Candidate]]:
    """Pick `picks` times with a fixed set; the chosen ids in order and the final state."""
    chosen_ids = []
    for _ in range(picks):
        chosen, credits = pick_round_robin(candidates)
        chosen_ids.append(chosen.operator_id)
        candidates = [
            Candidate(c.operator_id, c.weight, credits[c.operator_id]) for c in candidates
        ]
    return chosen_ids, candidates


def worst_prefix_deviation(chosen_ids: list[int], weights: dict[int, int]) -> float:
    """The largest |count - share x n| of any operator over every prefix of the picks."""
    total = sum(weights.values())
    counts = Counter()
    worst = 0.0
    for n, operator_id in enumerate(chosen_ids, start=1):
        counts[operator_id] += 1
        worst = max(worst, *(abs(counts[i] - n * w / total) for i, w in weights.items()))
    return worst


def test_round_robin_follows_weights_exactly_over_a_cycle():
    candidates = [Candidate(1, 5), Candidate(2, 1), Candidate(3, 1)]
    chosen_ids, _ = run_round_robin(candidates, 7)
    # nginx's smooth sequence for 5/1/1: the heavy operator is spread out, not in a burst.
    assert chosen_ids == [1, 1, 2, 1, 3, 1, 1]


def test_round_robin_breaks_ties_by_lowest_operator_id():
    chosen_ids, _ = run_round_robin([Candidate(4, 1), Candidate(9, 1)], 4)
    assert chosen_ids == [4, 9, 4, 9]


@settings(max_examples=300, deadline=None)
@given(weights=weight_lists, picks=st.integers(min_value=1, max_value=300))
def test_round_robin_keeps_every_prefix_within_two_of_share(weights, picks):
    candidates = [Candidate(i, w) for i, w in enumerate(weights, start=1)]
    chosen_ids, _ = run_round_robin(candidates, picks)
    limit = 1 if len(weights) == 2 else 2
    assert worst_prefix_deviation(chosen_ids, dict(enumerate(weights, start=1))) <= limit


@settings(max_examples=300, deadline=None)
@given(
    weights=st.lists(st.integers(min_value=1, max_value=100), min_size=2, max_size=8),
    churn=st.lists(st.lists(st.booleans(), min_size=8, max_size=8), max_size=60),
    final=st.lists(st.booleans(), min_size=8, max_size=8),
    picks=st.integers(min_value=1, max_value=200),
)
def test_round_robin_after_operators_leave_and_return_keeps_shares(weights, churn, final, picks):
    """Operators drop out (full, inactive) and come back: once the set is fixed again,
    everyone gets its share on every prefix; nobody who was away gets a burst."""
    credits = {i: 0 for i in range(len(weights))}
    for present in churn:
        eligible = [Candidate(i, w, credits[i]) for i, w in enumerate(weights) if present[i]]
        if eligible:
            _, new_credits = pick_round_robin(eligible)
            credits.update(new_credits)
    fixed = [Candidate(i, w, credits[i]) for i, w in enumerate(weights) if final[i]]
    if not fixed:
        return
    chosen_ids, _ = run_round_robin(fixed, picks)
    fixed_weights = {c.operator_id: c.weight for c in fixed}
    limit = 1 if len(fixed) == 2 else 2
    assert worst_prefix_deviation(chosen_ids, fixed_weights) <= limit


def test_round_robin_operator_back_from_a_long_absence_gets_no_burst():
    weights = {1: 1, 2: 1, 3: 1}
    credits = {i: 0 for i in weights}
    for _ in range(50):  # operator 3 is full for a while
        _, new_credits = pick_round_robin([Candidate(i, weights[i], credits[i]) for i in (1, 2)])
        credits.update(new_credits)
    back = [Candidate(i, w, credits[i]) for i, w in weights.items()]
    chosen_ids, _ = run_round_robin(back, 9)
    assert Counter(chosen_ids) == {1: 3, 2: 3, 3: 3}
    assert chosen_ids[:3].count(3) == 1


def test_weighted_random_shares_match_weights():
    candidates = [Candidate(1, 5), Candidate(2, 3), Candidate(3, 2)]
    rng = random.Random(20261122)
    picks = 20_000
    counts = Counter(pick_weighted_random(candidates, rng).operator_id for _ in range(picks))
    # One share's standard deviation here is at most 0.0035; 0.015 is over four of them.
    for candidate in candidates:
        assert abs(counts[candidate.operator_id] / picks - candidate.weight / 10) < 0.015


@given(weights=weight_lists, seed=st.integers())
def test_weighted_random_picks_only_given_candidates(weights, seed):
    candidates = [Candidate(i, w) for i, w in enumerate(weights, start=10)]
    assert pick_weighted_random(candidates, random.Random(seed)) in candidates
