"""The table of the database cache (settings.CACHES), where bots' throttles count for
every worker and host.

Made here so that whatever migrates the database has it: the entrypoint, `make run`, the
benchmark and the drills, and the tests. Configured as it is when the migration runs:
with REDIS_URL set there is no table to make; a deployment that moves to the database
cache later runs `manage.py createcachetable` (the entrypoint does, after migrating).
"""

from django.core.management import call_command
from django.db import migrations


def create_cache_table(apps, schema_editor) -> None:
    call_command("createcachetable", database=schema_editor.connection.alias, verbosity=0)


class Migration(migrations.Migration):
    dependencies = [("distribution", "0012_sourceapikey_last_used_at")]

    # Left in place when unapplied: it holds only counts that may be lost.
    operations = [migrations.RunPython(create_cache_table, migrations.RunPython.noop)]
