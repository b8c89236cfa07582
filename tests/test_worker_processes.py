"""Real `manage.py run_worker` processes while the intake keeps making contacts:
webhooks delivered to a real receiver on 127.0.0.1 that verifies every signature with
the standardwebhooks package (the receiver down for a while, two workers at once, a
worker SIGKILLed mid-delivery), and offers expired by two workers at once. Each check
reads what the receiver got and the database.

The workers use the test database (committed rows: transactional tests) with small
timeouts and backoff from the environment.
"""

import itertools
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.db import connection

from distribution.contacts import register_contact
from distribution.models import Contact, OfferMiss, Source
from distribution.sources import set_source_weights
from events.models import Event, WebhookDelivery, WebhookEndpoint
from events.webhooks import create_endpoint
from leads.identity import build_identity
from tests.factories import OperatorFactory, OperatorSourceWeightFactory, SourceFactory
from tests.receiver import Receiver

pytestmark = [pytest.mark.concurrency, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parent.parent
LEAD_NUMBERS = itertools.count()
POSTGRESQL = connection.vendor == "postgresql"
# Seconds: short enough for a test, the lease over 2 x timeout + 2 as settings require.
FAST = {
    "WEBHOOK_TIMEOUT_SECONDS": "2",
    "WEBHOOK_LEASE_SECONDS": "7",
    "WEBHOOK_BACKOFF_BASE_SECONDS": "1",
    "WEBHOOK_BACKOFF_CAP_SECONDS": "2",
}


def start_worker(log: Path, **settings: str) -> subprocess.Popen:
    """`manage.py run_worker` on the test database, in its own process group, logging
    to a file (a pipe nobody reads would fill and stop it)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "SQLITE_"))}
    db = connection.settings_dict
    if POSTGRESQL:
        password = f":{db['PASSWORD']}" if db["PASSWORD"] else ""
        host = f"{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
        env["DATABASE_URL"] = f"postgres://{db['USER']}{password}@{host}/{db['NAME']}"
    else:
        env["SQLITE_PATH"] = str(db["NAME"])
    env.update(FAST, WEBHOOKS_ALLOW_PRIVATE="1", PRODUCTION="0", **settings)
    return subprocess.Popen(
        [sys.executable, "manage.py", "run_worker", "--tick", "0.2"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
        start_new_session=True,
    )


def stop(worker: subprocess.Popen) -> None:
    if worker.poll() is None:
        os.killpg(worker.pid, signal.SIGTERM)
    worker.wait(timeout=30)


def wait_until(done: Callable[[], bool], what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {seconds} s: {what}")
        time.sleep(0.2)


def intake_source() -> Source:
    """A source whose one operator has room for every contact: each intake makes two
    events (created, assigned)."""
    return OperatorSourceWeightFactory(operator__max_open_contacts=10_000).source


def make_contacts(source: Source, count: int, pause: float = 0.0) -> None:
    for _ in range(count):
        lead = build_identity(external_id=f"wh-{next(LEAD_NUMBERS)}")
        register_contact(source=source, identity=lead)
        time.sleep(pause)


def settled() -> bool:
    """Every event dispatched, and no delivery pending (delivered, or given up)."""
    undispatched = Event.objects.filter(dispatched_at__isnull=True).exists()
    pending = WebhookDelivery.objects.filter(status=WebhookDelivery.Status.PENDING).exists()
    return not undispatched and not pending


def statuses() -> set[str]:
    return set(WebhookDelivery.objects.values_list("status", flat=True))


def received_event_ids(receiver: Receiver, endpoint: WebhookEndpoint) -> set[int]:
    """What the receiver got for the endpoint, every signature verified."""
    return {
        request.verify(endpoint.secret)["id"]
        for request in receiver.received
        if request.path == path_of(endpoint)
    }


def path_of(endpoint: WebhookEndpoint) -> str:
    url = urlsplit(endpoint.url)
    return f"{url.path}?{url.query}" if url.query else url.path


def test_every_event_reaches_a_receiver_that_was_stopped_for_a_while(tmp_path):
    receiver = Receiver().start()
    endpoint = create_endpoint(url=receiver.url)
    source = intake_source()
    worker = start_worker(tmp_path / "worker.log")
    try:
        make_contacts(source, 5, pause=0.1)
        wait_until(lambda: len(receiver.received) >= 10, "the first events arrive")
        receiver.stop()
        make_contacts(source, 10, pause=0.1)
        wait_until(
            lambda: endpoint.deliveries.filter(tries__error__contains="Refused").exists(),
            "the worker finds the receiver down",
        )
        make_contacts(source, 5, pause=0.1)
        receiver.start()
        make_contacts(source, 5, pause=0.1)
        wait_until(settled, "nothing left pending")
    finally:
        stop(worker)
        receiver.stop()

    assert Event.objects.count() == 50
    assert statuses() == {"delivered"}
    assert received_event_ids(receiver, endpoint) == set(Event.objects.values_list("id", flat=True))


@pytest.mark.skipif(not POSTGRESQL, reason="several workers need PostgreSQL; on SQLite run one")
def test_two_workers_under_intake_never_send_one_delivery_twice(tmp_path):
    receiver = Receiver().start()
    # A slow receiver, so both workers are sending at the same moments.
    receiver.delay = 0.02
    endpoints = [create_endpoint(url=f"{receiver.url}?to={n}") for n in range(3)]
    source = intake_source()
    workers = [start_worker(tmp_path / f"worker-{n}.log") for n in range(2)]
    try:
        make_contacts(source, 60, pause=0.05)
        wait_until(settled, "nothing left pending")
    finally:
        for worker in workers:
            stop(worker)
        receiver.stop()

    assert statuses() == {"delivered"}
    sent = Counter(request.webhook_id for request in receiver.received)
    assert [webhook_id for webhook_id, times in sent.items() if times > 1] == []
    assert len(sent) == WebhookDelivery.objects.count() == 3 * 120
    assert set(WebhookDelivery.objects.values_list("attempts", flat=True)) == {1}
    for endpoint in endpoints:
        got = [r.event_id for r in receiver.received if r.path == path_of(endpoint)]
        assert got == sorted(got), "an endpoint's events arrive in order"
        assert received_event_ids(receiver, endpoint) == set(
            Event.objects.values_list("id", flat=True)
        )
    # Both did deliver: the test saw them side by side.
    for number in range(2):
        assert '"worker": "deliver_webhooks"' in (tmp_path / f"worker-{number}.log").read_text()


def test_a_worker_killed_mid_delivery_leaves_nothing_lost_or_stuck(tmp_path):
    receiver = Receiver().start()
    endpoint = create_endpoint(url=receiver.url)
    source = intake_source()
    make_contacts(source, 3)
    receiver.hold.clear()  # the first request waits: the worker is mid-send
    worker = start_worker(tmp_path / "worker-1.log")
    try:
        assert receiver.arrived.wait(timeout=60), "the worker sent nothing"
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)
        receiver.hold.set()
        make_contacts(source, 3)
        worker = start_worker(tmp_path / "worker-2.log")
        wait_until(settled, "nothing left pending after the restart")
    finally:
        stop(worker)
        receiver.stop()

    assert statuses() == {"delivered"}
    assert received_event_ids(receiver, endpoint) == set(Event.objects.values_list("id", flat=True))
    # Only the delivery in hand at the kill came twice, with its webhook-id both times.
    first = WebhookDelivery.objects.order_by("event_id").first()
    sent = Counter(request.webhook_id for request in receiver.received)
    assert {webhook_id for webhook_id, times in sent.items() if times > 1} == {first.webhook_id}
    assert sent[first.webhook_id] == 2
    endpoint.refresh_from_db()
    assert (endpoint.leased_until, endpoint.failures) == (None, 0)


@pytest.mark.skipif(not POSTGRESQL, reason="several workers need PostgreSQL; on SQLite run one")
def test_two_workers_under_intake_expire_each_offer_once(tmp_path):
    """Offers with a one-second deadline go round six operators while two workers
    expire them: every offer ends once (one miss and one contact.offer_expired event per
    operator and contact), and each contact, passed on by everyone, waits flagged."""
    source = SourceFactory(code="quick-bot", accept_timeout_seconds=1, max_offers=6)
    team = [OperatorFactory(max_open_contacts=1000) for _ in range(6)]
    set_source_weights(source=source, weights={operator.pk: 1 for operator in team})
    workers = [
        start_worker(tmp_path / f"worker-{n}.log", OFFER_MISSES_BEFORE_AWAY="1000")
        for n in range(2)
    ]
    try:
        make_contacts(source, 40, pause=0.05)
        wait_until(
            lambda: not Contact.objects.exclude(status=Contact.Status.WAITING).exists(),
            "every contact passed on by every operator",
        )
    finally:
        for worker in workers:
            stop(worker)

    misses = Counter(OfferMiss.objects.values_list("contact_id", "operator_id"))
    assert set(misses.values()) == {1}, "an offer expired twice"
    assert len(misses) == 40 * 6
    assert Event.objects.filter(type="contact.offer_expired").count() == 40 * 6
    assert Contact.objects.filter(flagged_at__isnull=False).count() == 40
    for number in range(2):
        assert '"worker": "expire_offers"' in (tmp_path / f"worker-{number}.log").read_text()
