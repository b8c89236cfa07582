"""Contact and IdempotencyKey now belong to the distribution app (distribution.0003).

Only Django's picture of the models changes: the tables, their rows, indexes and
constraints stay as they are, under their old names.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("leads", "0004_contact_autovacuum")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name="IdempotencyKey"),
                migrations.DeleteModel(name="Contact"),
            ],
            database_operations=[],
        )
    ]
