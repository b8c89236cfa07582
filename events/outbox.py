"""Writing events: only inside the transaction of the change they describe, so an event
exists exactly when its change was committed."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection

from events.models import Event


@dataclass(frozen=True)
class NewEvent:
    type: str
    data: dict[str, Any]
    scope: str = ""  # the source code whose bot may read it


_FIELDS = [Event._meta.get_field(name) for name in ("type", "occurred_at", "scope", "data")]
_INSERT = (
    f"INSERT INTO {Event._meta.db_table} ({', '.join(field.column for field in _FIELDS)}) VALUES "
)
_ROW = f"({', '.join(['%s'] * len(_FIELDS))})"


def record(events: list[NewEvent], *, at: datetime) -> None:
    """Insert the events in one statement, in the caller's transaction.

    Plain SQL because every intake writes here: 0.15 ms of client CPU against 0.40 ms
    for bulk_create (`python -m bench.statements`; events/tests/test_outbox.py holds the
    rows equal to its).
    """
    if not connection.in_atomic_block:
        raise RuntimeError("Events are written in the transaction of their change.")
    if not events:
        return
    occurred_at, data = _FIELDS[1], _FIELDS[3]
    at_value = occurred_at.get_db_prep_value(at, connection)
    params: list[object] = []
    for event in events:
        params += [
            event.type,
            at_value,
            event.scope,
            data.get_db_prep_value(event.data, connection),
        ]
    with connection.cursor() as cursor:
        cursor.execute(_INSERT + ", ".join([_ROW] * len(events)), params)


def record_after_insert(
    insert: str,
    params: list[object],
    events: list[NewEvent],
    *,
    at: datetime,
    id_path: list[str],
    companions: Sequence[tuple[str, list[object]]] = (),
) -> int:
    """Run `insert` (an INSERT ... RETURNING id) and record `events`, whose data get the
    new row's id at `id_path`; the new id. `companions`: more writes of the same change
    (statement, params), each of which may read the new id as `new.id` (`FROM new`).

    On PostgreSQL in one statement, the insert and the companions in CTEs: the intake
    writes its contact, its operator's load, its history and its events in one round
    trip (the contact and events alone: 0.24 ms of client CPU against 0.34 ms for two
    statements, `python -m bench.statements`, and a round trip less). Elsewhere one
    statement each.
    """
    if not connection.in_atomic_block:
        raise RuntimeError("Events are written in the transaction of their change.")
    if connection.vendor != "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(insert, params)
            (new_id,) = cursor.fetchone()
            for statement, companion_params in companions:
                cursor.execute(
                    f"WITH new(id) AS (SELECT %s) {statement}", [new_id, *companion_params]
                )
        for event in events:
            _at_path(event.data, id_path, new_id)
        record(events, at=at)
        return new_id
    values: list[object] = [*params]
    for _, companion_params in companions:
        values += companion_params
    more = "".join(
        f", companion_{number} AS ({statement})" for number, (statement, _) in enumerate(companions)
    )
    if not events:
        with connection.cursor() as cursor:
            cursor.execute(f"WITH new AS ({insert}){more} SELECT id FROM new", values)
            (new_id,) = cursor.fetchone()
        return new_id
    columns = ", ".join(field.column for field in _FIELDS)
    rows = ", ".join(["(%s, %s, %s::jsonb, %s)"] * len(events))
    statement = (
        f"WITH new AS ({insert}){more} INSERT INTO {Event._meta.db_table} ({columns})"
        f" SELECT e.type, %s, e.scope, jsonb_set(e.data, %s::text[], to_jsonb(new.id))"
        f" FROM new, (VALUES {rows}) AS e(type, scope, data, n) ORDER BY e.n"
        f" RETURNING (SELECT id FROM new)"
    )
    data = _FIELDS[3]
    values += [_FIELDS[1].get_db_prep_value(at, connection), id_path]
    for number, event in enumerate(events):
        values += [event.type, event.scope, data.get_db_prep_value(event.data, connection), number]
    with connection.cursor() as cursor:
        cursor.execute(statement, values)
        (new_id,) = cursor.fetchone()
    return new_id


def _at_path(data: dict[str, Any], path: list[str], value: object) -> None:
    for key in path[:-1]:
        data = data[key]
    data[path[-1]] = value
