"""Hostile intake bodies from hypothesis, sent by a bot: huge strings, deep nesting,
any unicode, huge numbers, wrong types anywhere, bodies that are not JSON at all.
Every answer is 2xx or 4xx with a JSON object body, never a 5xx, and what is refused
stores nothing.

Bounded and derandomized, like the schemathesis run: the same examples every time.
"""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from distribution.models import Contact
from tests.factories import OperatorFactory, OperatorSourceWeightFactory, SourceFactory

FUZZ = settings(
    max_examples=150,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
# 403: a bot naming a source other than its own.
ANSWERS = {200, 201, 400, 403, 409, 413}

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**400), max_value=10**400)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=12,
)


def nested(depth: int) -> object:
    value: object = "bottom"
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


# Strings around the field limits and around the body limit (256 KiB by default).
huge_strings = st.sampled_from([129, 255, 256, 5_000, 200_000, 300_000]).map(lambda n: "я" * n)
hostile = json_values | huge_strings | st.integers(1, 80).map(nested)
phones = st.sampled_from(
    [
        "+79161234567",
        "8 916 123-45-67",
        "+1",
        "0" * 64,
        "+7916\u0661\u0662\u0663\u0664\u0665\u0666\u0667",
    ]
)
emails = st.sampled_from(["a@example.com", "@", "a@b", "x" * 250 + "@example.com"])
leads = st.fixed_dictionaries(
    {},
    optional={
        "external_id": st.text() | hostile,
        "phone": phones | hostile,
        "email": emails | hostile,
        "name": st.text() | hostile,
    },
)
bodies = st.fixed_dictionaries(
    {},
    optional={
        "source": st.sampled_from(["bot", "other", "bot\x00"]) | hostile,
        "lead": leads | hostile,
        "payload": st.dictionaries(st.text(), hostile, max_size=4) | hostile,
        "client_message_id": st.sampled_from(["m-1", "m-2"]) | hostile,
    },
)

# Valid enough to reach the database, with hostile text and payloads.
stored_bodies = st.fixed_dictionaries(
    {
        "lead": st.fixed_dictionaries(
            {"phone": st.sampled_from(["+79161234567", "8 916 765-43-21"])},
            optional={"name": st.text(max_size=200), "external_id": st.text(max_size=128)},
        ),
        "payload": st.dictionaries(st.text(), hostile, max_size=4),
    },
    optional={"client_message_id": st.text(min_size=1, max_size=255)},
)


@pytest.fixture
def bot(db, bot_client, settings):
    # Hypothesis sends far more than the per-source rate a real bot is allowed.
    settings.API_BOT_THROTTLE_RATE = "1000000/min"
    source = SourceFactory(code="bot")
    SourceFactory(code="other")
    OperatorSourceWeightFactory(source=source, operator=OperatorFactory(max_open_contacts=3))
    return bot_client(source)


def send(client, body: bytes):
    return client.generic("POST", "/api/contacts/", body, content_type="application/json")


def assert_clean_answer(response, contacts_before: int) -> None:
    assert response.status_code in ANSWERS, response.content[:500]
    assert isinstance(response.json(), dict)
    if response.status_code >= 400:
        assert Contact.objects.count() == contacts_before


@FUZZ
@given(body=stored_bodies | bodies | json_values)
def test_generated_bodies_get_a_clean_answer(bot, body):
    before = Contact.objects.count()

    response = send(bot, json.dumps(body).encode())

    assert_clean_answer(response, before)


@FUZZ
@given(body=st.binary(max_size=2_000) | st.text().map(str.encode))
def test_bodies_that_are_not_json_get_a_clean_answer(bot, body):
    before = Contact.objects.count()

    response = send(bot, body)

    assert_clean_answer(response, before)


def test_a_body_over_the_limit_is_413_with_a_detail(bot, settings):
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    body = json.dumps({"lead": {"phone": "+79161234567"}, "payload": {"text": "x" * limit}})

    response = send(bot, body.encode())

    assert response.status_code == 413
    assert response.json() == {"detail": f"The request body is over the limit of {limit} bytes."}
    assert not Contact.objects.exists()
