"""Contact and IdempotencyKey move here from the leads app, tables and rows untouched.

The engine's whole job is a contact's status and operator, so the model lives with the
engine. The tables keep their names (`db_table`), so this changes only Django's
picture of the models (leads.0005 removes them from leads); no row is copied. The
content types move too, so permissions and admin history follow the models.
"""

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models

MOVED = ["contact", "idempotencykey"]


def move_content_types(apps, schema_editor, *, source: str, target: str) -> None:
    content_types = apps.get_model("contenttypes", "ContentType")
    # A model already known under the target (made by a later post_migrate) keeps its own.
    taken = content_types.objects.filter(app_label=target).values_list("model", flat=True)
    content_types.objects.filter(app_label=source, model__in=MOVED).exclude(
        model__in=list(taken)
    ).update(app_label=target)


def to_distribution(apps, schema_editor):
    move_content_types(apps, schema_editor, source="leads", target="distribution")


def to_leads(apps, schema_editor):
    move_content_types(apps, schema_editor, source="distribution", target="leads")


class Migration(migrations.Migration):
    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("distribution", "0002_sourceapikey"),
        ("leads", "0005_contact_moves_to_distribution"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="Contact",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        (
                            "status",
                            models.CharField(
                                choices=[
                                    ("waiting", "Waiting for an operator"),
                                    ("open", "Open"),
                                    ("closed", "Closed"),
                                ],
                                default="waiting",
                                max_length=16,
                            ),
                        ),
                        ("payload", models.JSONField(blank=True, default=dict)),
                        ("decision", models.JSONField(blank=True, default=dict)),
                        ("lead_conflicts", models.JSONField(blank=True, default=list)),
                        ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                        ("assigned_at", models.DateTimeField(blank=True, null=True)),
                        ("closed_at", models.DateTimeField(blank=True, null=True)),
                        (
                            "operator",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="contacts",
                                to="distribution.operator",
                            ),
                        ),
                        (
                            "source",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="contacts",
                                to="distribution.source",
                            ),
                        ),
                        (
                            "lead",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="contacts",
                                to="leads.lead",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "leads_contact",
                        "ordering": ["-created_at", "-id"],
                        "indexes": [
                            models.Index(
                                condition=models.Q(("status", "open")),
                                fields=["operator"],
                                name="contact_open_by_operator",
                            ),
                            models.Index(
                                condition=models.Q(("status", "waiting")),
                                fields=["source", "created_at", "id"],
                                name="contact_waiting_by_source",
                            ),
                            models.Index(
                                fields=["source", "assigned_at", "operator"],
                                name="contact_assigned_by_source",
                            ),
                            models.Index(fields=["created_at"], name="contact_created_at"),
                            models.Index(
                                condition=models.Q(("operator__isnull", False)),
                                fields=["assigned_at", "source", "operator", "id"],
                                name="contact_assigned_at",
                            ),
                        ],
                        "constraints": [
                            models.CheckConstraint(
                                condition=models.Q(("status__in", ["waiting", "open", "closed"])),
                                name="contact_status_known",
                            ),
                            models.CheckConstraint(
                                condition=models.Q(
                                    models.Q(("status", "waiting"), _negated=True),
                                    models.Q(
                                        ("assigned_at__isnull", True),
                                        ("operator__isnull", True),
                                    ),
                                    _connector="OR",
                                ),
                                name="contact_waiting_has_no_operator",
                            ),
                            models.CheckConstraint(
                                condition=models.Q(
                                    models.Q(("status", "open"), _negated=True),
                                    models.Q(
                                        ("assigned_at__isnull", False),
                                        ("operator__isnull", False),
                                    ),
                                    _connector="OR",
                                ),
                                name="contact_open_has_operator",
                            ),
                            models.CheckConstraint(
                                condition=models.Q(
                                    models.Q(("status", "closed"), _negated=True),
                                    ("closed_at__isnull", False),
                                    _connector="OR",
                                ),
                                name="contact_closed_has_closed_at",
                            ),
                        ],
                    },
                ),
                migrations.CreateModel(
                    name="IdempotencyKey",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        ("key", models.CharField(max_length=255)),
                        ("fingerprint", models.CharField(max_length=64)),
                        ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                        (
                            "contact",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="+",
                                to="distribution.contact",
                            ),
                        ),
                        (
                            "source",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="+",
                                to="distribution.source",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "leads_idempotencykey",
                        "indexes": [
                            models.Index(fields=["created_at"], name="idempotency_key_created_at")
                        ],
                        "constraints": [
                            models.UniqueConstraint(
                                fields=("source", "key"), name="idempotency_key_per_source"
                            )
                        ],
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(to_distribution, to_leads),
    ]
