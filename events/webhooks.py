"""Webhooks: endpoints, and the worker's two passes that deliver events to them.

`dispatch_events` turns each new event into a delivery for every endpoint that wants it;
`deliver_webhooks` sends them following the Standard Webhooks specification, at least
once: each endpoint's deliveries one at a time in event order, retried with exponential
backoff for WEBHOOK_RETRY_FOR, then given up. A worker holds an endpoint with a lease
while it sends, never a transaction: a crash leaves the lease to run out, and the next
worker sends the same delivery again, with the same `webhook-id`.
"""

import json
import time
from datetime import datetime, timedelta
from http.client import HTTPConnection, HTTPException, HTTPSConnection
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone
from standardwebhooks import Webhook

from events.addresses import connect_public
from events.models import Event, WebhookAttempt, WebhookDelivery, WebhookEndpoint

# Events fanned out per transaction.
DISPATCH_BATCH = 500
# A delivery pass starts no send after this long, so a slow receiver cannot hold up the
# worker's other passes (offers must expire on time). Its leases count from the pass's
# `now`, so WEBHOOK_LEASE must outlast this and a send (about two timeouts: connect, answer).
SEND_BUDGET_SECONDS = 2
# Endpoints looked at per delivery pass.
ENDPOINTS_PER_PASS = 100
# Kept of an error's text.
MAX_ERROR_LENGTH = 500


def create_endpoint(
    *,
    url: str,
    sources: list[str] | None = None,
    event_types: list[str] | None = None,
    is_active: bool = True,
    description: str = "",
) -> WebhookEndpoint:
    """A new endpoint with a new secret; it gets the events that occur from now on."""
    return WebhookEndpoint.objects.create(
        url=url,
        sources=sources or [],
        event_types=event_types or [],
        is_active=is_active,
        description=description,
    )


def update_endpoint(*, endpoint: WebhookEndpoint, **changes: object) -> WebhookEndpoint:
    """Change an endpoint; its pending deliveries are tried at once, not after the
    backoff its old URL earned."""
    for field, value in changes.items():
        setattr(endpoint, field, value)
    endpoint.failures, endpoint.next_attempt_at = 0, timezone.now()
    # Never `leased_until`: a worker may be sending to it right now.
    endpoint.save(update_fields=[*changes, "failures", "next_attempt_at"])
    return endpoint


def send_again(*, delivery: WebhookDelivery, now: datetime) -> WebhookDelivery:
    """Pending again and due now, with the same `webhook-id`. An endpoint's oldest
    pending event goes first, so it goes before the later ones still waiting."""
    with transaction.atomic():
        WebhookDelivery.objects.filter(pk=delivery.pk).update(
            status=WebhookDelivery.Status.PENDING, delivered_at=None
        )
        WebhookEndpoint.objects.filter(pk=delivery.endpoint_id).update(next_attempt_at=now)
    delivery.refresh_from_db()
    return delivery


def dispatch_events(now: datetime) -> int:
    """Make the deliveries of events not yet dispatched; how many events it dispatched.

    Found by `dispatched_at IS NULL`, not by a cursor: an event whose transaction took a
    smaller id but committed later is found all the same. Each batch is locked, skipping
    rows another worker holds, and fanned out and marked in one transaction, so no event
    is fanned out twice or missed.
    """
    undispatched = Event.objects.filter(dispatched_at__isnull=True)
    # The idle tick: one look at the index, no transaction.
    if not undispatched.exists():
        return 0
    dispatched = 0
    while True:
        with transaction.atomic():
            batch = list(
                undispatched.order_by("id")
                .only("id", "type", "scope", "occurred_at")
                .select_for_update(skip_locked=True)[:DISPATCH_BATCH]
            )
            endpoints = list(WebhookEndpoint.objects.filter(is_active=True)) if batch else []
            WebhookDelivery.objects.bulk_create(
                WebhookDelivery(endpoint=endpoint, event=event, created_at=now)
                for event in batch
                for endpoint in endpoints
                if endpoint.wants(event)
            )
            Event.objects.filter(pk__in=[event.pk for event in batch]).update(dispatched_at=now)
        dispatched += len(batch)
        if len(batch) < DISPATCH_BATCH:
            return dispatched


def deliver_webhooks(now: datetime) -> int:
    """Send what is due; how many requests it made.

    1. Read the endpoints that are due, not leased, with a delivery pending.
    2. Claim one with a conditional UPDATE that leases it: a second worker's claim then
       matches no row, so two never send to one endpoint at once.
    3. Send its oldest pending delivery, outside any transaction.
    4. Record the attempt, schedule the endpoint and release it in one transaction.
    5. Again while it is due (a failure makes it wait), until the time budget is spent.
    """
    started = time.monotonic()
    sent = 0
    for endpoint_id in due_endpoint_ids(now):
        while time.monotonic() - started < SEND_BUDGET_SECONDS:
            lease = claim(endpoint_id, now)
            if lease is None:
                break
            delivery = next_delivery(endpoint_id)
            if delivery is None:
                WebhookEndpoint.objects.filter(pk=endpoint_id, leased_until=lease).update(
                    leased_until=None
                )
                break
            sent += 1
            if not attempt(delivery, now, lease):
                break
    return sent


def due_endpoint_ids(now: datetime) -> list[int]:
    pending = WebhookDelivery.objects.filter(
        endpoint=OuterRef("pk"), status=WebhookDelivery.Status.PENDING
    )
    due = _claimable(now).filter(Exists(pending)).order_by("next_attempt_at")
    return list(due.values_list("pk", flat=True)[:ENDPOINTS_PER_PASS])


def claim(endpoint_id: int, now: datetime) -> datetime | None:
    """Lease the endpoint if it is still due and free; the lease's end, which the release
    matches so a worker whose lease ran out cannot release another's."""
    lease = now + settings.WEBHOOK_LEASE
    claimed = _claimable(now).filter(pk=endpoint_id).update(leased_until=lease)
    return lease if claimed else None


def _claimable(now: datetime) -> QuerySet[WebhookEndpoint]:
    free = Q(leased_until__isnull=True) | Q(leased_until__lte=now)
    return WebhookEndpoint.objects.filter(free, is_active=True, next_attempt_at__lte=now)


def next_delivery(endpoint_id: int) -> WebhookDelivery | None:
    """The endpoint's oldest pending event: its deliveries go in event order."""
    return (
        WebhookDelivery.objects.select_related("event", "endpoint")
        .filter(endpoint_id=endpoint_id, status=WebhookDelivery.Status.PENDING)
        .order_by("event_id")
        .first()
    )


def attempt(delivery: WebhookDelivery, now: datetime, lease: datetime) -> bool:
    """One signed POST of the delivery, recorded; whether it was delivered (a 2xx)."""
    body = json.dumps(delivery.event.as_body()).encode()
    # The receiver compares the timestamp with its own clock: the real moment of sending.
    sent_at = timezone.now()
    headers = {
        "content-type": "application/json",
        "webhook-id": delivery.webhook_id,
        "webhook-timestamp": str(int(sent_at.timestamp())),
        "webhook-signature": Webhook(delivery.endpoint.secret).sign(
            delivery.webhook_id, sent_at, body
        ),
    }
    status_code, error = None, ""
    started = time.perf_counter()
    try:
        status_code = post(delivery.endpoint.url, body, headers)
    except (OSError, HTTPException, ValueError) as failure:
        error = f"{type(failure).__name__}: {failure}"[:MAX_ERROR_LENGTH]
    duration_ms = round((time.perf_counter() - started) * 1000)
    delivered = status_code is not None and 200 <= status_code < 300
    record(delivery, now, lease, delivered, status_code, error, duration_ms)
    return delivered


def post(url: str, body: bytes, headers: dict[str, str]) -> int:
    """POST without following redirects (a redirect could lead to a refused address);
    the response's status."""
    parts = urlsplit(url)
    https = parts.scheme == "https"
    connection = (HTTPSConnection if https else HTTPConnection)(
        parts.hostname,
        parts.port or (443 if https else 80),
        timeout=settings.WEBHOOK_TIMEOUT_SECONDS,
    )
    if not settings.WEBHOOKS_ALLOW_PRIVATE:
        # Checked on the address actually connected to: the name may resolve elsewhere
        # than when the endpoint was saved.
        connection._create_connection = connect_public
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        connection.request("POST", path, body, headers)
        return connection.getresponse().status
    finally:
        connection.close()


def record(
    delivery: WebhookDelivery,
    now: datetime,
    lease: datetime,
    delivered: bool,
    status_code: int | None,
    error: str,
    duration_ms: int,
) -> None:
    """The attempt, the delivery's state and the endpoint's next turn, as one change."""
    endpoint = delivery.endpoint
    with transaction.atomic():
        # Locked so staff deleting the endpoint meanwhile wait, or go first and leave
        # nothing to record.
        row = WebhookDelivery.objects.select_for_update().filter(pk=delivery.pk).first()
        if row is None:
            return
        WebhookAttempt.objects.create(
            delivery=row, at=now, status_code=status_code, duration_ms=duration_ms, error=error
        )
        row.attempts += 1
        if delivered:
            row.status, row.delivered_at = WebhookDelivery.Status.DELIVERED, now
            failures, next_attempt_at = 0, now
        else:
            failures = endpoint.failures + 1
            next_attempt_at = now + backoff(failures)
        row.save(update_fields=["attempts", "status", "delivered_at"])
        if not delivered:
            # Given up: this one and any other waiting behind it past the retry time.
            WebhookDelivery.objects.filter(
                endpoint=endpoint,
                status=WebhookDelivery.Status.PENDING,
                created_at__lte=now - settings.WEBHOOK_RETRY_FOR,
            ).update(status=WebhookDelivery.Status.FAILED)
        WebhookEndpoint.objects.filter(pk=endpoint.pk, leased_until=lease).update(
            failures=failures, next_attempt_at=next_attempt_at, leased_until=None
        )


def backoff(failures: int) -> timedelta:
    """How long an endpoint waits after its `failures`-th failed attempt in a row."""
    base, cap = settings.WEBHOOK_BACKOFF_BASE, settings.WEBHOOK_BACKOFF_CAP
    return min(cap, base * 2 ** min(failures - 1, 32))
