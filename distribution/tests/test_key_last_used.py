"""A source API key shows when it was last used, stored at most once a minute per key
(issue 14), with a frozen clock."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from distribution.api import authentication
from distribution.api.authentication import note_key_use
from distribution.models import SourceApiKey
from distribution.sources import create_source_key
from tests.factories import SourceFactory

pytestmark = pytest.mark.django_db

NOON = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def fresh_process():
    """Each test starts as a process that has noted no key's use yet."""
    authentication._key_use_noted.clear()
    yield
    authentication._key_use_noted.clear()


@pytest.fixture
def api_key() -> SourceApiKey:
    return create_source_key(source=SourceFactory(code="site"))[0]


def stored(api_key: SourceApiKey) -> datetime | None:
    return SourceApiKey.objects.get(pk=api_key.pk).last_used_at


def test_a_new_key_was_never_used(api_key):
    assert stored(api_key) is None


def test_the_first_use_is_stored(api_key):
    note_key_use(api_key.pk, now=NOON)

    assert stored(api_key) == NOON


def test_uses_within_the_minute_send_nothing_to_the_database(api_key, django_assert_num_queries):
    note_key_use(api_key.pk, now=NOON)

    with django_assert_num_queries(0):
        note_key_use(api_key.pk, now=NOON + timedelta(seconds=30))
        note_key_use(api_key.pk, now=NOON + timedelta(seconds=59))

    assert stored(api_key) == NOON


def test_a_use_after_the_minute_is_stored(api_key, django_assert_num_queries):
    note_key_use(api_key.pk, now=NOON)

    with django_assert_num_queries(1):
        note_key_use(api_key.pk, now=NOON + timedelta(seconds=61))

    assert stored(api_key) == NOON + timedelta(seconds=61)


def test_another_process_does_not_write_within_the_minute_either(api_key):
    note_key_use(api_key.pk, now=NOON)
    authentication._key_use_noted.clear()  # as another process, which has noted nothing

    note_key_use(api_key.pk, now=NOON + timedelta(seconds=40))

    assert stored(api_key) == NOON


def test_each_key_is_noted_on_its_own(api_key):
    other = create_source_key(source=api_key.source)[0]
    note_key_use(api_key.pk, now=NOON)

    note_key_use(other.pk, now=NOON + timedelta(seconds=10))

    assert (stored(api_key), stored(other)) == (NOON, NOON + timedelta(seconds=10))


def test_a_bots_requests_store_its_keys_use_once_a_minute(bot_client):
    source = SourceFactory(code="telegram-bot")
    bot = bot_client(source)
    api_key = SourceApiKey.objects.get(source=source)

    with CaptureQueriesContext(connection) as first:
        assert bot.get("/api/contacts/").status_code == 200
    used = stored(api_key)
    with CaptureQueriesContext(connection) as second:
        assert bot.get("/api/contacts/").status_code == 200

    assert used is not None
    assert stored(api_key) == used
    assert [updates(first), updates(second)] == [1, 0]


def updates(queries: CaptureQueriesContext) -> int:
    """Statements that wrote a key's row."""
    table = connection.ops.quote_name(SourceApiKey._meta.db_table)
    return sum(query["sql"].startswith(f"UPDATE {table}") for query in queries.captured_queries)


def test_a_refused_key_stores_nothing(client):
    api_key, key = create_source_key(source=SourceFactory())

    response = client.get("/api/contacts/", HTTP_AUTHORIZATION=f"Bearer {key}x")

    assert response.status_code == 401
    assert stored(api_key) is None


def test_the_key_list_shows_when_each_key_was_last_used(admin_client, api_key):
    unused = create_source_key(source=api_key.source, name="spare")[0]
    SourceApiKey.objects.filter(pk=api_key.pk).update(last_used_at=NOON)

    response = admin_client.get(reverse("admin:distribution_sourceapikey_changelist"))

    rows = {row.pk: row for row in response.context["cl"].result_list}
    assert set(rows) == {api_key.pk, unused.pk}
    page = response.content.decode()
    assert "Last used" in page
    assert "never" in page
    assert "March 2, 2026, noon" in page
