"""The plain SQL of the intake's hot path: each statement beside its row mapping.

Plain SQL only where the ORM cost measurable CPU on every intake (the figures are in
bench/README.md): composing these statements took Django several times what
PostgreSQL takes to run them. Table and column names come from the models' `_meta`,
statuses and ids are parameters, and tests/test_queries.py holds each statement equal
to its ORM twin. Everything else reads through these functions, not around them.
"""

import functools
from collections.abc import Sequence
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection
from django.utils import timezone

from distribution.eligibility import OperatorState, with_given_in_window
from distribution.models import (
    Contact,
    ContactHistory,
    Operator,
    OperatorSourceWeight,
    OverflowWeight,
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
OVERFLOW_WEIGHT = _table(OverflowWeight)
CONTACT = _table(Contact)
HISTORY = _table(ContactHistory)
W_OPERATOR, W_SOURCE = (
    _column(OperatorSourceWeight, "operator"),
    _column(OperatorSourceWeight, "source"),
)
W_WEIGHT, W_CREDIT = (
    _column(OperatorSourceWeight, "weight"),
    _column(OperatorSourceWeight, "round_robin_credit"),
)
C_OPERATOR, C_LEAD = _column(Contact, "operator"), _column(Contact, "lead")
C_ASSIGNED_AT = _column(Contact, "assigned_at")
O_NAME, O_ACTIVE = _column(Operator, "name"), _column(Operator, "is_active")
O_LIMIT, O_LOAD = _column(Operator, "max_open_contacts"), _column(Operator, "open_load")
O_STATUS = _column(Operator, "status")
O_ZONE = _column(Operator, "time_zone")
O_HOURS = _column(Operator, "hours")
O_LAST_ASSIGNED = _column(Operator, "last_assigned_at")
O_BURST_LIMIT = _column(Operator, "burst_limit")
O_BURST_WINDOW = _column(Operator, "burst_window_minutes")
H_OPERATOR, H_AT, H_ACTION = (
    _column(ContactHistory, "operator"),
    _column(ContactHistory, "at"),
    _column(ContactHistory, "action"),
)


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


# Each operator with its load (Operator.open_load, kept under its row lock), its
# presence and hours (Operator.hours: its shifts and days off, kept on the row so no
# subquery reads them), its burst settings, and its weight and round-robin credit on
# one source (NULL where it is not on it), from the source's weights or, for overflow,
# its overflow weights (which keep no credit).
@functools.cache
def _states_statement(overflow: bool) -> str:
    weights = (
        f"LEFT JOIN {OVERFLOW_WEIGHT} w ON w.{W_OPERATOR} = o.id AND w.{W_SOURCE} = %s"
        if overflow
        else f"LEFT JOIN {WEIGHT} w ON w.{W_OPERATOR} = o.id AND w.{W_SOURCE} = %s"
    )
    credit = "0" if overflow else f"w.{W_CREDIT}"
    return f"""
    SELECT o.id, o.{O_NAME}, o.{O_ACTIVE}, o.{O_LIMIT}, o.{O_STATUS}, o.{O_ZONE},
           o.{O_LOAD}, o.{O_HOURS}, o.{O_LAST_ASSIGNED}, o.{O_BURST_LIMIT},
           o.{O_BURST_WINDOW}, w.{W_WEIGHT}, {credit}
      FROM {OPERATOR} o
      {weights}
    """


def operator_states(
    *,
    source_id: int | None,
    now: datetime,
    operator_ids: Sequence[int] | None = None,
    overflow: bool = False,
) -> list[OperatorState]:
    """The operators named (or, with None, every operator on the source), in id order,
    each with its load, presence and shift at `now`, its burst so far, and its weight
    on `source_id` (with `overflow`, its overflow weight).

    Read after the caller's lock: under READ COMMITTED a statement that starts after the
    lock sees what earlier lock holders committed. The load is the operator's stored
    load, not a count of its contacts, so the intake costs the same however many
    contacts are open; the hours ride along on the operator's row too.
    """
    params: list[object] = [source_id]
    if operator_ids is None:
        where = "w.id IS NOT NULL"
    elif not operator_ids:
        return []
    else:
        where = f"o.id IN ({_placeholders(operator_ids)})"
        params += operator_ids
    with connection.cursor() as cursor:
        cursor.execute(f"{_states_statement(overflow)} WHERE {where} ORDER BY o.id", params)
        rows = cursor.fetchall()
    states, windows = [], {}
    for row in rows:
        state, window = _state(row, now)
        states.append(state)
        if state.burst_limit is not None:
            windows[state.operator_id] = window
    if not windows:
        return states
    given = given_since({operator_id: now - window for operator_id, window in windows.items()})
    return [
        with_given_in_window(state, given.get(state.operator_id, 0))
        if state.operator_id in windows
        else state
        for state in states
    ]


def _state(row: tuple, now: datetime) -> tuple[OperatorState, timedelta]:
    """An operator's state from its row, and its burst window."""
    (
        operator_id, name, is_active, limit, status, zone, load, hours,
        last_assigned_at, burst_limit, burst_minutes, weight, credit,
    ) = row  # fmt: skip
    shifts, days_off = read_hours(hours)
    if burst_limit is None:
        burst_limit = settings.BURST_LIMIT
    window = timedelta(minutes=burst_minutes or settings.BURST_WINDOW_MINUTES)
    state = OperatorState(
        operator_id=operator_id,
        name=name,
        is_active=is_active,
        load=load,
        limit=limit,
        weight=weight,
        round_robin_credit=credit or 0,
        status=status,
        on_shift=is_on_shift(shifts=shifts, days_off=days_off, time_zone=zone, now=now),
        last_assigned_at=_as_datetime(last_assigned_at),
        burst_limit=burst_limit,
    )
    return state, window


def _as_datetime(value: object) -> datetime | None:
    """A datetime column read by a plain cursor (SQLite returns text)."""
    if value is None or isinstance(value, datetime):
        return value
    return Operator._meta.get_field("last_assigned_at").to_python(value)


_GIVEN_ACTIONS = [action.value for action in ContactHistory.GIVEN]


def given_since(cutoffs: dict[int, datetime]) -> dict[int, int]:
    """How many contacts each operator was given since its cutoff ({operator id: moment}),
    on the index history_given_by_operator."""
    actions = _placeholders(_GIVEN_ACTIONS)
    conditions = " OR ".join([f"({H_OPERATOR} = %s AND {H_AT} > %s)"] * len(cutoffs))
    at = ContactHistory._meta.get_field("at")
    params: list[object] = list(_GIVEN_ACTIONS)
    for operator_id, cutoff in cutoffs.items():
        params += [operator_id, at.get_db_prep_value(cutoff, connection)]
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {H_OPERATOR}, COUNT(*) FROM {HISTORY}"
            f" WHERE {H_ACTION} IN ({actions}) AND ({conditions}) GROUP BY {H_OPERATOR}",
            params,
        )
        return dict(cursor.fetchall())


def add_loads(deltas: dict[int, int], *, given_to: int | None, at: datetime) -> None:
    """Change operators' stored loads by `deltas` ({operator id: units}), and mark when
    `given_to` was last given a contact, in one UPDATE. The caller holds their locks."""
    deltas = {operator_id: units for operator_id, units in deltas.items() if units}
    ids = sorted(set(deltas) | ({given_to} if given_to is not None else set()))
    if not ids:
        return
    cases = " ".join(["WHEN %s THEN %s"] * len(deltas)) or "WHEN NULL THEN 0"
    params: list[object] = [value for pair in deltas.items() for value in pair]
    last = Operator._meta.get_field("last_assigned_at").get_db_prep_value(at, connection)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {OPERATOR} SET {O_LOAD} = {O_LOAD} + CASE id {cases} ELSE 0 END,"
            f" {O_LAST_ASSIGNED} = CASE WHEN id = %s THEN %s ELSE {O_LAST_ASSIGNED} END"
            f" WHERE id IN ({_placeholders(ids)})",
            [*params, given_to, last, *ids],
        )


# The operator a lead's last assigned contact went to since a moment, on the index
# contact_owner_by_lead. The intake reads it after find_or_create_lead locked the lead:
# a statement that starts after the lock sees the contact a racing intake of the same
# lead committed (one that waited on the lock inside this statement would not).
_OWNER = f"""
    SELECT c.{C_OPERATOR} FROM {CONTACT} c
     WHERE c.{C_LEAD} = %s AND c.{C_OPERATOR} IS NOT NULL AND c.{C_ASSIGNED_AT} >= %s
       AND c.id <> %s
     ORDER BY c.{C_ASSIGNED_AT} DESC LIMIT 1
"""


def lead_owner(
    *, lead_id: int, since: datetime, exclude_contact_id: int | None = None
) -> int | None:
    """The id of the operator the lead's last contact given since `since` went to
    (other than `exclude_contact_id`); None if none."""
    assigned_at = Contact._meta.get_field("assigned_at")
    with connection.cursor() as cursor:
        cursor.execute(
            _OWNER,
            [lead_id, assigned_at.get_db_prep_value(since, connection), exclude_contact_id or 0],
        )
        row = cursor.fetchone()
    return None if row is None else row[0]


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
    contact: Contact,
    *,
    history: ContactHistory,
    events: Sequence[NewEvent] = (),
    at: datetime,
) -> None:
    """Insert a new contact as save() would, converting each value the field's own way,
    with its first `history` step, its operator's load (Operator.open_load, under the
    lock the engine took) and its `events` (whose contact gets the new id): in one
    statement where the database allows (events.outbox.record_after_insert)."""
    values = [
        field.get_db_prep_save(field.pre_save(contact, add=True), connection)
        for field in _CONTACT_FIELDS
    ]
    companions = [
        (
            f"INSERT INTO {HISTORY} ({_HISTORY_COLUMNS})"
            f" SELECT new.id, {_placeholders(_HISTORY_FIELDS)} FROM new",
            _history_values(history),
        )
    ]
    if contact.operator_id is not None and contact.status in Contact.LOAD_STATUSES:
        last = Operator._meta.get_field("last_assigned_at").get_db_prep_value(at, connection)
        companions.append(
            (
                f"UPDATE {OPERATOR} SET {O_LOAD} = {O_LOAD} + %s, {O_LAST_ASSIGNED} = %s"
                " WHERE id = %s",
                [contact.load_units, last, contact.operator_id],
            )
        )
    contact.pk = record_after_insert(
        _INSERT_CONTACT,
        values,
        list(events),
        at=at,
        id_path=["contact", "id"],
        companions=companions,
    )
    history.contact_id = contact.pk
    contact._state.adding = False
    contact._state.db = connection.alias


# A history step's columns but the contact's, which comes first.
_HISTORY_FIELDS = [
    field
    for field in ContactHistory._meta.concrete_fields
    if not field.primary_key and field.name != "contact"
]
_HISTORY_COLUMNS = ", ".join(
    [_column(ContactHistory, "contact"), *(field.column for field in _HISTORY_FIELDS)]
)


def _history_values(step: ContactHistory) -> list[object]:
    return [
        field.get_db_prep_save(getattr(step, field.attname), connection)
        for field in _HISTORY_FIELDS
    ]


def insert_history(steps: Sequence[ContactHistory]) -> None:
    """Append history steps of existing contacts in one INSERT, with the columns and
    conversions the intake's insert uses."""
    if not steps:
        return
    row = f"({_placeholders(range(len(_HISTORY_FIELDS) + 1))})"
    params: list[object] = []
    for step in steps:
        params += [step.contact_id, *_history_values(step)]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {HISTORY} ({_HISTORY_COLUMNS}) VALUES {', '.join([row] * len(steps))}",
            params,
        )


_KEY_FIELDS = ["id", "source_id", "prefix", "key_hash"]
_SOURCE_FIELDS = [
    "id",
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
