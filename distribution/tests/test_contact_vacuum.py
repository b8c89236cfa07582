import pytest
from django.db import connection

pytestmark = pytest.mark.django_db


@pytest.mark.skipif(connection.vendor != "postgresql", reason="a PostgreSQL table setting")
def test_contacts_are_vacuumed_once_one_percent_of_them_changed():
    """Closed contacts leave dead entries in the open-contacts index that every load
    count walks past until a vacuum (migration leads 0004)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT reloptions FROM pg_class WHERE relname = 'leads_contact'")
        (options,) = cursor.fetchone()

    assert "autovacuum_vacuum_scale_factor=0.01" in options
