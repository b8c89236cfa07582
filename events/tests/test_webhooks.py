"""Webhooks: the fan-out, signed delivery to a real receiver on 127.0.0.1, order, backoff,
giving up, sending again and the private-address rule. Time is passed in: no sleeping."""

import base64
import socket
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from events import webhooks
from events.addresses import validate_webhook_url
from events.models import Event, WebhookDelivery, WebhookEndpoint
from events.webhooks import claim, deliver_webhooks, dispatch_events, send_again
from tests.factories import EventFactory, WebhookDeliveryFactory, WebhookEndpointFactory
from tests.receiver import Receiver

pytestmark = pytest.mark.django_db

SECOND = timedelta(seconds=1)


@pytest.fixture
def receiver():
    receiver = Receiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture
def backoff(settings):
    settings.WEBHOOK_BACKOFF_BASE = timedelta(seconds=10)
    settings.WEBHOOK_BACKOFF_CAP = timedelta(seconds=60)
    settings.WEBHOOK_RETRY_FOR = timedelta(hours=24)


def statuses() -> list[str]:
    return list(WebhookDelivery.objects.order_by("event_id").values_list("status", flat=True))


def test_a_new_secret_is_whsec_and_at_least_24_random_bytes():
    first, second = WebhookEndpointFactory(), WebhookEndpointFactory()

    assert first.secret.startswith("whsec_")
    assert len(base64.b64decode(first.secret.removeprefix("whsec_"))) >= 24
    assert first.secret != second.secret


def test_dispatch_makes_a_delivery_for_each_endpoint_whose_filters_match():
    everything = WebhookEndpointFactory()
    telegram_closed = WebhookEndpointFactory(sources=["tg"], event_types=["contact.closed"])
    site = WebhookEndpointFactory(sources=["site"])
    WebhookEndpointFactory(is_active=False)
    created_tg = EventFactory(type="contact.created", scope="tg")
    closed_tg = EventFactory(type="contact.closed", scope="tg")
    closed_site = EventFactory(type="contact.closed", scope="site")
    status = EventFactory(type="operator.status_changed", scope="")
    later = WebhookEndpointFactory(created_at=timezone.now() + SECOND)

    assert dispatch_events(timezone.now()) == 4

    made = set(WebhookDelivery.objects.values_list("endpoint_id", "event_id"))
    assert made == {
        (everything.pk, created_tg.pk),
        (everything.pk, closed_tg.pk),
        (everything.pk, closed_site.pk),
        (everything.pk, status.pk),
        (telegram_closed.pk, closed_tg.pk),
        (site.pk, closed_site.pk),
    }
    assert not WebhookDelivery.objects.filter(endpoint=later).exists()
    assert not Event.objects.filter(dispatched_at__isnull=True).exists()
    assert dispatch_events(timezone.now()) == 0
    assert WebhookDelivery.objects.count() == 6


def test_an_event_committed_after_a_bigger_id_was_dispatched_is_dispatched_too():
    endpoint = WebhookEndpointFactory()
    smaller, bigger = EventFactory(), EventFactory()
    # As if the transaction of `smaller` committed after the fan-out had taken `bigger`.
    Event.objects.filter(pk=bigger.pk).update(dispatched_at=timezone.now())

    assert dispatch_events(timezone.now()) == 1

    assert list(endpoint.deliveries.values_list("event_id", flat=True)) == [smaller.pk]


def test_dispatch_goes_through_events_in_batches(monkeypatch):
    monkeypatch.setattr(webhooks, "DISPATCH_BATCH", 2)
    WebhookEndpointFactory()
    EventFactory.create_batch(5)

    assert dispatch_events(timezone.now()) == 5
    assert WebhookDelivery.objects.count() == 5


def test_a_delivery_is_signed_as_standard_webhooks_and_recorded(receiver):
    endpoint = WebhookEndpointFactory(url=receiver.url)
    event = EventFactory(type="contact.closed", data={"contact": {"id": 7}})
    dispatch_events(timezone.now())
    now = timezone.now()

    assert deliver_webhooks(now) == 1

    [request] = receiver.received
    assert request.verify(endpoint.secret) == event.as_body()
    delivery = WebhookDelivery.objects.get()
    assert request.webhook_id == delivery.webhook_id == f"msg_{delivery.pk}"
    assert (delivery.status, delivery.attempts, delivery.delivered_at) == ("delivered", 1, now)
    [attempt] = delivery.tries.all()
    assert (attempt.at, attempt.status_code, attempt.error) == (now, 204, "")
    assert attempt.duration_ms >= 0


def test_a_signature_with_another_secret_does_not_verify(receiver):
    WebhookEndpointFactory(url=receiver.url)
    EventFactory()
    dispatch_events(timezone.now())
    deliver_webhooks(timezone.now())

    with pytest.raises(Exception, match="No matching signature"):
        receiver.received[0].verify(WebhookEndpointFactory().secret)


def test_an_endpoints_deliveries_go_in_event_order(receiver):
    endpoint = WebhookEndpointFactory(url=receiver.url)
    events = EventFactory.create_batch(4)
    for event in reversed(events):
        WebhookDeliveryFactory(endpoint=endpoint, event=event)

    assert deliver_webhooks(timezone.now()) == 4

    assert [request.event_id for request in receiver.received] == [e.pk for e in events]


def test_a_failing_endpoint_backs_off_exponentially_and_holds_later_events(receiver, backoff):
    endpoint = WebhookEndpointFactory(url=receiver.url)
    first, second = (WebhookDeliveryFactory(endpoint=endpoint) for _ in range(2))
    receiver.answers = [500, 503, 500]
    now = timezone.now()

    assert deliver_webhooks(now) == 1  # fails: the next one waits behind it
    assert deliver_webhooks(now + 9 * SECOND) == 0
    assert deliver_webhooks(now + 10 * SECOND) == 1  # fails again: 20 s
    assert deliver_webhooks(now + 29 * SECOND) == 0
    assert deliver_webhooks(now + 30 * SECOND) == 1  # and again: 40 s
    endpoint.refresh_from_db()
    assert (endpoint.failures, endpoint.next_attempt_at) == (3, now + 70 * SECOND)
    assert deliver_webhooks(now + 70 * SECOND) == 2  # both delivered, in order

    assert [r.webhook_id for r in receiver.received] == [first.webhook_id] * 4 + [second.webhook_id]
    assert [a.status_code for a in first.tries.all()] == [500, 503, 500, 204]
    assert statuses() == ["delivered", "delivered"]
    endpoint.refresh_from_db()
    assert endpoint.failures == 0


def test_the_backoff_stops_growing_at_its_cap(backoff):
    assert [webhooks.backoff(n).seconds for n in (1, 2, 3, 4, 5, 100)] == [10, 20, 40, 60, 60, 60]


def test_a_refused_connection_is_recorded_as_an_error(backoff):
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    delivery = WebhookDeliveryFactory(endpoint__url=f"http://127.0.0.1:{port}/")

    assert deliver_webhooks(timezone.now()) == 1

    [attempt] = delivery.tries.all()
    assert attempt.status_code is None
    assert "ConnectionRefusedError" in attempt.error
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("pending", 1)


def test_a_redirect_is_not_followed(receiver):
    delivery = WebhookDeliveryFactory(endpoint__url=receiver.url)
    receiver.answers = [302]

    deliver_webhooks(timezone.now())

    assert len(receiver.received) == 1
    assert [a.status_code for a in delivery.tries.all()] == [302]
    delivery.refresh_from_db()
    assert delivery.status == "pending"


def test_deliveries_are_given_up_a_day_after_they_were_made(receiver, backoff):
    endpoint = WebhookEndpointFactory(url=receiver.url)
    made = timezone.now()
    old = [WebhookDeliveryFactory(endpoint=endpoint, created_at=made) for _ in range(2)]
    young = WebhookDeliveryFactory(endpoint=endpoint, created_at=made + timedelta(hours=2))
    receiver.answers = [500, 500]

    deliver_webhooks(made + timedelta(hours=23))
    assert statuses() == ["pending", "pending", "pending"]
    deliver_webhooks(made + timedelta(hours=24))

    # Both old ones gave up (the second never tried: it is past its day too).
    assert statuses() == ["failed", "failed", "pending"]
    assert [d.tries.count() for d in old] == [2, 0]
    assert deliver_webhooks(made + timedelta(hours=24, minutes=5)) == 1
    young.refresh_from_db()
    assert young.status == "delivered"


def test_a_receiver_down_for_an_hour_loses_nothing(receiver, settings):
    settings.WEBHOOK_BACKOFF_BASE = timedelta(seconds=5)
    settings.WEBHOOK_BACKOFF_CAP = timedelta(minutes=10)
    endpoint = WebhookEndpointFactory(url=receiver.url)
    start = timezone.now()
    for minute in range(0, 60, 5):
        EventFactory(occurred_at=start + timedelta(minutes=minute))
    receiver.answers = [503] * 1000
    now = start
    while now < start + timedelta(hours=1):
        dispatch_events(now)
        deliver_webhooks(now)
        now += 30 * SECOND

    receiver.answers = []
    now += settings.WEBHOOK_BACKOFF_CAP
    dispatch_events(now)
    deliver_webhooks(now)

    assert statuses() == ["delivered"] * 12
    delivered = {r.event_id for r in receiver.received if r.verify(endpoint.secret)}
    assert delivered == set(Event.objects.values_list("id", flat=True))


def test_send_again_sends_a_delivered_one_now_with_the_same_webhook_id(receiver, backoff):
    delivery = WebhookDeliveryFactory(endpoint__url=receiver.url)
    now = timezone.now()
    deliver_webhooks(now)

    resent = send_again(delivery=delivery, now=now + SECOND)
    assert (resent.status, resent.delivered_at) == ("pending", None)
    assert deliver_webhooks(now + SECOND) == 1

    assert [r.webhook_id for r in receiver.received] == [delivery.webhook_id] * 2
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("delivered", 2)


def test_send_again_does_not_wait_for_the_endpoints_backoff(receiver, backoff):
    delivery = WebhookDeliveryFactory(endpoint__url=receiver.url)
    receiver.answers = [500]
    now = timezone.now()
    deliver_webhooks(now)

    send_again(delivery=delivery, now=now + SECOND)

    assert deliver_webhooks(now + SECOND) == 1
    delivery.refresh_from_db()
    assert delivery.status == "delivered"


def test_a_leased_endpoint_is_not_claimed_again_until_its_lease_runs_out(settings):
    settings.WEBHOOK_LEASE = timedelta(seconds=30)
    endpoint = WebhookDeliveryFactory().endpoint
    now = timezone.now()

    lease = claim(endpoint.pk, now)

    assert lease == now + 30 * SECOND
    assert claim(endpoint.pk, now + 29 * SECOND) is None
    assert deliver_webhooks(now + 29 * SECOND) == 0
    # A worker killed mid-send: after the lease another sends it.
    assert claim(endpoint.pk, now + 30 * SECOND) == now + 60 * SECOND


def test_a_worker_whose_lease_ran_out_does_not_release_anothers(receiver):
    delivery = WebhookDeliveryFactory(endpoint__url=receiver.url)
    now = timezone.now()
    stale = claim(delivery.endpoint_id, now)
    current = claim(delivery.endpoint_id, stale)

    webhooks.attempt(webhooks.next_delivery(delivery.endpoint_id), stale, stale)

    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.leased_until == current


def test_idle_passes_cost_a_query_each(django_assert_num_queries):
    WebhookDeliveryFactory(status="delivered")
    EventFactory(dispatched_at=timezone.now())

    with django_assert_num_queries(1):
        assert deliver_webhooks(timezone.now()) == 0
    with django_assert_num_queries(1):
        assert dispatch_events(timezone.now()) == 0


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/hook",
        "http://localhost/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "http://[::ffff:10.0.0.1]/hook",
        "http://[fe80::1]/hook",
        "http://0.0.0.0/hook",
    ],
)
def test_private_addresses_are_refused_when_not_allowed(settings, url):
    settings.WEBHOOKS_ALLOW_PRIVATE = False

    with pytest.raises(ValidationError, match="public addresses only"):
        validate_webhook_url(url)


def test_public_addresses_are_accepted_and_private_ones_when_allowed(settings):
    settings.WEBHOOKS_ALLOW_PRIVATE = False
    validate_webhook_url("https://93.184.215.14/hook")
    settings.WEBHOOKS_ALLOW_PRIVATE = True
    validate_webhook_url("http://127.0.0.1/hook")
    with pytest.raises(ValidationError, match="http:// or https://"):
        validate_webhook_url("ftp://93.184.215.14/hook")


def test_a_private_address_is_refused_again_at_send_time(receiver, settings):
    delivery = WebhookDeliveryFactory(endpoint__url=receiver.url)  # saved while allowed
    settings.WEBHOOKS_ALLOW_PRIVATE = False

    assert deliver_webhooks(timezone.now()) == 1

    assert receiver.received == []
    [attempt] = delivery.tries.all()
    assert attempt.status_code is None
    assert "RefusedAddress" in attempt.error and "127.0.0.1" in attempt.error
