"""Changes to operators, by staff or by the operators themselves (their status): each
one that can free capacity drains the waiting queue in the same transaction, and each
that stops an operator taking work withdraws its pending offers once it is committed."""

from collections.abc import Sequence
from datetime import datetime, timedelta
from functools import partial

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext

from core.errors import Conflict
from distribution.engine import drain_waiting_for_operator, lock_operators, restart_round_robin
from distribution.models import (
    Contact,
    DayOff,
    Operator,
    OperatorSourceWeight,
    OperatorStatusChange,
    Shift,
    Source,
    default_time_zone,
)
from distribution.offers import withdraw_offers
from distribution.shifts import DayOff as DayOffRange
from distribution.shifts import ShiftInterval, hours_text, overlaps
from distribution.statuses import record_status

# A field of an update_* service that is not to change, where None is a value (update_operator's
# `user`: None unlinks the login; update_source's `accept_timeout_seconds`: None turns
# offers off; and the like).
UNCHANGED = object()


@transaction.atomic
def create_operator(
    *,
    name: str,
    is_active: bool = True,
    max_open_contacts: int = 10,
    status: str = Operator.Status.AVAILABLE,
    time_zone: str | None = None,
    user: AbstractBaseUser | None = None,
    burst_limit: int | None = None,
    burst_window_minutes: int | None = None,
) -> Operator:
    operator = Operator.objects.create(
        name=name,
        is_active=is_active,
        max_open_contacts=max_open_contacts,
        status=status,
        time_zone=time_zone or default_time_zone(),
        user=user,
        burst_limit=burst_limit,
        burst_window_minutes=burst_window_minutes,
    )
    OperatorStatusChange.objects.create(
        operator=operator, status=status, changed_at=operator.status_changed_at
    )
    return operator


@transaction.atomic
def update_operator(
    *,
    operator: Operator,
    name: str | None = None,
    is_active: bool | None = None,
    max_open_contacts: int | None = None,
    status: str | None = None,
    time_zone: str | None = None,
    user: AbstractBaseUser | object | None = UNCHANGED,
    burst_limit: int | object | None = UNCHANGED,
    burst_window_minutes: int | object | None = UNCHANGED,
) -> Operator:
    """Change an operator (None leaves a field as it is; UNCHANGED the login and the
    burst settings, where None unlinks or falls back to the project's default); if that
    leaves it room, its waiting contacts come at once."""
    lock_operators(operator_ids=[operator.pk])
    locked = Operator.objects.get(pk=operator.pk)
    changes = {
        "name": name,
        "is_active": is_active,
        "max_open_contacts": max_open_contacts,
        "time_zone": time_zone,
    }
    for attribute, value in changes.items():
        if value is not None:
            setattr(locked, attribute, value)
    for attribute, value in [
        ("user", user),
        ("burst_limit", burst_limit),
        ("burst_window_minutes", burst_window_minutes),
    ]:
        if value is not UNCHANGED:
            setattr(locked, attribute, value)
    if status is not None:
        record_status(locked, status, now=timezone.now())
    try:
        with transaction.atomic():
            locked.save()
    except IntegrityError:
        raise Conflict(gettext("That login already belongs to another operator.")) from None
    if locked.is_active and locked.status == Operator.Status.AVAILABLE:
        drain_waiting_for_operator(operator_id=locked.pk, trigger="operator_updated")
    else:
        _withdraw_offers_after_commit(locked)
    return locked


@transaction.atomic
def set_operator_status(
    *, operator: Operator, status: str, now: datetime | None = None, reason: str = ""
) -> Operator:
    """Whether the operator takes new contacts. Away and offline keep their open ones
    and give back their pending offers; becoming available is capacity appearing: its
    waiting contacts come at once. `reason`: why, when the service changed it."""
    lock_operators(operator_ids=[operator.pk])
    # Read after the lock: an assignment made while it was held is earlier, so the
    # history says exactly when the operator stopped (or started) taking work.
    now = now or timezone.now()
    locked = Operator.objects.get(pk=operator.pk)
    if record_status(locked, status, now=now, reason=reason):
        locked.save(update_fields=["status", "status_changed_at"])
        if status == Operator.Status.AVAILABLE:
            drain_waiting_for_operator(operator_id=locked.pk, trigger="operator_available", now=now)
        else:
            _withdraw_offers_after_commit(locked)
    return locked


# The desk polls every few seconds; its heartbeat is written at most this often.
HEARTBEAT_EVERY = timedelta(seconds=15)


def note_desk_seen(*, operator: Operator, now: datetime | None = None) -> None:
    """The desk's heartbeat (Operator.seen_at): one conditional UPDATE, a write only
    every HEARTBEAT_EVERY, well inside PRESENCE_TIMEOUT."""
    now = now or timezone.now()
    Operator.objects.filter(
        Q(seen_at__isnull=True) | Q(seen_at__lt=now - HEARTBEAT_EVERY), pk=operator.pk
    ).update(seen_at=now)


def _withdraw_offers_after_commit(operator: Operator) -> None:
    """Requeue the operator's pending offers once it has stopped taking work. After the
    commit: offering them to others locks those operators, and this transaction holds
    this one's lock already (engine.lock_operators takes a transaction's locks in one
    call). The worker's expiry pass withdraws any this misses (a crash in between)."""
    transaction.on_commit(partial(withdraw_offers, operator_id=operator.pk))


@transaction.atomic
def set_operator_shifts(*, operator: Operator, shifts: Sequence[ShiftInterval]) -> list[Shift]:
    """Replace an operator's weekly shifts; one whose shift now runs takes its waiting
    contacts at once."""
    if any(shift.start == shift.end for shift in shifts) or overlaps(shifts):
        raise Conflict(gettext("Shifts must not be empty or overlap."))  # serializers say which
    lock_operators(operator_ids=[operator.pk])
    Shift.objects.filter(operator=operator).delete()
    Shift.objects.bulk_create(
        Shift(operator=operator, weekday=s.weekday, start=s.start, end=s.end) for s in shifts
    )
    _note_hours(operator)
    drain_waiting_for_operator(operator_id=operator.pk, trigger="shifts_changed")
    return list(Shift.objects.filter(operator=operator))


@transaction.atomic
def set_operator_days_off(*, operator: Operator, days_off: Sequence[DayOff]) -> None:
    """Replace an operator's days off (unsaved rows); one whose day off was taken back
    may take work at once."""
    lock_operators(operator_ids=[operator.pk])
    DayOff.objects.filter(operator=operator).delete()
    for day in days_off:
        day.pk, day.operator = None, operator
    DayOff.objects.bulk_create(days_off)
    _note_hours(operator)
    drain_waiting_for_operator(operator_id=operator.pk, trigger="shifts_changed")


def _note_hours(operator: Operator) -> None:
    """Operator.hours after its shifts or days off changed (under its lock)."""
    shifts = [
        ShiftInterval(s.weekday, s.start, s.end) for s in Shift.objects.filter(operator=operator)
    ]
    days_off = [
        DayOffRange(d.first_day, d.last_day) for d in DayOff.objects.filter(operator=operator)
    ]
    Operator.objects.filter(pk=operator.pk).update(hours=hours_text(shifts, days_off))


@transaction.atomic
def delete_operator(*, operator: Operator) -> None:
    """Delete an operator holding no open contacts; its closed ones keep their history."""
    # The engine takes this lock before assigning, so no contact opens for the operator
    # between the count and the delete.
    if not lock_operators(operator_ids=[operator.pk]):
        return
    held = Contact.objects.filter(operator=operator, status__in=Contact.LOAD_STATUSES).count()
    if held:
        raise Conflict(
            gettext("%(name)s has %(count)s open contacts: close or reassign them first.")
            % {"name": operator.name, "count": held}
        )
    Operator.objects.filter(pk=operator.pk).delete()


@transaction.atomic
def set_operator_weights(
    *, operator: Operator, weights: dict[int, int], since: datetime | None = None
) -> list[OperatorSourceWeight]:
    """Replace the whole weight list of an operator ({source_id: weight}, weights > 0).

    The operator's row lock keeps picks on its sources from seeing half of the change
    (the engine locks the same row before reading weights). If any weight was added
    or changed, the operator then takes the waiting contacts it can serve. A source new
    to the operator is joined at `since` (default now); a changed weight keeps its time.
    """
    joined = since or timezone.now()
    lock_operators(operator_ids=[operator.pk])
    before = dict(operator.weights.values_list("source_id", "weight"))
    known = set(Source.objects.filter(id__in=list(weights)).values_list("id", flat=True))
    if missing := set(weights) - known:
        raise Conflict(gettext("Unknown sources: %(ids)s.") % {"ids": sorted(missing)})
    operator.weights.exclude(source_id__in=list(weights)).delete()
    for source_id, weight in weights.items():
        OperatorSourceWeight.objects.update_or_create(
            operator=operator,
            source_id=source_id,
            defaults={"weight": weight},
            create_defaults={"weight": weight, "since": joined},
        )
    changed = [
        source_id for source_id, weight in weights.items() if before.get(source_id) != weight
    ]
    if changed:
        restart_round_robin(source_ids=changed)
        drain_waiting_for_operator(operator_id=operator.pk, trigger="weights_changed")
    return list(operator.weights.select_related("source").order_by("source_id"))
