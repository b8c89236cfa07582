"""The plain SQL of the intake's hot path: each statement beside its row mapping.

Plain SQL only where the ORM cost measurable CPU on every intake (the figures are in
bench/README.md): composing these statements took Django several times what
PostgreSQL takes to run them. Table and column names come from the models' `_meta`,
statuses and ids are parameters, and tests/test_queries.py holds each statement equal
to its ORM twin. Everything else reads through these functions, not around them.
"""

import functools
from collections.abc import Sequence
from datetime import datetime

from django.db import connection
from django.utils import timezone

from distribution.eligibility import OperatorState
from distribution.models import (
    Contact,
    Operator,
    OperatorSourceWeight,
    Source,
    SourceApiKey,
)
from distribution.shifts import is_on_shift, read_hours
from events.outbox import NewEvent, record_after_insert


def _table(model: type) -> str:
    return model._meta.db_table


def _column(model: type, name: str) -> str:
    return model._meta.get_field(name).column


OPERATOR = _table(Operator)
WEIGHT = _table(OperatorSourceWeight)
CONTACT = _table(Contact)
W_OPERATOR, W_SOURCE = (
    _column(OperatorSourceWeight, "operator"),
    _column(OperatorSourceWeight, "source"),
)
W_WEIGHT, W_CREDIT = (
    _column(OperatorSourceWeight, "weight"),
    _column(OperatorSourceWeight, "round_robin_credit"),
)
C_OPERATOR, C_STATUS = _column(Contact, "operator"), _column(Contact, "status")
O_NAME, O_ACTIVE = _column(Operator, "name"), _column(Operator, "is_active")
O_LIMIT = _column(Operator, "max_open_contacts")
O_STATUS = _column(Operator, "status")
O_ZONE = _column(Operator, "time_zone")
O_HOURS = _column(Operator, "hours")


def _placeholders(values: Sequence[object]) -> str:
    return ", ".join(["%s"] * len(values))


def lock_operators(*, operator_ids: Sequence[int], source_id: int | None) -> list[int]:
    """Row-lock these operators and every operator on `source_id`, in id order; their ids.

    The one statement that takes operator locks (engine.lock_operators calls it): one
    order for every flow, so no two transactions wait on each other in a circle. SQLite
    has no row locks: its IMMEDIATE transactions serialise the writers instead.
    """
    conditions, params = [], []
    if operator_ids:
        conditions.append(f"o.id IN ({_placeholders(operator_ids)})")
        params += operator_ids
    if source_id is not None:
        conditions.append(f"o.id IN (SELECT {W_OPERATOR} FROM {WEIGHT} WHERE {W_SOURCE} = %s)")
        params.append(source_id)
    if not conditions:
        return []
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    statement = f"SELECT o.id FROM {OPERATOR} o WHERE {' OR '.join(conditions)} ORDER BY o.id{lock}"
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return [operator_id for (operator_id,) in cursor.fetchall()]


# Each operator with its load (open and offered contacts, counted on the partial index
# contact_load_by_operator),
# its presence and hours (Operator.hours: its shifts and days off, kept on the row so no
# subquery reads them), and its weight and round-robin credit on one source (NULL where
# it is not on it).
@functools.cache
def _states_statement() -> str:
    return f"""
    SELECT o.id, o.{O_NAME}, o.{O_ACTIVE}, o.{O_LIMIT}, o.{O_STATUS}, o.{O_ZONE},
           (SELECT COUNT(*) FROM {CONTACT} c
             WHERE c.{C_OPERATOR} = o.id AND c.{C_STATUS} IN (%s, %s)),
           o.{O_HOURS},
           w.{W_WEIGHT}, w.{W_CREDIT}
      FROM {OPERATOR} o
      LEFT JOIN {WEIGHT} w ON w.{W_OPERATOR} = o.id AND w.{W_SOURCE} = %s
    """


def operator_states(
    *, source_id: int | None, now: datetime, operator_ids: Sequence[int] | None = None
) -> list[OperatorState]:
    """The operators named (or, with None, every operator on the source), in id order,
    each with its load, presence and shift at `now` and its weight on `source_id`.

    Read after the caller's lock: under READ COMMITTED a statement that starts after the
    lock sees what earlier lock holders committed. The ORM took about 1.5 ms of CPU to
    compose the load and weight alone (a join and a subquery), ten times what running
    it costs; the hours ride along on the operator's row.
    """
    params: list[object] = [*(status.value for status in Contact.LOAD_STATUSES), source_id]
    if operator_ids is None:
        where = "w.id IS NOT NULL"
    elif not operator_ids:
        return []
    else:
        where = f"o.id IN ({_placeholders(operator_ids)})"
        params += operator_ids
    with connection.cursor() as cursor:
        cursor.execute(f"{_states_statement()} WHERE {where} ORDER BY o.id", params)
        rows = cursor.fetchall()
    return [_state(row, now) for row in rows]


def _state(row: tuple, now: datetime) -> OperatorState:
    operator_id, name, is_active, limit, status, zone, load, hours, weight, credit = row
    shifts, days_off = read_hours(hours)
    return OperatorState(
        operator_id=operator_id,
        name=name,
        is_active=is_active,
        load=load,
        limit=limit,
        weight=weight,
        round_robin_credit=credit or 0,
        status=status,
        on_shift=is_on_shift(shifts=shifts, days_off=days_off, time_zone=zone, now=now),
    )


def database_now() -> datetime:
    """The database's clock: offers' deadlines are set and compared by it, so app hosts
    whose clocks differ agree on when an offer expired. SQLite is embedded: the host's."""
    if connection.vendor != "postgresql":
        return timezone.now()
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement_timestamp()")
        (now,) = cursor.fetchone()
    return now


def operator_of(state: OperatorState) -> Operator:
    """The Operator row a state was read from, without reading it again."""
    return Operator.from_db(
        connection.alias,
        ["id", "name", "is_active", "max_open_contacts", "status"],
        [state.operator_id, state.name, state.is_active, state.limit, state.status],
    )


def save_round_robin_credits(*, source_id: int, credits: dict[int, int]) -> None:
    """Store operators' round-robin credits on a source ({operator id: credit}) in one
    UPDATE: the CASE statement bulk_update writes, which it spent about 1.3 ms composing."""
    if not credits:
        return
    cases = " ".join(["WHEN %s THEN %s"] * len(credits))
    params = [value for pair in credits.items() for value in pair]
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {WEIGHT} SET {W_CREDIT} = CASE {W_OPERATOR} {cases} END"
            f" WHERE {W_SOURCE} = %s AND {W_OPERATOR} IN ({_placeholders(credits)})",
            [*params, source_id, *credits],
        )


# Every column but the id, in the model's order: the statement save() sends, written
# once here because composing it took save() about 0.1 ms of CPU per contact.
_CONTACT_FIELDS = [field for field in Contact._meta.concrete_fields if not field.primary_key]
_INSERT_CONTACT = (
    f"INSERT INTO {CONTACT} ({', '.join(f.column for f in _CONTACT_FIELDS)})"
    f" VALUES ({_placeholders(_CONTACT_FIELDS)}) RETURNING id"
)


def insert_contact(
    contact: Contact, events: Sequence[NewEvent] = (), at: datetime | None = None
) -> None:
    """Insert a new contact as save() would, converting each value the field's own way;
    with its `events` (whose contact gets the new id), in the same statement where the
    database allows (events.outbox.record_after_insert)."""
    values = [
        field.get_db_prep_save(field.pre_save(contact, add=True), connection)
        for field in _CONTACT_FIELDS
    ]
    if events:
        contact.pk = record_after_insert(
            _INSERT_CONTACT, values, list(events), at=at, id_path=["contact", "id"]
        )
    else:
        with connection.cursor() as cursor:
            cursor.execute(_INSERT_CONTACT, values)
            (contact.pk,) = cursor.fetchone()
    contact._state.adding = False
    contact._state.db = connection.alias


_KEY_FIELDS = ["id", "source_id", "prefix", "key_hash"]
_SOURCE_FIELDS = [
    "id",
    "code",
    "name",
    "is_active",
    "strategy",
    "accept_timeout_seconds",
    "max_offers",
]
# The live key with its source, in one statement: composing it through the ORM (a join,
# a filter, first()) took about 0.8 ms of CPU, and every bot request checks a key.
_SOURCE_KEY = f"""
    SELECT {", ".join(f"k.{_column(SourceApiKey, f)}" for f in _KEY_FIELDS)},
           {", ".join(f"s.{_column(Source, f)}" for f in _SOURCE_FIELDS[1:])}
      FROM {_table(SourceApiKey)} k
      JOIN {_table(Source)} s ON s.id = k.{_column(SourceApiKey, "source")}
     WHERE k.{_column(SourceApiKey, "prefix")} = %s
       AND k.{_column(SourceApiKey, "revoked_at")} IS NULL
"""


def live_source_key(prefix: str) -> SourceApiKey | None:
    """The key row with this prefix, not revoked, with its `source`; None if there is none."""
    with connection.cursor() as cursor:
        cursor.execute(_SOURCE_KEY, [prefix])
        row = cursor.fetchone()
    if row is None:
        return None
    key_id, source_id, prefix, key_hash, *source = row
    api_key = SourceApiKey.from_db(
        connection.alias, _KEY_FIELDS, [key_id, source_id, prefix, key_hash]
    )
    api_key.source = Source.from_db(connection.alias, _SOURCE_FIELDS, [source_id, *source])
    return api_key
