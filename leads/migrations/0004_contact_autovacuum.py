"""Vacuum leads_contact after 1% of its rows changed, not PostgreSQL's default 20%.

Closing a contact leaves a dead entry in the partial index of open contacts
(`contact_open_by_operator`) until the table is vacuumed, and every load count under
an operator's lock walks past those entries: in `make bench`, a few hundred of them per
operator made the count cost 2 ms of PostgreSQL's CPU, more than the rest of an
intake. With the default scale factor a table of a million contacts waits for 200,000
changes before it is vacuumed. SQLite has no vacuum settings; nothing to do there.
"""

from django.db import migrations

SCALE_FACTOR = "autovacuum_vacuum_scale_factor"


def set_scale_factor(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"ALTER TABLE leads_contact SET ({SCALE_FACTOR} = 0.01)")


def reset_scale_factor(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"ALTER TABLE leads_contact RESET ({SCALE_FACTOR})")


class Migration(migrations.Migration):
    dependencies = [("leads", "0003_idempotency_key")]

    operations = [migrations.RunPython(set_scale_factor, reset_scale_factor)]
