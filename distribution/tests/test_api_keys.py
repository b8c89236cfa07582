import hashlib
from io import StringIO

import pytest
from django.core.cache import cache
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from distribution.models import Contact, SourceApiKey
from distribution.sources import create_source_key, revoke_source_key
from tests.factories import SourceApiKeyFactory, SourceFactory

pytestmark = pytest.mark.django_db

CONTACT = {"lead": {"phone": "+79161234567"}}


def client_with(authorization: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=authorization)
    return client


def test_a_key_is_stored_only_as_a_hash():
    api_key, key = create_source_key(source=SourceFactory(), name="bot host")

    stored = SourceApiKey.objects.get(pk=api_key.pk)
    assert stored.key_hash == hashlib.sha256(key.encode()).hexdigest()
    assert key.startswith(f"{stored.prefix}.")
    assert key not in {stored.prefix, stored.key_hash, stored.name}


def test_a_bot_key_sends_contacts_for_its_source():
    source = SourceFactory()
    api_key = SourceApiKeyFactory(source=source, key="0123456789ab.secret-part")

    response = client_with("Bearer 0123456789ab.secret-part").post("/api/contacts/", CONTACT)

    assert response.status_code == 201
    assert Contact.objects.get(pk=response.data["id"]).source == api_key.source


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer",
        "Bearer two parts",
        "Bearer not-a-key",
        "Bearer 0123456789ab.wrong-secret",
        "Bearer ffffffffffff.secret-part",
        "Token not-a-token",
    ],
)
def test_bad_credentials_get_401_with_a_challenge(authorization):
    SourceApiKeyFactory(key="0123456789ab.secret-part")

    response = client_with(authorization).post("/api/contacts/", CONTACT)

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    assert set(response.data) == {"detail"}
    assert not Contact.objects.exists()


def test_a_revoked_key_stops_working_at_once():
    source = SourceFactory()
    api_key, key = create_source_key(source=source)
    bot = client_with(f"Bearer {key}")
    assert bot.get("/api/contacts/").status_code == 200

    revoke_source_key(api_key=api_key)

    assert bot.get("/api/contacts/").status_code == 401


def test_a_source_keeps_working_on_its_other_key_while_one_is_rotated():
    source = SourceFactory()
    old, old_key = create_source_key(source=source)
    _, new_key = create_source_key(source=source)

    revoke_source_key(api_key=old)

    assert client_with(f"Bearer {old_key}").get("/api/contacts/").status_code == 401
    assert client_with(f"Bearer {new_key}").get("/api/contacts/").status_code == 200


def test_revoking_twice_keeps_the_first_time():
    api_key, _ = create_source_key(source=SourceFactory())
    first = revoke_source_key(api_key=api_key).revoked_at

    assert revoke_source_key(api_key=api_key).revoked_at == first


def test_bots_are_throttled_per_source_with_retry_after(settings, bot_client):
    settings.API_BOT_THROTTLE_RATE = "2/min"
    cache.clear()
    source = SourceFactory()
    first_key, second_key = bot_client(source), bot_client(source)
    other_source = bot_client(SourceFactory())

    statuses = [first_key.get("/api/contacts/").status_code for _ in range(2)]
    throttled = second_key.get("/api/contacts/")

    assert statuses == [200, 200]
    assert throttled.status_code == 429
    assert int(throttled["Retry-After"]) > 0
    assert set(throttled.data) == {"detail"}
    assert other_source.get("/api/contacts/").status_code == 200


def test_staff_are_not_throttled(settings, api):
    settings.API_BOT_THROTTLE_RATE = "1/min"
    cache.clear()

    assert [api.get("/api/contacts/").status_code for _ in range(3)] == [200, 200, 200]


def test_create_source_key_command_prints_only_a_working_key():
    source = SourceFactory(code="site-form")
    out = StringIO()

    call_command("create_source_key", "site-form", "--name", "web", stdout=out)

    key = out.getvalue().strip()
    assert "\n" not in key
    stored = SourceApiKey.objects.get(source=source)
    assert (stored.name, key.split(".")[0]) == ("web", stored.prefix)
    assert client_with(f"Bearer {key}").post("/api/contacts/", CONTACT).status_code == 201


def test_create_source_key_command_refuses_an_unknown_source():
    with pytest.raises(CommandError, match="No source has the code 'nope'"):
        call_command("create_source_key", "nope", stdout=StringIO())

    assert not SourceApiKey.objects.exists()


@pytest.fixture
def admin_client_logged_in(client, django_user_model):
    admin = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(admin)
    return client


def test_admin_shows_a_new_key_once_and_stores_its_hash(admin_client_logged_in):
    source = SourceFactory()

    response = admin_client_logged_in.post(
        "/admin/distribution/sourceapikey/add/",
        {"source": source.pk, "name": "telegram host"},
        follow=True,
    )

    assert response.status_code == 200
    stored = SourceApiKey.objects.get(source=source)
    [message] = [m.message for m in response.context["messages"] if "Copy it now" in m.message]
    key = message.split("<code>")[1].split("</code>")[0]
    assert stored.key_hash == hashlib.sha256(key.encode()).hexdigest()
    page = admin_client_logged_in.get(f"/admin/distribution/sourceapikey/{stored.pk}/change/")
    assert key not in page.content.decode()


def test_admin_revoke_action_stops_the_keys(admin_client_logged_in):
    api_key, key = create_source_key(source=SourceFactory())

    response = admin_client_logged_in.post(
        "/admin/distribution/sourceapikey/",
        {"action": "revoke", "_selected_action": [api_key.pk]},
        follow=True,
    )

    assert response.status_code == 200
    api_key.refresh_from_db()
    assert api_key.is_revoked
    assert client_with(f"Bearer {key}").get("/api/contacts/").status_code == 401
