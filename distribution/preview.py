"""What a source would do with its next contacts now: warnings and a dry run of the engine.

Reads the source's operators as the engine does (queries.operator_states), then
replays the engine's own decision (eligibility.choose) for each contact. Each pick
counts as load, so operators fill up and drop out as they would in the engine;
contacts nobody can take would wait. Writes nothing and takes no lock.
"""

import dataclasses
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from django.utils import timezone
from django.utils.translation import gettext, ngettext

from distribution import eligibility, queries
from distribution.eligibility import OperatorState, Reason
from distribution.models import Source

PREVIEW_SIZE = 100


@dataclass
class PreviewRow:
    state: OperatorState
    left_out: Reason | None  # why the engine would skip this operator right now
    contacts: int = 0  # how many of the next contacts it would get


@dataclass
class SourcePreview:
    strategy: str
    count: int
    rows: list[PreviewRow] = field(default_factory=list)
    waiting: int = 0  # contacts nobody could take: they would wait


def source_warnings(
    *, is_active: bool, operators: Sequence[OperatorState], units: int = 1
) -> list[str]:
    """What staff should fix on a source whose contacts cost `units`, given the
    operators configured on it."""
    warnings = []
    if not is_active:
        warnings.append(gettext("The source is inactive: contacts sent to it are refused."))
    active = [operator for operator in operators if operator.is_active]
    if not operators:
        warnings.append(gettext("No operator serves this source: every new contact will wait."))
    elif not active:
        warnings.append(gettext("No active operator on this source: every new contact will wait."))
    elif not any(eligibility.fits(operator, units) for operator in active):
        warnings.append(
            gettext("Every active operator on this source is at the limit: new contacts will wait.")
            if units == 1
            else ngettext(
                "No active operator on this source has room for a contact of %(units)s "
                "load unit: new contacts will wait.",
                "No active operator on this source has room for a contact of %(units)s "
                "load units: new contacts will wait.",
                units,
            )
            % {"units": units}
        )
    return warnings


def source_operators(source: Source) -> list[OperatorState]:
    """The operators on the source with their loads and weights, as the engine reads them."""
    return queries.operator_states(source_id=source.pk, now=timezone.now())


def preview_next_contacts(
    *, source: Source, count: int = PREVIEW_SIZE, rng: random.Random | None = None
) -> SourcePreview:
    """How the next `count` contacts of `source` would be split if they came in now, as
    new leads (a returning lead's contact may go to its own operator instead), each
    costing the source's load units and counting toward burst limits."""
    rng = rng or random.Random()
    states = {state.operator_id: state for state in source_operators(source)}
    rows = {
        operator_id: PreviewRow(
            state=state, left_out=eligibility.left_out_reason(state, units=source.load_units)
        )
        for operator_id, state in states.items()
    }
    preview = SourcePreview(strategy=source.strategy, count=count, rows=list(rows.values()))
    for _ in range(count):
        choice = eligibility.choose(
            source.strategy, list(states.values()), rng=rng, units=source.load_units
        )
        if choice.chosen is None:
            preview.waiting += 1
            continue
        chosen = choice.chosen
        rows[chosen.operator_id].contacts += 1
        for operator_id, credit in choice.credits.items():
            states[operator_id] = dataclasses.replace(
                states[operator_id], round_robin_credit=credit
            )
        current = states[chosen.operator_id]  # with its new credit
        states[chosen.operator_id] = dataclasses.replace(
            current,
            load=current.load + source.load_units,
            given_in_window=current.given_in_window + 1,
        )
    return preview
