"""Staff changes to sources: their fields, their operators' weights and their bots' keys."""

from datetime import datetime

from django.db import IntegrityError, transaction
from django.db.models import ProtectedError
from django.utils import timezone
from django.utils.translation import gettext

from core.errors import Conflict
from distribution.engine import drain_waiting_for_operator, lock_operators, restart_round_robin
from distribution.keys import hash_key, new_key, prefix_of
from distribution.models import OperatorSourceWeight, OverflowWeight, Source, SourceApiKey
from distribution.operators import UNCHANGED

# The fields create_source and update_source take: what staff set on a source.
SETTINGS = (
    "code",
    "name",
    "is_active",
    "strategy",
    "accept_timeout_seconds",
    "max_offers",
    "load_units",
    "sticky",
    "sticky_days",
    "sticky_wait_seconds",
    "priority",
    "overflow_after_seconds",
)


def create_source(
    *,
    code: str,
    name: str,
    is_active: bool = True,
    strategy: str = Source.Strategy.WEIGHTED_RANDOM,
    accept_timeout_seconds: int | None = None,
    max_offers: int = 3,
    load_units: int = 1,
    sticky: str = Source.Sticky.PREFER,
    sticky_days: int = 30,
    sticky_wait_seconds: int = 300,
    priority: int = 0,
    overflow_after_seconds: int | None = None,
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
                load_units=load_units,
                sticky=sticky,
                sticky_days=sticky_days,
                sticky_wait_seconds=sticky_wait_seconds,
                priority=priority,
                overflow_after_seconds=overflow_after_seconds,
            )
    except IntegrityError:
        raise Conflict(_code_taken(code)) from None


def _code_taken(code: str | None) -> str:
    return gettext("A source with the code %(code)s already exists.") % {"code": repr(code)}


def update_source(
    *,
    source: Source,
    code: str | None = None,
    name: str | None = None,
    is_active: bool | None = None,
    strategy: str | None = None,
    accept_timeout_seconds: int | object | None = UNCHANGED,
    max_offers: int | None = None,
    load_units: int | None = None,
    sticky: str | None = None,
    sticky_days: int | None = None,
    sticky_wait_seconds: int | None = None,
    priority: int | None = None,
    overflow_after_seconds: int | object | None = UNCHANGED,
) -> Source:
    """Change a source's fields (None leaves one as it is; UNCHANGED the accept timeout
    and the overflow time, where None turns them off). Its weights are set apart.
    Offers already made keep their deadline, contacts already given their units."""
    changes = {
        "code": code,
        "name": name,
        "is_active": is_active,
        "strategy": strategy,
        "max_offers": max_offers,
        "load_units": load_units,
        "sticky": sticky,
        "sticky_days": sticky_days,
        "sticky_wait_seconds": sticky_wait_seconds,
        "priority": priority,
    }
    changed = [attribute for attribute, value in changes.items() if value is not None]
    for attribute, value in [
        ("accept_timeout_seconds", accept_timeout_seconds),
        ("overflow_after_seconds", overflow_after_seconds),
    ]:
        if value is not UNCHANGED:
            changes[attribute] = value
            changed.append(attribute)
    for attribute in changed:
        setattr(source, attribute, changes[attribute])
    try:
        with transaction.atomic():
            source.save(update_fields=changed)
    except IntegrityError:
        raise Conflict(_code_taken(code)) from None
    return source


def delete_source(*, source: Source) -> None:
    """Delete a source that never received a contact; one with history is deactivated."""
    try:
        with transaction.atomic():
            source.delete()
    # PROTECT on Contact.source, or a contact inserted after Django looked for them.
    except (ProtectedError, IntegrityError):
        raise Conflict(
            gettext("The source %(code)s has contacts: deactivate it instead of deleting it.")
            % {"code": source.code}
        ) from None


@transaction.atomic
def set_source_weights(
    *, source: Source, weights: dict[int, int], since: datetime | None = None
) -> list[OperatorSourceWeight]:
    """Replace the whole weight list of a source ({operator_id: weight}, weights > 0).

    The operators involved, before and after, are locked in id order first, so no
    pick on this source sees half of the change. Operators that gained a weight then
    take the waiting contacts they can serve. An operator new to the source joins it
    at `since` (default now; a seed that writes past history may backdate it); a
    changed weight keeps the pair's time, which the distribution report measures its
    share from.
    """
    joined = since or timezone.now()
    locked = lock_operators(operator_ids=weights, source=source)
    if missing := set(weights) - set(locked):
        raise Conflict(gettext("Unknown operators: %(ids)s.") % {"ids": sorted(missing)})
    before = dict(source.weights.values_list("operator_id", "weight"))
    source.weights.exclude(operator_id__in=list(weights)).delete()
    for operator_id, weight in weights.items():
        OperatorSourceWeight.objects.update_or_create(
            source=source,
            operator_id=operator_id,
            defaults={"weight": weight},
            create_defaults={"weight": weight, "since": joined},
        )
    if before != weights:
        restart_round_robin(source_ids=[source.pk])
    for operator_id in sorted(weights):
        if before.get(operator_id) != weights[operator_id]:
            drain_waiting_for_operator(operator_id=operator_id, trigger="weights_changed")
    return list(source.weights.select_related("operator").order_by("operator_id"))


@transaction.atomic
def set_source_overflow(*, source: Source, weights: dict[int, int]) -> list[OverflowWeight]:
    """Replace a source's overflow operators ({operator_id: weight}, weights > 0): who
    may also take its contacts once they waited past its overflow time. Under the locks
    of the operators involved, before and after, as the overflow pass takes them."""
    before = list(source.overflow_weights.values_list("operator_id", flat=True))
    locked = lock_operators(operator_ids=[*weights, *before])
    if missing := set(weights) - set(locked):
        raise Conflict(gettext("Unknown operators: %(ids)s.") % {"ids": sorted(missing)})
    source.overflow_weights.exclude(operator_id__in=list(weights)).delete()
    for operator_id, weight in weights.items():
        OverflowWeight.objects.update_or_create(
            source=source, operator_id=operator_id, defaults={"weight": weight}
        )
    return list(source.overflow_weights.select_related("operator").order_by("operator_id"))


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
