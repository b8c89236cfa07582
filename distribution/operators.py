"""Staff changes to operators: each one that can free capacity drains the waiting queue
in the same transaction."""

from django.db import transaction

from core.errors import Conflict
from distribution import queries
from distribution.engine import drain_waiting_for_operator, lock_operators, restart_round_robin
from distribution.models import Operator, OperatorSourceWeight, Source


@transaction.atomic
def create_operator(*, name: str, is_active: bool = True, max_open_contacts: int = 10) -> Operator:
    return Operator.objects.create(
        name=name, is_active=is_active, max_open_contacts=max_open_contacts
    )


@transaction.atomic
def update_operator(
    *,
    operator: Operator,
    name: str | None = None,
    is_active: bool | None = None,
    max_open_contacts: int | None = None,
) -> Operator:
    """Change an operator (None leaves a field as it is); if that leaves it room, its
    waiting contacts come at once."""
    lock_operators(operator_ids=[operator.pk])
    locked = Operator.objects.get(pk=operator.pk)
    changes = {"name": name, "is_active": is_active, "max_open_contacts": max_open_contacts}
    for attribute, value in changes.items():
        if value is not None:
            setattr(locked, attribute, value)
    locked.save()
    drain_waiting_for_operator(operator_id=locked.pk, trigger="operator_updated")
    return locked


@transaction.atomic
def delete_operator(*, operator: Operator) -> None:
    """Delete an operator holding no open contacts; its closed ones keep their history."""
    # The engine takes this lock before assigning, so no contact opens for the operator
    # between the count and the delete.
    if not lock_operators(operator_ids=[operator.pk]):
        return
    [state] = queries.operator_states(source_id=None, operator_ids=[operator.pk])
    if state.load:
        raise Conflict(
            f"{state.name} has {state.load} open contacts: close or reassign them first."
        )
    Operator.objects.filter(pk=operator.pk).delete()


@transaction.atomic
def set_operator_weights(
    *, operator: Operator, weights: dict[int, int]
) -> list[OperatorSourceWeight]:
    """Replace the whole weight list of an operator ({source_id: weight}, weights > 0).

    The operator's row lock keeps picks on its sources from seeing half of the change
    (the engine locks the same row before reading weights). If any weight was added
    or changed, the operator then takes the waiting contacts it can serve.
    """
    lock_operators(operator_ids=[operator.pk])
    before = dict(operator.weights.values_list("source_id", "weight"))
    known = set(Source.objects.filter(id__in=list(weights)).values_list("id", flat=True))
    if missing := set(weights) - known:
        raise Conflict(f"Unknown sources: {sorted(missing)}.")
    operator.weights.exclude(source_id__in=list(weights)).delete()
    for source_id, weight in weights.items():
        OperatorSourceWeight.objects.update_or_create(
            operator=operator, source_id=source_id, defaults={"weight": weight}
        )
    changed = [
        source_id for source_id, weight in weights.items() if before.get(source_id) != weight
    ]
    if changed:
        restart_round_robin(source_ids=changed)
        drain_waiting_for_operator(operator_id=operator.pk, trigger="weights_changed")
    return list(operator.weights.select_related("source").order_by("source_id"))
