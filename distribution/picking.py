"""Choosing one operator among the eligible ones: pure functions, no database.

Both strategies take the eligible candidates in operator-id order and never see an
operator that is inactive or at its limit: eligibility.choose leaves those out first.
"""

import random
from collections.abc import Sequence
from dataclasses import dataclass

# The strategies a source can have (Source.Strategy's values).
WEIGHTED_RANDOM = "weighted_random"
ROUND_ROBIN = "round_robin"


@dataclass(frozen=True)
class Candidate:
    operator_id: int
    weight: int
    round_robin_credit: int = 0
    last_assigned: float = 0.0  # a timestamp, 0 for never: ties go to the least recent


def pick_weighted_random(candidates: Sequence[Candidate], rng: random.Random) -> Candidate:
    """One candidate with probability weight / sum of weights."""
    return rng.choices(candidates, weights=[c.weight for c in candidates])[0]


def pick_round_robin(
    candidates: Sequence[Candidate],
) -> tuple[Candidate, dict[int, int]]:
    """Smooth weighted round-robin (as in nginx): the chosen one and everyone's new credit.

    Each pick adds every candidate's weight to its credit, takes the highest credit
    (on a tie the one given a contact least recently, then the lowest operator id) and
    takes the total weight off the winner. With a
    fixed set the credits keep summing to zero, so each operator's count stays within
    a fraction of its share on every prefix.

    Credits come from earlier picks whose eligible set or weights may have differed
    (someone was full or inactive): see `_normalised`.
    """
    weights = [c.weight for c in candidates]
    total = sum(weights)
    credits = _normalised([c.round_robin_credit for c in candidates], weights)
    credits = [credit + weight for credit, weight in zip(credits, weights, strict=True)]
    best = max(range(len(candidates)), key=lambda i: (credits[i], -candidates[i].last_assigned, -i))
    credits[best] -= total
    new_credits = {c.operator_id: credit for c, credit in zip(candidates, credits, strict=True)}
    return candidates[best], new_credits


def _normalised(credits: list[int], weights: list[int]) -> list[int]:
    """Credits as smooth round-robin expects them: summing to zero, near zero.

    A fixed set's own credits already are (they stay within about 1.2 total weights)
    and are left alone. Credits that sum to something else, or are far out, were left
    by a different eligible set or other weights: they are re-centred and clamped to a
    third of the total weight, keeping who is owed a pick without owing a burst.
    """
    total = sum(weights)
    if sum(credits) == 0 and all(abs(credit) <= 2 * total for credit in credits):
        return credits
    limit = total // 3
    clamped = [max(-limit, min(limit, credit)) for credit in _recentred(credits, weights)]
    return _recentred(clamped, weights)


def _recentred(credits: list[int], weights: list[int]) -> list[int]:
    total = sum(weights)
    excess = sum(credits)
    # Take the excess back in proportion to weight; the rounding remainder from the first.
    cuts = [excess * weight // total for weight in weights]
    cuts[0] += excess - sum(cuts)
    return [credit - cut for credit, cut in zip(credits, cuts, strict=True)]
