"""Staff changes to sources: their fields, their operators' weights and their bots' keys."""

from django.db import IntegrityError, transaction
from django.db.models import ProtectedError
from django.utils import timezone

from core.errors import Conflict
from distribution.engine import drain_waiting_for_operator, lock_operators, restart_round_robin
from distribution.keys import hash_key, new_key, prefix_of
from distribution.models import OperatorSourceWeight, Source, SourceApiKey
from distribution.operators import UNCHANGED


def create_source(
    *,
    code: str,
    name: str,
    is_active: bool = True,
    strategy: str = Source.Strategy.WEIGHTED_RANDOM,
    accept_timeout_seconds: int | None = None,
    max_offers: int = 3,
) -> Source:
    try:
        with transaction.atomic():
            return Source.objects.create(
                code=code,
                name=name,
                is_active=is_active,
                strategy=strategy,
                accept_timeout_seconds=accept_timeout_seconds,
                max_offers=max_offers,
            )
    except IntegrityError:
        raise Conflict(f"A source with the code {code!r} already exists.") from None


def update_source(
    *,
    source: Source,
    code: str | None = None,
    name: str | None = None,
    is_active: bool | None = None,
    strategy: str | None = None,
    accept_timeout_seconds: int | object | None = UNCHANGED,
    max_offers: int | None = None,
) -> Source:
    """Change a source's fields (None leaves one as it is; UNCHANGED the accept timeout,
    where None turns offers off). Its weights are set apart. Offers already made keep
    their deadline."""
    changes = {
        "code": code,
        "name": name,
        "is_active": is_active,
        "strategy": strategy,
        "max_offers": max_offers,
    }
    changed = [attribute for attribute, value in changes.items() if value is not None]
    if accept_timeout_seconds is not UNCHANGED:
        changes["accept_timeout_seconds"] = accept_timeout_seconds
        changed.append("accept_timeout_seconds")
    for attribute in changed:
        setattr(source, attribute, changes[attribute])
    try:
        with transaction.atomic():
            source.save(update_fields=changed)
    except IntegrityError:
        raise Conflict(f"A source with the code {code!r} already exists.") from None
    return source


def delete_source(*, source: Source) -> None:
    """Delete a source that never received a contact; one with history is deactivated."""
    try:
        with transaction.atomic():
            source.delete()
    # PROTECT on Contact.source, or a contact inserted after Django looked for them.
    except (ProtectedError, IntegrityError):
        raise Conflict(
            f"The source {source.code} has contacts: deactivate it instead of deleting it."
        ) from None


@transaction.atomic
def set_source_weights(*, source: Source, weights: dict[int, int]) -> list[OperatorSourceWeight]:
    """Replace the whole weight list of a source ({operator_id: weight}, weights > 0).

    The operators involved, before and after, are locked in id order first, so no
    pick on this source sees half of the change. Operators that gained a weight then
    take the waiting contacts they can serve.
    """
    locked = lock_operators(operator_ids=weights, source=source)
    if missing := set(weights) - set(locked):
        raise Conflict(f"Unknown operators: {sorted(missing)}.")
    before = dict(source.weights.values_list("operator_id", "weight"))
    source.weights.exclude(operator_id__in=list(weights)).delete()
    for operator_id, weight in weights.items():
        OperatorSourceWeight.objects.update_or_create(
            source=source, operator_id=operator_id, defaults={"weight": weight}
        )
    if before != weights:
        restart_round_robin(source_ids=[source.pk])
    for operator_id in sorted(weights):
        if before.get(operator_id) != weights[operator_id]:
            drain_waiting_for_operator(operator_id=operator_id, trigger="weights_changed")
    return list(source.weights.select_related("operator").order_by("operator_id"))


def create_source_key(*, source: Source, name: str = "") -> tuple[SourceApiKey, str]:
    """A new API key for a source's bot: the stored row and the key, which is not stored."""
    key = new_key()
    api_key = SourceApiKey.objects.create(
        source=source, name=name, prefix=prefix_of(key), key_hash=hash_key(key)
    )
    return api_key, key


def revoke_source_key(*, api_key: SourceApiKey) -> SourceApiKey:
    """Stop a key from working at once; revoking it again keeps the first revocation time."""
    SourceApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    api_key.refresh_from_db()
    return api_key
