"""Operators' stored loads checked against their contacts.

Operator.open_load is kept by the engine's one path that changes a contact's status,
under the operator's lock; this compares it with the units of the operator's open and
offered contacts and repairs any drift (a write made around the engine, say by hand in
the database). `manage.py check_loads` and the worker, hourly, run it.
"""

import logging
from dataclasses import dataclass

from django.db import transaction

from distribution.engine import lock_operators
from distribution.models import Operator, counted_load

logger = logging.getLogger("crm.loads")


@dataclass(frozen=True)
class Drift:
    operator_id: int
    name: str
    stored: int
    counted: int


def check_loads() -> list[Drift]:
    """Every operator whose stored load differed from its contacts, now repaired. One
    short transaction per operator, under its lock, so nothing assigns meanwhile."""
    drifts = []
    for operator_id in list(Operator.objects.values_list("id", flat=True)):
        with transaction.atomic():
            if not lock_operators(operator_ids=[operator_id]):
                continue  # deleted meanwhile
            operator = (
                Operator.objects.annotate(counted=counted_load("pk"))
                .only("name", "open_load")
                .get(pk=operator_id)
            )
            if operator.open_load != operator.counted:
                Operator.objects.filter(pk=operator_id).update(open_load=operator.counted)
                drift = Drift(operator_id, operator.name, operator.open_load, operator.counted)
                logger.warning("Repaired a stored load: %s", drift)
                drifts.append(drift)
    return drifts
