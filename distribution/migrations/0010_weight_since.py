"""OperatorSourceWeight.since: when the operator joined the source.

Rows that exist already get the later of their operator's and their source's created_at:
the pair cannot be older than either, so no contact the operator could have had by the
weights is left out of its share. For a pair set up with its operator or source (the
common case) that is the true time; for one added later it is too early, and the report
measures that pair as it did before (over the whole period), never worse. The migration
time instead would say that every operator joined today, and leave every share empty
for a week after the upgrade.
"""

import django.utils.timezone
from django.db import migrations, models
from django.db.models import OuterRef, Subquery
from django.db.models.functions import Greatest


def fill_since(apps, schema_editor) -> None:
    weights = apps.get_model("distribution", "OperatorSourceWeight")
    operators = apps.get_model("distribution", "Operator")
    sources = apps.get_model("distribution", "Source")
    weights.objects.update(
        since=Greatest(
            Subquery(operators.objects.filter(pk=OuterRef("operator_id")).values("created_at")),
            Subquery(sources.objects.filter(pk=OuterRef("source_id")).values("created_at")),
        )
    )


class Migration(migrations.Migration):
    dependencies = [
        ("distribution", "0009_active_label"),
    ]

    operations = [
        migrations.AddField(
            model_name="operatorsourceweight",
            name="since",
            field=models.DateTimeField(default=django.utils.timezone.now, editable=False),
        ),
        migrations.RunPython(fill_since, migrations.RunPython.noop),
    ]
