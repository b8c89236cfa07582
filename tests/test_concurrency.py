"""Invariants under real concurrency: many threads, each with its own database
connection, hitting the API at once; every check reads the database afterwards.

On PostgreSQL these exercise the row locks; on SQLite the IMMEDIATE transactions
serialise the same code. CI runs them on both (see .ci/run).
"""

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from django.db import connection
from django.db.models import Count, F, Q
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from core.errors import Conflict
from distribution import contacts, offers, operators, queries, worker
from distribution.models import Contact, Operator, OperatorStatusChange, Source, counted_load
from distribution.sources import set_source_weights
from events.models import Event
from leads.identity import build_identity
from leads.models import Lead
from tests.factories import (
    ContactFactory,
    OperatorFactory,
    OperatorSourceWeightFactory,
    SourceFactory,
    StaffUserFactory,
)

pytestmark = [pytest.mark.concurrency, pytest.mark.django_db(transaction=True)]

THREADS = 32


def run_at_once(tasks: list[Callable[[], int]], threads: int = THREADS) -> list[int]:
    """Run the tasks on `threads` threads released together; the status codes they return."""
    barrier = threading.Barrier(threads)
    chunks = [tasks[i::threads] for i in range(threads)]

    def worker(chunk: list[Callable[[], int]]) -> list[int]:
        try:
            barrier.wait()
            return [task() for task in chunk]
        finally:
            connection.close()  # each thread opened its own connection

    with ThreadPoolExecutor(max_workers=threads) as pool:
        return [status for result in pool.map(worker, chunks) for status in result]


@pytest.fixture
def token(transactional_db) -> str:
    return Token.objects.create(user=StaffUserFactory()).key


def post_contact(token: str, source_code: str, lead: dict) -> Callable[[], int]:
    def task() -> int:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
        return client.post(
            "/api/contacts/", {"source": source_code, "lead": lead}, format="json"
        ).status_code

    return task


def close_contact(token: str, contact_id: int) -> Callable[[], int]:
    def task() -> int:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
        return client.post(f"/api/contacts/{contact_id}/close/").status_code

    return task


def operators_over_limit() -> list[tuple[str, int, int]]:
    return list(
        Operator.objects.annotate(
            open_count=Count("contacts", filter=Q(contacts__status__in=Contact.LOAD_STATUSES))
        )
        .filter(open_count__gt=F("max_open_contacts"))
        .values_list("name", "open_count", "max_open_contacts")
    )


def shared_operator_setup() -> list[Source]:
    """Four sources over five operators that overlap in different orders and weights."""
    operators = [OperatorFactory(max_open_contacts=limit) for limit in (3, 5, 2, 4, 6)]
    layout = {
        "bot-a": {0: 5, 1: 1, 2: 3},
        "bot-b": {2: 1, 3: 2, 4: 1},
        "bot-c": {4: 4, 0: 1, 3: 1},
        "bot-d": {1: 2, 2: 2, 3: 2, 4: 2},
    }
    sources = []
    for number, (code, weights) in enumerate(layout.items()):
        strategy = Source.Strategy.ROUND_ROBIN if number % 2 else Source.Strategy.WEIGHTED_RANDOM
        source = SourceFactory(code=code, strategy=strategy)
        for index, weight in weights.items():
            OperatorSourceWeightFactory(operator=operators[index], source=source, weight=weight)
        sources.append(source)
    return sources


def test_concurrent_intake_never_puts_an_operator_over_its_limit(token):
    sources = shared_operator_setup()
    requests = 128
    tasks = [
        post_contact(token, sources[n % len(sources)].code, {"external_id": f"lead-{n}"})
        for n in range(requests)
    ]

    statuses = run_at_once(tasks)

    assert Counter(statuses) == {201: requests}
    assert Contact.objects.count() == requests
    assert operators_over_limit() == []
    # Capacity is 20 in all; every operator serves some source, so all of it is used.
    assert Contact.objects.filter(status=Contact.Status.OPEN).count() == 20
    assert Contact.objects.filter(status=Contact.Status.WAITING).count() == requests - 20


def test_racing_requests_for_one_new_lead_make_one_lead(token):
    source = SourceFactory(code="bot-race")
    OperatorSourceWeightFactory(source=source, operator=OperatorFactory(max_open_contacts=100))
    spellings = ["+7 916 123-45-67", "8 (916) 123-45-67", "79161234567", "+79161234567"]
    tasks = [
        post_contact(token, "bot-race", {"phone": spellings[n % 4], "email": "Race@Example.com"})
        for n in range(64)
    ]

    statuses = run_at_once(tasks)

    assert Counter(statuses) == {201: 64}
    assert list(Lead.objects.values_list("phone", "email")) == [
        ("+79161234567", "race@example.com")
    ]
    assert Contact.objects.filter(lead__phone="+79161234567").count() == 64


def test_sources_sharing_operators_never_deadlock_while_contacts_close(token):
    sources = shared_operator_setup()
    Operator.objects.update(max_open_contacts=3)
    seeded = run_at_once(
        [
            post_contact(token, s.code, {"email": f"first{n}@example.com"})
            for n, s in enumerate(sources * 8)
        ]
    )
    open_ids = list(Contact.objects.filter(status=Contact.Status.OPEN).values_list("id", flat=True))
    rng = random.Random(7)
    tasks = [close_contact(token, contact_id) for contact_id in open_ids]
    tasks += [
        post_contact(token, rng.choice(sources).code, {"external_id": f"lead-{n % 40}"})
        for n in range(160)
    ]
    rng.shuffle(tasks)

    statuses = run_at_once(tasks)

    assert set(seeded) == {201}
    assert Counter(statuses) == {200: len(open_ids), 201: 160}
    assert Contact.objects.count() == len(seeded) + 160
    assert operators_over_limit() == []
    # Every freed place went to the queue at once: nobody with room sits beside a waiting
    # contact of a source they serve.
    idle = Operator.objects.annotate(
        open_count=Count("contacts", filter=Q(contacts__status=Contact.Status.OPEN))
    ).filter(is_active=True, open_count__lt=F("max_open_contacts"))
    assert not Contact.objects.filter(
        status=Contact.Status.WAITING, source__weights__operator__in=idle
    ).exists()


def test_concurrent_round_robin_keeps_exact_shares(token):
    source = SourceFactory(code="bot-rr", strategy=Source.Strategy.ROUND_ROBIN)
    anna, boris = OperatorFactory(max_open_contacts=500), OperatorFactory(max_open_contacts=500)
    OperatorSourceWeightFactory(source=source, operator=anna, weight=3)
    OperatorSourceWeightFactory(source=source, operator=boris, weight=1)

    statuses = run_at_once(
        [post_contact(token, "bot-rr", {"external_id": f"rr-{n}"}) for n in range(96)]
    )

    assert Counter(statuses) == {201: 96}
    counts = Counter(Contact.objects.values_list("operator_id", flat=True))
    assert counts == {anna.pk: 72, boris.pk: 24}


def test_concurrent_closes_of_one_contact_succeed_once(token):
    source = SourceFactory(code="bot-close")
    OperatorSourceWeightFactory(source=source, operator=OperatorFactory())
    run_at_once([post_contact(token, "bot-close", {"external_id": "x"})], threads=1)
    contact = Contact.objects.get()

    statuses = run_at_once([close_contact(token, contact.pk) for _ in range(THREADS)])

    assert Counter(statuses) == {200: 1, 409: THREADS - 1}


def flow(call: Callable[[], object]) -> Callable[[], str]:
    """A flow run in a worker thread: "ok", "refused" (a Conflict, expected when the
    state moved on), or the unexpected error, deadlocks included."""

    def task() -> str:
        try:
            call()
        except Conflict:
            return "refused"
        except Exception as error:  # every other error fails the test, deadlocks too
            return f"{type(error).__name__}: {error}"
        return "ok"

    return task


def test_flows_sharing_operators_take_locks_in_one_order_and_never_deadlock():
    """Intake, reassignment (by rule and to a named operator), weight changes and closes
    on sources that share operators, all at once. Each locks several operators; were
    any flow to lock them in another order than the others, two of them would wait on
    each other and PostgreSQL would break the circle by failing one."""
    sources = shared_operator_setup()
    Operator.objects.update(max_open_contacts=4)
    operator_ids = list(Operator.objects.values_list("id", flat=True))
    for n in range(24):
        contacts.register_contact(
            source=sources[n % 4], identity=build_identity(external_id=f"seed-{n}")
        )
    open_ids = list(Contact.objects.filter(status=Contact.Status.OPEN).values_list("id", flat=True))
    layouts = {
        source.pk: list(source.weights.values_list("operator_id", flat=True)) for source in sources
    }
    rng = random.Random(11)

    def intake(n: int) -> Callable[[], object]:
        source, identity = rng.choice(sources), build_identity(external_id=f"lead-{n % 30}")
        return lambda: contacts.register_contact(source=source, identity=identity)

    def reassign(contact_id: int, to: int | None) -> Callable[[], object]:
        operator = None if to is None else Operator(pk=to)
        return lambda: contacts.reassign_contact(contact=Contact(pk=contact_id), operator=operator)

    def reweigh(source: Source) -> Callable[[], object]:
        chosen = set(rng.sample(layouts[source.pk], 2)) | {rng.choice(operator_ids)}
        weights = {operator_id: rng.randint(1, 5) for operator_id in chosen}
        return lambda: set_source_weights(source=source, weights=weights)

    tasks = [flow(intake(n)) for n in range(96)]
    tasks += [flow(reassign(c, rng.choice([None, *operator_ids]))) for c in open_ids * 2]
    tasks += [flow(reweigh(source)) for source in sources * 6]
    tasks += [flow(lambda c=c: contacts.close_contact(contact=Contact(pk=c))) for c in open_ids]
    rng.shuffle(tasks)
    deadlocks_before = database_deadlocks()

    outcomes = run_at_once(tasks)

    assert {outcome for outcome in outcomes} <= {"ok", "refused"}
    assert database_deadlocks() == deadlocks_before
    assert operators_over_limit() == []
    assert Contact.objects.count() == 24 + 96


def database_deadlocks() -> int:
    """Deadlocks PostgreSQL has detected in this database (0 elsewhere: SQLite
    serialises writers)."""
    if connection.vendor != "postgresql":
        return 0
    with connection.cursor() as cursor:
        cursor.execute("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
        return cursor.fetchone()[0]


def status_at(history: dict[int, list[tuple]], operator_id: int, moment) -> str:
    """An operator's status at `moment` by its history (away before any change)."""
    status = "away"
    for changed_at, changed_to in history.get(operator_id, []):
        if changed_at <= moment:
            status = changed_to
    return status


def test_operators_switching_presence_under_intake_never_get_work_while_away(token):
    """32 threads of intake while operators switch between available and away: nothing
    is lost, nobody goes over the limit, no contact goes to an operator while it is
    away (by the status history), and a freed place never sits beside a waiting one."""
    sources = shared_operator_setup()
    # Room for every contact, and everyone away at first: contacts wait until someone
    # becomes available, which must then take them.
    Operator.objects.update(max_open_contacts=40, status="away")
    operator_ids = list(Operator.objects.values_list("id", flat=True))
    rng = random.Random(5)

    def switch(operator_id: int, status: str) -> Callable[[], object]:
        return lambda: operators.set_operator_status(
            operator=Operator(pk=operator_id), status=status
        )

    tasks = [
        post_contact(token, rng.choice(sources).code, {"external_id": f"p-{n}"}) for n in range(128)
    ]
    tasks += [
        flow(switch(rng.choice(operator_ids), rng.choice(["available", "away"]))) for _ in range(64)
    ]
    rng.shuffle(tasks)

    outcomes = run_at_once(tasks)

    assert Counter(outcomes) == {201: 128, "ok": 64}
    assert Contact.objects.count() == 128
    assert operators_over_limit() == []
    history: dict[int, list[tuple]] = {}
    for change in OperatorStatusChange.objects.order_by("changed_at", "id"):
        history.setdefault(change.operator_id, []).append((change.changed_at, change.status))
    given_while_away = [
        (contact_id, operator_id)
        for contact_id, operator_id, assigned_at in Contact.objects.filter(
            operator__isnull=False
        ).values_list("id", "operator_id", "assigned_at")
        if status_at(history, operator_id, assigned_at) != "available"
    ]
    assert given_while_away == []
    free = Operator.objects.with_load().filter(is_active=True, status="available").at_limit(False)
    assert not Contact.objects.filter(
        status=Contact.Status.WAITING, source__weights__operator__in=free
    ).exists()


def test_workers_draining_at_once_give_each_waiting_contact_once_and_nobody_too_many():
    """Eight workers run the shift-start pass at the same moment over one queue."""
    source = SourceFactory(code="night-bot")
    limits = [3, 5, 2, 4]
    team = [OperatorFactory(max_open_contacts=limit) for limit in limits]
    set_source_weights(source=source, weights={operator.pk: 1 for operator in team})
    waiting = [ContactFactory(source=source) for _ in range(30)]
    now = timezone.now()

    done = run_at_once([lambda: worker.drain_where_time_freed_room(now)] * 8, threads=8)

    assert sum(done) == sum(limits)  # every place filled, none twice
    assert operators_over_limit() == []
    statuses = Counter(
        Contact.objects.filter(pk__in=[c.pk for c in waiting]).values_list("status", flat=True)
    )
    assert statuses == {Contact.Status.OPEN: sum(limits), Contact.Status.WAITING: 30 - sum(limits)}


def test_accepts_racing_the_expiry_end_each_offer_exactly_once(settings):
    """Operators accept their offers (twice each) around the deadline while four
    workers expire offers: every offer is either accepted or expired, never both and
    never twice; an accept that answered ok left the contact open with its operator; no
    operator over its limit; no contact lost."""
    # Nobody is set away for missing offers here: withdrawals would be a third ending.
    settings.OFFER_MISSES_BEFORE_AWAY = 1000
    source = SourceFactory(code="race-bot", accept_timeout_seconds=60)
    team = [OperatorFactory(max_open_contacts=4) for _ in range(6)]
    set_source_weights(source=source, weights={operator.pk: 1 for operator in team})
    for n in range(24):
        contacts.register_contact(source=source, identity=build_identity(external_id=f"o-{n}"))
    offered = dict(
        Contact.objects.filter(status=Contact.Status.OFFERED).values_list("id", "operator_id")
    )
    assert len(offered) == 24
    # Far enough for the threads to start; each accept then aims around it.
    deadline = queries.database_now() + timedelta(seconds=1.5)
    Contact.objects.update(offer_expires_at=deadline)
    rng = random.Random(5)
    accepted: dict[int, list[str]] = {contact_id: [] for contact_id in offered}

    def accept(contact_id: int, offset: float) -> Callable[[], str]:
        def task() -> str:
            time.sleep(max(0.0, (deadline - queries.database_now()).total_seconds() + offset))
            outcome = flow(
                lambda: offers.accept_offer(
                    contact=Contact(pk=contact_id), by_operator=Operator(pk=offered[contact_id])
                )
            )()
            accepted[contact_id].append(outcome)
            return outcome

        return task

    def expire() -> str:
        until = deadline + timedelta(milliseconds=300)
        while (now := queries.database_now()) < until:
            outcome = flow(lambda: offers.expire_offers(now))()
            if outcome != "ok":
                return outcome
        return "ok"

    tasks = [accept(c, rng.uniform(-0.1, 0.1)) for c in offered for _ in range(2)]
    outcomes = run_at_once(tasks + [expire] * 4, threads=len(tasks) + 4)
    offers.expire_offers(queries.database_now())  # the next tick: accepts that came too late

    assert set(outcomes) <= {"ok", "refused"}
    ends = Counter(
        (event.data["contact"]["id"], event.type)
        for event in Event.objects.filter(type__in=["contact.accepted", "contact.offer_expired"])
    )
    for contact_id, operator_id in offered.items():
        accepts, expiries = (
            ends[contact_id, "contact.accepted"],
            ends[contact_id, "contact.offer_expired"],
        )
        assert (accepts, expiries) in {(1, 0), (0, 1)}, contact_id
        contact = Contact.objects.get(pk=contact_id)
        if "ok" in accepted[contact_id]:
            assert (contact.status, contact.operator_id) == (Contact.Status.OPEN, operator_id)
            assert accepts == 1
        else:
            assert contact.operator_id != operator_id
            assert expiries == 1
    assert 0 < sum(ends[c, "contact.accepted"] for c in offered) < 24  # both won some
    assert operators_over_limit() == []
    assert Contact.objects.count() == 24


def units_over_limit() -> list[tuple[str, int, int]]:
    """Operators whose open and offered contacts, counted in load units, pass their limit."""
    return list(
        Operator.objects.annotate(counted=counted_load("pk"))
        .filter(counted__gt=F("max_open_contacts"))
        .values_list("name", "counted", "max_open_contacts")
    )


def unit_sources_setup() -> list[Source]:
    """Three sources costing 1, 2 and 5 units over five operators with small limits (48
    units in all), overlapping in different orders and weights."""
    team = [OperatorFactory(max_open_contacts=limit) for limit in (6, 9, 11, 14, 8)]
    layout = {
        "chat": (1, {0: 2, 1: 1, 3: 1}),
        "shop": (2, {1: 1, 2: 2, 4: 1}),
        "call": (5, {0: 1, 2: 1, 3: 3, 4: 1}),
    }
    sources = []
    for number, (code, (units, weights)) in enumerate(layout.items()):
        strategy = Source.Strategy.ROUND_ROBIN if number % 2 else Source.Strategy.WEIGHTED_RANDOM
        source = SourceFactory(code=code, load_units=units, strategy=strategy)
        for index, weight in weights.items():
            OperatorSourceWeightFactory(operator=team[index], source=source, weight=weight)
        sources.append(source)
    return sources


def test_load_units_under_32_threads_with_mixed_sources_never_pass_a_limit(token):
    """32 threads of intake, new and returning leads, on sources costing 1, 2 and 5
    units: nobody over its limit in units, every stored load equal to the units counted
    from its contacts, and a contact waits only where nobody on its source has room for
    its units (no close ran, so room only shrank after it was turned away)."""
    sources = unit_sources_setup()
    rng = random.Random(3)
    requests = 160
    tasks = [
        post_contact(
            token,
            rng.choice(sources).code,
            {"external_id": f"returning-{n % 40}" if n % 2 else f"new-{n}"},
        )
        for n in range(requests)
    ]

    statuses = run_at_once(tasks)

    assert Counter(statuses) == {201: requests}
    assert Contact.objects.count() == requests
    assert units_over_limit() == []
    team = Operator.objects.annotate(counted=counted_load("pk"))
    assert [(o.name, o.open_load, o.counted) for o in team if o.open_load != o.counted] == []
    room = {operator.pk: operator.max_open_contacts - operator.counted for operator in team}
    waiting = Contact.objects.filter(status=Contact.Status.WAITING).select_related("source")
    assert waiting.count() > requests // 2  # the limits bound: most had to wait
    turned_away_with_room = [
        (contact.pk, operator_id)
        for contact in waiting
        for operator_id in contact.source.weights.values_list("operator_id", flat=True)
        if room[operator_id] >= contact.source.load_units
    ]
    assert turned_away_with_room == []


def test_two_contacts_of_one_lead_arriving_at_once_end_with_one_operator(token):
    """Sticky 'prefer': pairs of contacts of one lead, through two bots whose sources
    share operators, posted at once; new leads first, then known leads with no operator
    yet. The intake locks the lead's row before it looks for the lead's own operator, so
    the second of a pair waits for the first and goes to its operator, as the owner."""
    team = [OperatorFactory(max_open_contacts=200) for _ in range(4)]
    codes = ["sticky-a", "sticky-b"]
    for code in codes:
        source = SourceFactory(code=code, sticky=Source.Sticky.PREFER)
        set_source_weights(source=source, weights={operator.pk: 1 for operator in team})
    known = [Lead.objects.create(external_id=f"known-{n}").external_id for n in range(32)]
    new = [f"new-{n}" for n in range(16)]

    statuses = []
    for leads in (new, known):  # tasks 2k and 2k + 1 start together on their own threads
        statuses += run_at_once(
            [post_contact(token, code, {"external_id": lead}) for lead in leads for code in codes]
        )

    assert Counter(statuses) == {201: 2 * (len(new) + len(known))}
    operators_of: dict[int, set[int]] = {}
    for lead_id, operator_id in Contact.objects.values_list("lead_id", "operator_id"):
        operators_of.setdefault(lead_id, set()).add(operator_id)
    assert len(operators_of) == len(new) + len(known)
    assert [lead for lead, ids in operators_of.items() if len(ids) != 1] == []
    # Of each pair, one went by the weights and the other to its lead's own operator.
    assert Counter(Contact.objects.values_list("by_owner", flat=True)) == {
        False: len(new) + len(known),
        True: len(new) + len(known),
    }
