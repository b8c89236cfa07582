"""What a source would do with its next contacts now: warnings and a dry run of the engine.

Reads the source's weights and loads once, then replays picks with the real
`distribution.picking` functions. Each pick counts as load, so operators fill up and
drop out as they would in the engine; contacts nobody can take would wait. Writes
nothing and takes no lock.
"""

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from distribution.models import OperatorSourceWeight, Source
from distribution.picking import Candidate, pick_round_robin, pick_weighted_random
from distribution.services import left_out_reason, operator_load

PREVIEW_SIZE = 100


@dataclass
class PreviewRow:
    operator_id: int
    name: str
    weight: int
    load: int
    limit: int
    left_out: str | None  # why the engine would skip this operator right now
    contacts: int = 0  # how many of the next contacts it would get


@dataclass
class SourcePreview:
    strategy: str
    count: int
    rows: list[PreviewRow] = field(default_factory=list)
    waiting: int = 0  # contacts nobody could take: they would wait


def weights_with_load(source: Source) -> list[OperatorSourceWeight]:
    """The source's weights with their operators and each operator's open load (`load`)."""
    return list(
        source.weights.select_related("operator")
        .annotate(load=operator_load("operator_id"))
        .order_by("operator_id")
    )


@dataclass(frozen=True)
class Staffing:
    """One operator configured on a source, as the warnings need it."""

    is_active: bool
    load: int
    limit: int


def source_warnings(*, is_active: bool, operators: Sequence[Staffing]) -> list[str]:
    """What staff should fix on a source, given the operators configured on it."""
    warnings = []
    if not is_active:
        warnings.append("The source is inactive: contacts sent to it are refused.")
    active = [operator for operator in operators if operator.is_active]
    if not operators:
        warnings.append("No operator serves this source: every new contact will wait.")
    elif not active:
        warnings.append("No active operator on this source: every new contact will wait.")
    elif all(operator.load >= operator.limit for operator in active):
        warnings.append(
            "Every active operator on this source is at the limit: new contacts will wait."
        )
    return warnings


def staffing(weights: Sequence[OperatorSourceWeight]) -> list[Staffing]:
    """Staffing of weights read with `weights_with_load` (or a prefetch annotating `load`)."""
    return [
        Staffing(
            is_active=row.operator.is_active, load=row.load, limit=row.operator.max_open_contacts
        )
        for row in weights
    ]


def preview_next_contacts(
    *, source: Source, count: int = PREVIEW_SIZE, rng: random.Random | None = None
) -> SourcePreview:
    """How the next `count` contacts of `source` would be split if they came in now."""
    rng = rng or random.Random()
    weights = weights_with_load(source)
    rows = [_preview_row(weight) for weight in weights]
    room = {row.operator_id: row.limit - row.load for row in rows if row.left_out is None}
    credits = {weight.operator_id: weight.round_robin_credit for weight in weights}
    by_id = {row.operator_id: row for row in rows}
    preview = SourcePreview(strategy=source.strategy, count=count, rows=rows)
    for _ in range(count):
        eligible = [
            Candidate(operator_id, by_id[operator_id].weight, credits[operator_id])
            for operator_id, left in room.items()
            if left > 0
        ]
        if not eligible:
            preview.waiting += 1
            continue
        if source.strategy == Source.Strategy.ROUND_ROBIN:
            chosen, new_credits = pick_round_robin(eligible)
            credits.update(new_credits)
        else:
            chosen = pick_weighted_random(eligible, rng)
        room[chosen.operator_id] -= 1
        by_id[chosen.operator_id].contacts += 1
    return preview


def _preview_row(weight: OperatorSourceWeight) -> PreviewRow:
    operator = weight.operator
    return PreviewRow(
        operator_id=operator.pk,
        name=operator.name,
        weight=weight.weight,
        load=weight.load,
        limit=operator.max_open_contacts,
        left_out=left_out_reason(weight),
    )
