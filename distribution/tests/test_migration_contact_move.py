"""The move of Contact and IdempotencyKey from leads to distribution (leads.0005,
distribution.0003) keeps an existing database's rows, ids and permissions."""

import pytest
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("leads", "0004_contact_autovacuum"), ("distribution", "0002_sourceapikey")]
AFTER = [
    ("leads", "0005_contact_moves_to_distribution"),
    ("distribution", "0003_contact_idempotencykey"),
]


def migrate(targets: list[tuple[str, str]]):
    """Migrate to `targets`; the models as they stood there."""
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.fixture
def previous_schema(transactional_db):
    old = migrate(BEFORE)
    yield old
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


def seed_previous(old) -> dict:
    """A database as the previous release left it: contacts in the leads app."""
    # The previous release knew these models only under leads.
    ContentType.objects.filter(app_label="distribution", model="contact").delete()
    ContentType.objects.clear_cache()
    contact_type, _ = ContentType.objects.get_or_create(app_label="leads", model="contact")
    permission, _ = Permission.objects.get_or_create(
        codename="change_contact", content_type=contact_type, defaults={"name": "Can change"}
    )
    operator = old.get_model("distribution", "Operator").objects.create(name="Ivan")
    source = old.get_model("distribution", "Source").objects.create(code="tg", name="Telegram")
    lead = old.get_model("leads", "Lead").objects.create(external_id="ext-1")
    contacts = old.get_model("leads", "Contact")
    waiting = contacts.objects.create(lead=lead, source=source, payload={"text": "Привет"})
    open_contact = contacts.objects.create(
        lead=lead, source=source, operator=operator, status="open", assigned_at=waiting.created_at
    )
    old.get_model("leads", "IdempotencyKey").objects.create(
        source=source, key="msg-1", fingerprint="f" * 64, contact=open_contact
    )
    return {
        "waiting": waiting.pk,
        "open": open_contact.pk,
        "operator": operator.pk,
        "permission": permission.pk,
    }


def test_moving_contacts_to_distribution_keeps_every_row_and_permission(previous_schema):
    ids = seed_previous(previous_schema)

    new = migrate(AFTER)

    contacts = new.get_model("distribution", "Contact")
    assert sorted(contacts.objects.values_list("id", "status", "operator_id")) == [
        (ids["waiting"], "waiting", None),
        (ids["open"], "open", ids["operator"]),
    ]
    assert contacts.objects.get(pk=ids["waiting"]).payload == {"text": "Привет"}
    key = new.get_model("distribution", "IdempotencyKey").objects.get()
    assert (key.key, key.contact_id) == ("msg-1", ids["open"])
    permission = Permission.objects.get(pk=ids["permission"])
    assert (permission.content_type.app_label, permission.content_type.model) == (
        "distribution",
        "contact",
    )


def test_moving_contacts_back_restores_the_previous_schema(previous_schema):
    ids = seed_previous(previous_schema)
    migrate(AFTER)

    old = migrate(BEFORE)

    contacts = old.get_model("leads", "Contact")
    assert sorted(contacts.objects.values_list("id", flat=True)) == sorted(
        [ids["waiting"], ids["open"]]
    )
    assert ContentType.objects.filter(app_label="leads", model="contact").exists()
