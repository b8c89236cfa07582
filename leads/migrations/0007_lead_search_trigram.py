"""A trigram index for lead search (Lead.Meta.indexes), on PostgreSQL only.

pg_trgm comes with PostgreSQL (a trusted extension since 13: the database's owner may
create it). The index is built CONCURRENTLY, so intake goes on inserting leads while it
is built (about 2 s for 200,000 leads). SQLite has neither: the state records the index
everywhere, and the search scans there.
"""

from django.contrib.postgres.indexes import GinIndex, OpClass
from django.contrib.postgres.operations import AddIndexConcurrently, TrigramExtension
from django.db import migrations
from django.db.models.functions import Upper


def on_postgresql(schema_editor) -> bool:
    return schema_editor.connection.vendor == "postgresql"


class CreateTrigramExtension(TrigramExtension):
    """Kept on the way back: other indexes, or another app, may use it."""

    def database_backwards(self, app_label, schema_editor, from_state, to_state) -> None:
        pass


class AddTrigramIndex(AddIndexConcurrently):
    def database_forwards(self, app_label, schema_editor, from_state, to_state) -> None:
        if on_postgresql(schema_editor):
            super().database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state) -> None:
        if on_postgresql(schema_editor):
            super().database_backwards(app_label, schema_editor, from_state, to_state)


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY runs outside a transaction

    dependencies = [("leads", "0006_field_messages")]

    operations = [
        CreateTrigramExtension(),
        AddTrigramIndex(
            model_name="lead",
            index=GinIndex(
                OpClass(Upper("external_id"), name="gin_trgm_ops"),
                OpClass(Upper("phone"), name="gin_trgm_ops"),
                OpClass(Upper("email"), name="gin_trgm_ops"),
                OpClass(Upper("name"), name="gin_trgm_ops"),
                name="lead_search_trigram",
            ),
        ),
    ]
