"""The plain SQL of the intake's lead match: each statement with its row mapping.

Plain SQL only where composing the ORM query cost measurable CPU on every intake (see
bench/README.md); tests/test_queries.py holds each statement equal to its ORM twin.
Table and column names come from the model, values are parameters.
"""

from datetime import datetime

from django.db import connection

from leads.identity import IDENTIFIER_FIELDS
from leads.models import Lead

_TABLE = Lead._meta.db_table
# What matching needs of a lead (its created_at is left to load when asked for).
MATCH_FIELDS = ["id", "external_id", "phone", "email", "name"]
_COLUMNS = {name: Lead._meta.get_field(name).column for name in MATCH_FIELDS}
INSERT_FIELDS = ["external_id", "phone", "email", "name", "created_at"]


def leads_with_any(identifiers: dict[str, str]) -> list[Lead]:
    """The leads that have any of these identifiers ({"phone": "+7...", ...}), locked in
    id order until the caller's transaction ends where the database has row locks: two
    contacts of one lead are then taken one after the other, and the second sees what
    the first stored (its operator, for sticky sources).

    About 0.5 ms of CPU less than composing the same OR of filters."""
    unknown = set(identifiers) - set(IDENTIFIER_FIELDS)
    if unknown:  # column names come from this dict's keys: never from input
        raise ValueError(f"Not identifiers: {sorted(unknown)}")
    conditions = " OR ".join(f"{_COLUMNS[name]} = %s" for name in identifiers)
    columns = ", ".join(_COLUMNS[name] for name in MATCH_FIELDS)
    with connection.cursor() as cursor:
        lock = " ORDER BY id FOR UPDATE" if connection.features.has_select_for_update else ""
        cursor.execute(
            f"SELECT {columns} FROM {_TABLE} WHERE {conditions}{lock}",
            list(identifiers.values()),
        )
        return [Lead.from_db(connection.alias, MATCH_FIELDS, row) for row in cursor.fetchall()]


# ON CONFLICT DO NOTHING: when a racing request inserted one of the identifiers first,
# nothing is written and nothing fails, so the intake's transaction needs no savepoint
# (two round trips) to recover from an IntegrityError. PostgreSQL and SQLite 3.35+.
INSERT_LEAD = (
    f"INSERT INTO {_TABLE} ({', '.join(Lead._meta.get_field(f).column for f in INSERT_FIELDS)})"
    f" VALUES ({', '.join(['%s'] * len(INSERT_FIELDS))}) ON CONFLICT DO NOTHING RETURNING id"
)


def insert_lead(
    *, external_id: str | None, phone: str | None, email: str | None, name: str, now: datetime
) -> Lead | None:
    """A new lead; None when a racing request inserted one of its identifiers first."""
    values = [external_id, phone, email, name]
    with connection.cursor() as cursor:
        cursor.execute(INSERT_LEAD, [*values, connection.ops.adapt_datetimefield_value(now)])
        row = cursor.fetchone()
    if row is None:
        return None
    return Lead.from_db(connection.alias, ["id", *INSERT_FIELDS], [row[0], *values, now])
