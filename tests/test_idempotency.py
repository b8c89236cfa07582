"""Idempotent intake: a bot's retry with the same key returns the first contact and
makes nothing; concurrent retries of one key make exactly one contact."""

from collections import Counter
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from distribution.models import Contact, IdempotencyKey
from leads.models import Lead
from tests.factories import (
    OperatorFactory,
    OperatorSourceWeightFactory,
    SourceFactory,
    StaffUserFactory,
)
from tests.test_concurrency import THREADS, run_at_once

BODY = {"source": "bot", "lead": {"phone": "+79161234567"}, "payload": {"text": "Hi"}}


@pytest.fixture
def source(db):
    source = SourceFactory(code="bot")
    OperatorSourceWeightFactory(source=source, operator=OperatorFactory(max_open_contacts=1))
    return source


def post(client: APIClient, body: dict, key: str | None = None):
    headers = {"Idempotency-Key": key} if key is not None else {}
    return client.post("/api/contacts/", body, format="json", headers=headers)


def test_a_retry_with_the_same_key_returns_the_first_contact(api, source):
    first = post(api, BODY, key="msg-1")
    retry = post(api, BODY, key="msg-1")

    assert first.status_code == 201
    assert retry.status_code == 200
    assert retry.json() == first.json()
    assert Contact.objects.count() == 1
    assert Lead.objects.count() == 1


def test_client_message_id_works_as_the_key(api, source):
    body = {**BODY, "client_message_id": "tg-100500"}

    assert post(api, body).status_code == 201
    assert post(api, body).status_code == 200
    assert Contact.objects.count() == 1
    assert IdempotencyKey.objects.get().key == "tg-100500"


def test_a_retry_spelling_the_phone_another_way_is_the_same_request(api, source):
    post(api, BODY, key="msg-1")
    retry = post(api, {**BODY, "lead": {"phone": "8 (916) 123-45-67"}}, key="msg-1")

    assert retry.status_code == 200
    assert Contact.objects.count() == 1


def test_the_same_key_with_another_body_is_409_and_stores_nothing(api, source):
    post(api, BODY, key="msg-1")
    other = post(api, {**BODY, "payload": {"text": "Another message"}}, key="msg-1")

    assert other.status_code == 409
    assert set(other.json()) == {"detail"}
    assert Contact.objects.count() == 1


def test_keys_are_unique_per_source_not_across_sources(api, source):
    SourceFactory(code="other")

    assert post(api, BODY, key="msg-1").status_code == 201
    assert post(api, {**BODY, "source": "other"}, key="msg-1").status_code == 201
    assert Contact.objects.count() == 2


def test_a_bot_and_staff_share_their_sources_keys(api, source, bot_client):
    first = post(api, BODY, key="msg-1")
    retry = post(bot_client(source), BODY, key="msg-1")

    assert retry.status_code == 200
    assert retry.json()["id"] == first.json()["id"]


def test_an_expired_key_can_be_used_again(api, source, settings):
    post(api, BODY, key="msg-1")
    settings.IDEMPOTENCY_KEY_TTL = timedelta(0)

    again = post(api, {**BODY, "payload": {"text": "A new message"}}, key="msg-1")

    assert again.status_code == 201
    assert Contact.objects.count() == 2
    assert IdempotencyKey.objects.get().contact_id == again.json()["id"]


def test_purge_deletes_only_expired_keys(api, source, settings):
    post(api, BODY, key="old")
    IdempotencyKey.objects.update(created_at=IdempotencyKey.objects.get().created_at - timedelta(2))
    post(api, BODY, key="new")
    settings.IDEMPOTENCY_KEY_TTL = timedelta(days=1)

    call_command("purge_idempotency_keys")

    assert list(IdempotencyKey.objects.values_list("key", flat=True)) == ["new"]
    assert Contact.objects.count() == 2


@pytest.mark.parametrize(
    ("headers", "body", "field"),
    [
        ({"Idempotency-Key": "x" * 256}, BODY, "Idempotency-Key"),
        ({"Idempotency-Key": "tab\there"}, BODY, "Idempotency-Key"),
        ({"Idempotency-Key": "a"}, {**BODY, "client_message_id": "b"}, "client_message_id"),
        ({}, {**BODY, "client_message_id": ""}, "client_message_id"),
        ({}, {**BODY, "client_message_id": "new\nline"}, "client_message_id"),
    ],
)
def test_bad_keys_are_400(api, source, headers, body, field):
    response = api.post("/api/contacts/", body, format="json", headers=headers)

    assert response.status_code == 400
    assert field in response.json()
    assert not Contact.objects.exists()


def test_a_request_without_a_key_never_reads_the_keys(api, source):
    with CaptureQueriesContext(connection) as captured:
        assert post(api, BODY).status_code == 201

    assert not [q for q in captured.captured_queries if IdempotencyKey._meta.db_table in q["sql"]]


@pytest.fixture
def token(transactional_db) -> str:
    return Token.objects.create(user=StaffUserFactory()).key


def post_with_key(token: str, key: str, external_id: str) -> Callable[[], int]:
    def task() -> int:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
        body = {"source": "bot-idem", "lead": {"external_id": external_id}}
        return post(client, body, key=key).status_code

    return task


@pytest.mark.concurrency
@pytest.mark.django_db(transaction=True)
def test_concurrent_retries_of_one_key_make_one_contact(token):
    source = SourceFactory(code="bot-idem")
    OperatorSourceWeightFactory(source=source, operator=OperatorFactory(max_open_contacts=100))

    statuses = run_at_once([post_with_key(token, "same", "lead-1") for _ in range(THREADS)])

    assert Counter(statuses) == {201: 1, 200: THREADS - 1}
    assert Contact.objects.count() == 1
    assert IdempotencyKey.objects.get().contact == Contact.objects.get()


@pytest.mark.concurrency
@pytest.mark.django_db(transaction=True)
def test_concurrent_retries_of_many_keys_make_one_contact_each(token):
    source = SourceFactory(code="bot-idem")
    OperatorSourceWeightFactory(source=source, operator=OperatorFactory(max_open_contacts=3))
    keys = 8
    tasks = [post_with_key(token, f"key-{n % keys}", f"lead-{n % keys}") for n in range(128)]

    statuses = run_at_once(tasks)

    assert Counter(statuses) == {201: keys, 200: 128 - keys}
    assert Contact.objects.count() == keys
    assert Contact.objects.filter(status=Contact.Status.OPEN).count() == 3
    assert sorted(IdempotencyKey.objects.values_list("key", flat=True)) == sorted(
        f"key-{n}" for n in range(keys)
    )
