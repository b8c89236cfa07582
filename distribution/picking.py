"""Choosing one operator among the eligible ones: pure functions, no database.

Both strategies take the eligible candidates in operator-id order and never see an
operator that is inactive or at its limit; the engine filters those out first.
"""

import random
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Candidate:
    operator_id: int
    weight: int
    round_robin_credit: int = 0


def pick_weighted_random(candidates: Sequence[Candidate], rng: random.Random) -> Candidate:
    """One candidate with probability weight / sum of weights."""
    return rng.choices(candidates, weights=[c.weight for c in candidates])[0]


def pick_round_robin(
    candidates: Sequence[Candidate],
) -> tuple[Candidate, dict[int, int]]:
    """Smooth weighted round-robin (as in nginx): the chosen one and everyone's new credit.

    Each pick adds every candidate's weight to its credit, takes the highest credit
    (lowest operator id on a tie) and takes the total weight off the winner. With a
    fixed set the credits keep summing to zero, so each operator's count stays within
    a fraction of its share on every prefix.

    Credits come from earlier picks whose eligible set may have differed (someone was
    full or inactive); they are first clamped to one total weight and re-centred to
    sum to zero, so an operator coming back resumes its share instead of a burst.
    """
    weights = [c.weight for c in candidates]
    total = sum(weights)
    credits = _recentred([c.round_robin_credit for c in candidates], weights)
    credits = [credit + weight for credit, weight in zip(credits, weights, strict=True)]
    best = max(range(len(candidates)), key=lambda i: (credits[i], -i))
    credits[best] -= total
    new_credits = {c.operator_id: credit for c, credit in zip(candidates, credits, strict=True)}
    return candidates[best], new_credits


def _recentred(credits: list[int], weights: list[int]) -> list[int]:
    total = sum(weights)
    clamped = [max(-total, min(total, credit)) for credit in credits]
    excess = sum(clamped)
    # Take the excess back in proportion to weight; the rounding remainder from the first.
    cuts = [excess * weight // total for weight in weights]
    cuts[0] += excess - sum(cuts)
    return [credit - cut for credit, cut in zip(clamped, cuts, strict=True)]


def preview_split(
    candidates: Sequence[Candidate], strategy: str, count: int, rng: random.Random
) -> dict[int, int]:
    """How `count` picks would split among a fixed eligible set now (writes nothing)."""
    split = {c.operator_id: 0 for c in candidates}
    current = list(candidates)
    for _ in range(count if candidates else 0):
        if strategy == "round_robin":
            chosen, credits = pick_round_robin(current)
            current = [Candidate(c.operator_id, c.weight, credits[c.operator_id]) for c in current]
        else:
            chosen = pick_weighted_random(current, rng)
        split[chosen.operator_id] += 1
    return split
