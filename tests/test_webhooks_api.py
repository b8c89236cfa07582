"""Webhook endpoints through /api/webhooks/ and the admin: the secret shown once,
field-level refusals, staff only; deliveries with their attempts, and "Send again"."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from events.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from tests.factories import (
    SourceFactory,
    UserFactory,
    WebhookDeliveryFactory,
    WebhookEndpointFactory,
)

pytestmark = pytest.mark.django_db

ENDPOINTS = reverse("admin:events_webhookendpoint_changelist")
DELIVERIES = reverse("admin:events_webhookdelivery_changelist")


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def test_create_returns_the_secret_once_and_stores_the_endpoint(api):
    SourceFactory(code="tg")

    response = api.post(
        "/api/webhooks/",
        {
            "url": "https://hooks.example.com/crm",
            "sources": ["tg"],
            "event_types": ["contact.assigned", "contact.closed"],
            "description": "CRM sync",
        },
    )

    assert response.status_code == 201
    endpoint = WebhookEndpoint.objects.get()
    assert response.data["secret"] == endpoint.secret
    assert response.data["secret"].startswith("whsec_")
    assert (endpoint.url, endpoint.sources, endpoint.event_types, endpoint.is_active) == (
        "https://hooks.example.com/crm",
        ["tg"],
        ["contact.assigned", "contact.closed"],
        True,
    )
    listed = api.get("/api/webhooks/").data["results"]
    read = api.get(f"/api/webhooks/{endpoint.pk}/").data
    assert "secret" not in listed[0] and "secret" not in read
    assert endpoint.secret not in str(listed) + str(read)


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"url": "ftp://hooks.example.com/"}, "url", "Use an http:// or https:// URL."),
        ({"url": "not a url"}, "url", "Enter a valid URL."),
        ({"sources": ["tg", "nope"]}, "sources", "No such source: nope."),
        ({"event_types": ["contact.exploded"]}, "event_types", "is not a valid choice"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(api, body, field, message):
    SourceFactory(code="tg")

    response = api.post("/api/webhooks/", {"url": "https://hooks.example.com/", **body})

    assert response.status_code == 400
    assert message in str(response.json()[field])
    assert not WebhookEndpoint.objects.exists()


def test_a_private_address_is_refused_with_production_rules(api, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE = False

    response = api.post("/api/webhooks/", {"url": "http://169.254.169.254/latest/"})

    assert response.status_code == 400
    assert "public addresses only" in response.json()["url"][0]
    assert not WebhookEndpoint.objects.exists()


def test_update_changes_the_filters_and_retries_at_once(api):
    SourceFactory(code="site")
    endpoint = WebhookEndpointFactory(
        failures=4, next_attempt_at=timezone.now() + timedelta(hours=1)
    )

    response = api.patch(f"/api/webhooks/{endpoint.pk}/", {"sources": ["site"], "is_active": False})

    assert response.status_code == 200
    assert "secret" not in response.data
    endpoint.refresh_from_db()
    assert (endpoint.sources, endpoint.is_active, endpoint.failures) == (["site"], False, 0)
    assert endpoint.next_attempt_at <= timezone.now()


def test_delete_removes_the_endpoint_with_its_deliveries(api):
    delivery = WebhookDeliveryFactory()

    response = api.delete(f"/api/webhooks/{delivery.endpoint_id}/")

    assert response.status_code == 204
    assert not WebhookEndpoint.objects.exists()
    assert not WebhookDelivery.objects.exists()


def test_only_staff_may_touch_webhooks(bot_client):
    endpoint = WebhookEndpointFactory()
    operator = APIClient()
    operator.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=UserFactory())}")
    bot = bot_client(SourceFactory())

    for client in (operator, bot):
        assert client.get("/api/webhooks/").status_code == 403
        assert client.get(f"/api/webhooks/{endpoint.pk}/").status_code == 403
        assert client.post("/api/webhooks/", {"url": "https://x.example/"}).status_code == 403
        assert client.delete(f"/api/webhooks/{endpoint.pk}/").status_code == 403
    assert APIClient().get("/api/webhooks/").status_code == 401
    assert WebhookEndpoint.objects.get() == endpoint


def test_the_admin_shows_the_secret_once_after_creating_an_endpoint(admin_client):
    SourceFactory(code="tg")
    SourceFactory(code="site")
    add = reverse("admin:events_webhookendpoint_add")
    page = admin_client.get(add).content.decode()
    assert 'value="tg"' in page and 'value="contact.offer_expired"' in page

    response = admin_client.post(
        add,
        {"url": "https://hooks.example.com/", "sources": ["tg"], "event_types": ["contact.closed"]},
        follow=True,
    )

    endpoint = WebhookEndpoint.objects.get()
    assert (endpoint.sources, endpoint.event_types) == (["tg"], ["contact.closed"])
    [message] = [m for m in messages_of(response) if endpoint.secret in m]
    assert "not shown again" in message
    change = reverse("admin:events_webhookendpoint_change", args=[endpoint.pk])
    for url in (ENDPOINTS, change):
        assert endpoint.secret not in admin_client.get(url).content.decode()


def test_the_admin_refuses_a_private_address_and_an_unknown_source(admin_client, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE = False

    response = admin_client.post(
        reverse("admin:events_webhookendpoint_add"),
        {"url": "http://127.0.0.1:5432/", "sources": ["nope"]},
    )

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "public addresses only" in errors["url"][0]
    assert "not one of the available choices" in errors["sources"][0]
    assert not WebhookEndpoint.objects.exists()


def test_the_admin_shows_a_deliverys_attempts_and_sends_it_again(admin_client):
    delivery = WebhookDeliveryFactory(status="failed", attempts=1)
    WebhookAttempt.objects.create(
        delivery=delivery,
        at=timezone.now(),
        status_code=None,
        duration_ms=5000,
        error="TimeoutError",
    )
    page = admin_client.get(reverse("admin:events_webhookdelivery_change", args=[delivery.pk]))
    assert "TimeoutError" in page.content.decode()
    assert delivery.webhook_id in page.content.decode()

    response = admin_client.post(
        DELIVERIES, {"action": "send_again", "_selected_action": [delivery.pk]}, follow=True
    )

    assert messages_of(response) == ["1 delivery(ies) will be sent again."]
    delivery.refresh_from_db()
    assert delivery.status == "pending"


def test_the_delivery_list_filters_by_endpoint_and_status(admin_client):
    mine = WebhookDeliveryFactory(status="failed")
    WebhookDeliveryFactory(status="failed")
    WebhookDeliveryFactory(endpoint=mine.endpoint, status="delivered")

    response = admin_client.get(
        DELIVERIES, {"endpoint__id__exact": mine.endpoint_id, "status__exact": "failed"}
    )

    assert [d.pk for d in response.context["cl"].result_list] == [mine.pk]
