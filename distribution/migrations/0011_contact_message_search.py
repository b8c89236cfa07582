"""A trigram index on contacts' messages for lead search, on PostgreSQL only.

An index on the expression `UPPER(payload ->> 'text')`, the very expression the search
compares (distribution.api.filters.MessageText under `icontains`), rather than a stored
column: a column would rewrite the whole contact table under an exclusive lock when
added, store every message twice and be one more value each intake writes; the
expression index is built CONCURRENTLY beside the intake (about 20 s for a million
contacts) and needs no change to the model. It is not in Contact.Meta.indexes because
Django cannot create it on SQLite, where the search scans.
"""

from django.db import migrations

INDEX = "contact_message_trigram"


def create_index(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        table = apps.get_model("distribution", "Contact")._meta.db_table
        schema_editor.execute(
            f"CREATE INDEX CONCURRENTLY {INDEX} ON {table} "
            "USING gin (UPPER((payload ->> 'text')) gin_trgm_ops)"
        )


def drop_index(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY runs outside a transaction

    dependencies = [
        ("distribution", "0010_weight_since"),
        ("leads", "0007_lead_search_trigram"),  # pg_trgm
    ]

    operations = [migrations.RunPython(create_index, drop_index)]
