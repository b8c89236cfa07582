"""The routing rules, against the database: a returning lead's own operator (sticky),
bursts, round robin after an absence, priorities, overflow, and the weights' shares
with returning leads. Each test asserts the decision a supervisor reads on the contact.

Time-driven passes get their moment injected; nothing sleeps.
"""

import random
from collections import Counter
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from distribution import engine, offers, operators, queries
from distribution.contacts import close_contact, reassign_contact, register_contact
from distribution.eligibility import OperatorState, choose
from distribution.models import Contact, ContactHistory, Operator, Source
from distribution.picking import ROUND_ROBIN
from distribution.shifts import ShiftInterval
from distribution.sources import set_source_overflow, set_source_weights
from distribution.worker import PASSES, drain_where_time_freed_room
from leads.identity import build_identity
from tests.factories import ContactFactory, OperatorFactory, SourceFactory

pytestmark = pytest.mark.django_db

Action = ContactHistory.Action
WAIT = 300  # the require sources' sticky_wait_seconds


def intake(source: Source, lead: str) -> Contact:
    return register_contact(source=source, identity=build_identity(external_id=lead))


def serve(source: Source, *members: Operator, weight: int = 1) -> None:
    set_source_weights(source=source, weights={operator.pk: weight for operator in members})


def reload(contact: Contact) -> Contact:
    return Contact.objects.get(pk=contact.pk)


def actions(contact: Contact) -> list[str]:
    return list(contact.history.order_by("id").values_list("action", flat=True))


def left_out(contact: Contact) -> dict[int, str | None]:
    return {c["operator_id"]: c["left_out"] for c in contact.decision["candidates"]}


def off_shift_now(operator: Operator) -> None:
    """One short shift three days from today in the operator's zone: off shift now."""
    today = timezone.now().astimezone(ZoneInfo(operator.time_zone)).weekday()
    operators.set_operator_shifts(
        operator=operator, shifts=[ShiftInterval((today + 3) % 7, time(9), time(10))]
    )


@pytest.fixture
def anna() -> Operator:
    return OperatorFactory(name="Anna", max_open_contacts=10)


@pytest.fixture
def boris() -> Operator:
    return OperatorFactory(name="Boris", max_open_contacts=10)


def returning_lead(sticky: str, anna: Operator, boris: Operator) -> tuple[Source, Contact]:
    """A round-robin source served by Anna and Boris, and the first contact of lead "x",
    which went to Anna: by the rule alone, the next contact would go to Boris."""
    source = SourceFactory(
        code="chat", strategy=Source.Strategy.ROUND_ROBIN, sticky=sticky, sticky_wait_seconds=WAIT
    )
    serve(source, anna, boris)
    first = intake(source, "x")
    assert first.operator == anna
    return source, first


# Ways the lead's own operator (Anna) cannot take a contact now, by the reason shown.
def _inactive(anna: Operator, source: Source) -> None:
    operators.update_operator(operator=anna, is_active=False)


def _not_on_source(anna: Operator, source: Source) -> None:
    set_source_weights(
        source=source, weights={w.operator_id: 1 for w in source.weights.exclude(operator=anna)}
    )


def _away(anna: Operator, source: Source) -> None:
    operators.set_operator_status(operator=anna, status=Operator.Status.AWAY)


def _offline(anna: Operator, source: Source) -> None:
    operators.set_operator_status(operator=anna, status=Operator.Status.OFFLINE)


def _off_shift(anna: Operator, source: Source) -> None:
    off_shift_now(anna)


def _at_limit(anna: Operator, source: Source) -> None:
    operators.update_operator(operator=anna, max_open_contacts=1)  # she holds the first one


def _burst_limit(anna: Operator, source: Source) -> None:
    operators.update_operator(operator=anna, burst_limit=1, burst_window_minutes=10)


MAKE_INELIGIBLE = {
    "inactive": _inactive,
    "not_on_source": _not_on_source,
    "away": _away,
    "offline": _offline,
    "off_shift": _off_shift,
    "at_limit": _at_limit,
    "burst_limit": _burst_limit,
}
PASSING = ["away", "offline", "off_shift", "at_limit", "burst_limit"]
NOT_PASSING = ["inactive", "not_on_source"]


# Sticky 'prefer' -----------------------------------------------------------------------


def test_a_returning_lead_goes_to_its_own_operator(anna, boris):
    source, _ = returning_lead("prefer", anna, boris)

    second = intake(source, "x")

    assert second.operator == anna
    assert second.by_owner is True
    assert second.decision["strategy"] == "sticky"
    assert second.decision["owner"]["operator_id"] == anna.pk
    assert second.decision["owner"]["left_out"] is None
    assert second.decision["chosen_operator_id"] == anna.pk
    assert reload(second).by_owner is True


def test_a_new_lead_has_no_owner_and_goes_by_the_rule(anna, boris):
    source, first = returning_lead("prefer", anna, boris)

    other = intake(source, "y")

    assert (other.operator, other.by_owner) == (boris, False)
    assert other.decision["strategy"] == "round_robin"
    assert "owner" not in other.decision
    assert first.by_owner is False and "owner" not in first.decision


def test_the_owner_is_the_operator_of_the_leads_last_contact_from_any_source(anna, boris):
    web = SourceFactory(code="web", strategy=Source.Strategy.ROUND_ROBIN)
    serve(web, anna, boris)
    phone = SourceFactory(code="phone", strategy=Source.Strategy.ROUND_ROBIN)
    set_source_weights(source=phone, weights={anna.pk: 1, boris.pk: 5})  # the rule: Boris
    assert intake(web, "x").operator == anna

    second = intake(phone, "x")

    assert (second.operator, second.by_owner) == (anna, True)
    assert second.decision["strategy"] == "sticky"


def test_the_owner_is_the_operator_of_the_last_assigned_contact(anna, boris):
    source, first = returning_lead("prefer", anna, boris)
    reassign_contact(contact=first, operator=boris)  # staff moved the lead to Boris

    second = intake(source, "x")

    assert (second.operator, second.decision["strategy"]) == (boris, "sticky")


@pytest.mark.parametrize("reason", list(MAKE_INELIGIBLE))
def test_prefer_goes_by_the_rule_when_the_owner_cannot_take_it_and_says_why(anna, boris, reason):
    source, _ = returning_lead("prefer", anna, boris)
    MAKE_INELIGIBLE[reason](anna, source)

    second = intake(source, "x")

    assert second.status == Contact.Status.OPEN
    assert (second.operator, second.by_owner) == (boris, False)
    assert second.decision["strategy"] == "round_robin"
    assert second.decision["owner"]["operator_id"] == anna.pk
    assert second.decision["owner"]["left_out"] == reason
    assert second.waits_for_id is None
    if reason != "not_on_source":
        assert left_out(second)[anna.pk] == reason


def test_prefer_goes_by_the_rule_when_the_owner_declined_this_very_contact(anna, boris):
    source = SourceFactory(
        code="offers", strategy=Source.Strategy.ROUND_ROBIN, accept_timeout_seconds=60
    )
    serve(source, anna, boris)
    first = intake(source, "x")
    offers.accept_offer(contact=first, by_operator=anna)
    second = intake(source, "x")
    assert (second.status, second.operator, second.by_owner) == (
        Contact.Status.OFFERED,
        anna,
        True,
    )

    offers.decline_offer(contact=second, by_operator=anna, reason="not mine")

    second = reload(second)
    assert (second.status, second.operator, second.by_owner) == (
        Contact.Status.OFFERED,
        boris,
        False,
    )
    assert second.decision["strategy"] == "round_robin"
    assert second.decision["owner"]["left_out"] == "missed_offer"
    assert left_out(second)[anna.pk] == "missed_offer"


@pytest.mark.parametrize(("days_ago", "sticky"), [(29, True), (31, False)])
def test_a_lead_stays_its_operators_for_the_sticky_days_only(anna, boris, days_ago, sticky):
    source, first = returning_lead("prefer", anna, boris)
    assert source.sticky_days == 30
    Contact.objects.filter(pk=first.pk).update(
        assigned_at=timezone.now() - timedelta(days=days_ago)
    )

    second = intake(source, "x")

    if sticky:
        assert (second.operator, second.decision["strategy"]) == (anna, "sticky")
    else:
        assert (second.operator, second.by_owner) == (boris, False)
        assert second.decision["strategy"] == "round_robin"
        assert "owner" not in second.decision


def test_sticky_off_goes_by_the_weights_only(anna, boris):
    source, _ = returning_lead("off", anna, boris)

    second = intake(source, "x")

    assert (second.operator, second.by_owner) == (boris, False)
    assert second.decision["strategy"] == "round_robin"
    assert "owner" not in second.decision


# Sticky 'require' ----------------------------------------------------------------------


@pytest.mark.parametrize("reason", PASSING)
def test_require_waits_for_the_owner_while_the_reason_may_pass(anna, boris, reason):
    source, _ = returning_lead("require", anna, boris)
    MAKE_INELIGIBLE[reason](anna, source)

    second = intake(source, "x")

    second = reload(second)
    assert (second.status, second.operator) == (Contact.Status.WAITING, None)
    assert second.waits_for_id == anna.pk
    assert second.waits_until == second.created_at + timedelta(seconds=WAIT)
    assert second.by_owner is False
    assert second.decision["strategy"] == "sticky"
    assert second.decision["owner"]["left_out"] == reason
    assert second.decision["chosen_operator_id"] is None
    assert actions(second) == [Action.WAITS_FOR_OWNER]


@pytest.mark.parametrize("reason", NOT_PASSING)
def test_require_goes_by_the_rule_at_once_when_the_reason_will_not_pass(anna, boris, reason):
    source, _ = returning_lead("require", anna, boris)
    MAKE_INELIGIBLE[reason](anna, source)

    second = intake(source, "x")

    assert (second.status, second.operator) == (Contact.Status.OPEN, boris)
    assert (second.waits_for_id, second.waits_until) == (None, None)
    assert second.decision["strategy"] == "round_robin"
    assert second.decision["owner"]["left_out"] == reason
    assert actions(second) == [Action.ASSIGNED]


def test_a_contact_waiting_for_its_owner_is_not_taken_by_others(anna):
    boris = OperatorFactory(name="Boris", max_open_contacts=1)
    source, _ = returning_lead("require", anna, boris)
    boris_contact = intake(source, "y")
    assert boris_contact.operator == boris
    _away(anna, source)
    second = intake(source, "x")
    assert second.waits_for_id == anna.pk

    close_contact(contact=boris_contact)  # Boris's freed place drains his queue
    assert drain_where_time_freed_room(timezone.now()) == 0
    assert engine.drain_waiting_queue() == 0

    second = reload(second)
    assert (second.status, second.operator, second.waits_for_id) == (
        Contact.Status.WAITING,
        None,
        anna.pk,
    )


def test_the_owner_takes_its_waiting_contact_first_when_it_frees_a_place():
    anna = OperatorFactory(name="Anna", max_open_contacts=1)
    boris = OperatorFactory(name="Boris", max_open_contacts=1)
    source, first = returning_lead("require", anna, boris)
    intake(source, "y")  # Boris is full too
    older = intake(source, "z")  # a new lead: waits for anyone
    second = intake(source, "x")  # waits for Anna, at her limit
    assert (older.status, older.waits_for_id) == (Contact.Status.WAITING, None)
    assert (second.status, second.waits_for_id) == (Contact.Status.WAITING, anna.pk)

    close_contact(contact=first)

    second, older = reload(second), reload(older)
    assert (second.status, second.operator, second.by_owner) == (Contact.Status.OPEN, anna, True)
    assert (second.waits_for_id, second.waits_until) == (None, None)
    assert second.decision["strategy"] == "sticky"
    assert second.decision["trigger"] == "contact_closed"
    assert actions(second) == [Action.WAITS_FOR_OWNER, Action.ASSIGNED]
    assert older.status == Contact.Status.WAITING


def test_the_owner_coming_back_takes_its_waiting_contact(anna, boris):
    source, _ = returning_lead("require", anna, boris)
    _away(anna, source)
    second = intake(source, "x")

    operators.set_operator_status(operator=anna, status=Operator.Status.AVAILABLE)

    second = reload(second)
    assert (second.status, second.operator, second.by_owner) == (Contact.Status.OPEN, anna, True)
    assert second.decision["strategy"] == "sticky"


def test_when_the_owner_does_not_come_back_the_wait_ends_by_the_rule_in_its_place(anna, boris):
    source, _ = returning_lead("require", anna, boris)
    _away(anna, source)
    second = reload(intake(source, "x"))
    arrived = second.created_at

    assert engine.end_owner_waits(second.waits_until - timedelta(seconds=1)) == 0
    assert reload(second).status == Contact.Status.WAITING
    assert engine.end_owner_waits(second.waits_until + timedelta(seconds=1)) == 1

    second = reload(second)
    assert (second.status, second.operator, second.by_owner) == (Contact.Status.OPEN, boris, False)
    assert (second.waits_for_id, second.waits_until) == (None, None)
    assert second.decision["strategy"] == "round_robin"
    assert second.decision["owner"]["left_out"] == "away"
    assert second.created_at == arrived
    assert actions(second) == [Action.WAITS_FOR_OWNER, Action.ASSIGNED]


def test_a_wait_that_ends_with_nobody_free_stays_in_line_unreserved_at_its_place(anna, boris):
    source, _ = returning_lead("require", anna, boris)
    operators.update_operator(operator=boris, max_open_contacts=0)
    _away(anna, source)
    second = reload(intake(source, "x"))
    later = intake(source, "w")  # a new lead, after it: waits for anyone
    assert later.waits_for_id is None

    assert engine.end_owner_waits(second.waits_until + timedelta(seconds=1)) == 0

    ended = reload(second)
    assert (ended.status, ended.waits_for_id, ended.waits_until) == (
        Contact.Status.WAITING,
        None,
        None,
    )
    assert ended.created_at == second.created_at
    assert actions(ended) == [Action.WAITS_FOR_OWNER, Action.QUEUED]
    # Boris gets one place: it goes to the contact that arrived first.
    operators.update_operator(operator=boris, max_open_contacts=1)
    assert (reload(second).status, reload(second).operator) == (Contact.Status.OPEN, boris)
    assert reload(later).status == Contact.Status.WAITING


def test_the_worker_runs_the_owner_wait_and_overflow_passes():
    names = [p.name for p in PASSES]
    assert "end_owner_waits" in names
    assert "overflow_waiting" in names
    assert "drain_where_time_freed_room" in names


# Bursts --------------------------------------------------------------------------------


def test_an_operator_back_takes_its_burst_and_the_next_burst_when_the_window_moves_on():
    source = SourceFactory(code="queue")
    anna = OperatorFactory(
        name="Anna",
        max_open_contacts=30,
        burst_limit=5,
        burst_window_minutes=10,
        status=Operator.Status.AWAY,
    )
    serve(source, anna)
    waiting = [ContactFactory(source=source) for _ in range(30)]
    back = timezone.now()

    operators.set_operator_status(operator=anna, status=Operator.Status.AVAILABLE, now=back)

    def hers() -> list[int]:
        return list(anna.contacts.order_by("id").values_list("id", flat=True))

    assert hers() == [c.pk for c in waiting[:5]]  # the oldest five
    assert Contact.objects.filter(status=Contact.Status.WAITING).count() == 25
    assert drain_where_time_freed_room(back + timedelta(minutes=5)) == 0
    assert drain_where_time_freed_room(back + timedelta(minutes=10, seconds=1)) == 5
    assert hers() == [c.pk for c in waiting[:10]]
    assert Contact.objects.filter(status=Contact.Status.WAITING).count() == 20


def test_the_rest_of_a_burst_goes_to_other_operators():
    source = SourceFactory(code="queue")
    anna = OperatorFactory(name="Anna", max_open_contacts=30, burst_limit=5, status="away")
    boris = OperatorFactory(name="Boris", max_open_contacts=30, status="away")
    serve(source, anna, boris)
    for _ in range(30):
        ContactFactory(source=source)

    operators.set_operator_status(operator=anna, status=Operator.Status.AVAILABLE)
    operators.set_operator_status(operator=boris, status=Operator.Status.AVAILABLE)

    loads = Counter(Contact.objects.filter(status="open").values_list("operator__name", flat=True))
    assert loads == {"Anna": 5, "Boris": 25}


def test_a_new_contact_while_the_operator_is_at_its_burst_limit_waits_and_says_why():
    source = SourceFactory(code="burst")
    anna = OperatorFactory(name="Anna", max_open_contacts=30, burst_limit=2)
    serve(source, anna)

    given = [intake(source, f"lead-{n}") for n in range(3)]

    assert [c.operator for c in given] == [anna, anna, None]
    assert given[2].status == Contact.Status.WAITING
    assert left_out(given[2]) == {anna.pk: "burst_limit"}


def test_the_project_burst_limit_applies_to_operators_without_their_own(settings):
    settings.BURST_LIMIT, settings.BURST_WINDOW_MINUTES = 2, 10
    source = SourceFactory(code="burst")
    anna = OperatorFactory(name="Anna", max_open_contacts=30)  # the project's limit
    boris = OperatorFactory(name="Boris", max_open_contacts=30, burst_limit=3)  # his own
    serve(source, anna, boris)

    given = [intake(source, f"lead-{n}") for n in range(6)]

    assert Counter(c.operator.name for c in given if c.operator) == {"Anna": 2, "Boris": 3}
    assert left_out(given[-1]) == {anna.pk: "burst_limit", boris.pk: "burst_limit"}


def test_the_burst_count_reads_the_given_steps_of_the_history():
    anna = OperatorFactory(name="Anna", burst_limit=10, burst_window_minutes=10)
    now = timezone.now()
    contact = ContactFactory()
    for action, minutes_ago in [
        (Action.ASSIGNED, 1),
        (Action.OFFERED, 2),
        (Action.REASSIGNED, 3),
        (Action.ASSIGNED, 11),  # before the window
        (Action.ACCEPTED, 1),
        (Action.DECLINED, 1),
        (Action.EXPIRED, 1),
        (Action.WITHDRAWN, 1),
        (Action.CLOSED, 1),
        (Action.QUEUED, 1),
    ]:
        ContactHistory.objects.create(
            contact=contact,
            operator=anna,
            action=action,
            status=Contact.Status.OPEN,
            at=now - timedelta(minutes=minutes_ago),
        )

    [state] = queries.operator_states(source_id=None, operator_ids=[anna.pk], now=now)

    assert state.given_in_window == 3
    assert queries.given_since({anna.pk: now - timedelta(minutes=10)}) == {anna.pk: 3}


def test_what_the_engine_gives_is_what_the_burst_counts(anna, boris):
    operators.update_operator(operator=anna, burst_limit=10)
    offering = SourceFactory(code="offers", accept_timeout_seconds=60)
    serve(offering, anna)
    offered = intake(offering, "a")  # offered: counted
    offers.accept_offer(contact=offered, by_operator=anna)  # accepted: not again
    plain = SourceFactory(code="plain")
    serve(plain, boris)
    moved = intake(plain, "b")  # assigned, to Boris
    serve(plain, anna, boris)
    reassign_contact(contact=moved, operator=anna)  # reassigned: counted
    close_contact(contact=moved)  # closed: not counted

    [state] = queries.operator_states(source_id=None, operator_ids=[anna.pk], now=timezone.now())

    assert state.given_in_window == 2


# Round robin ---------------------------------------------------------------------------


def test_round_robin_credit_does_not_pile_up_while_an_operator_is_away(anna, boris):
    source = SourceFactory(code="rr", strategy=Source.Strategy.ROUND_ROBIN)
    Operator.objects.update(max_open_contacts=1000)
    serve(source, anna, boris)
    operators.set_operator_status(operator=boris, status=Operator.Status.AWAY)
    away = [intake(source, f"a-{n}").operator for n in range(100)]
    operators.set_operator_status(operator=boris, status=Operator.Status.AVAILABLE)

    back = Counter(intake(source, f"b-{n}").operator for n in range(10))

    assert set(away) == {anna}
    assert back[boris] <= 5 + 1  # his fair share of ten, give or take one: no catch-up


ELEVEN, NOON = datetime(2026, 12, 7, 11, 0, tzinfo=UTC), datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def tied(operator_id: int, last_assigned_at: datetime | None) -> OperatorState:
    """An operator on the source with the same weight and credit as every other."""
    return OperatorState(
        operator_id=operator_id,
        name=f"Op{operator_id}",
        is_active=True,
        load=0,
        limit=10,
        weight=1,
        last_assigned_at=last_assigned_at,
    )


@pytest.mark.parametrize(
    ("first", "second", "chosen"),
    [
        (NOON, ELEVEN, 2),
        (ELEVEN, NOON, 1),
        (NOON, None, 2),  # never given one: least recent of all
        (None, None, 1),  # a true tie: the lowest id
    ],
)
def test_round_robin_ties_go_to_the_operator_given_a_contact_least_recently(first, second, chosen):
    choice = choose(ROUND_ROBIN, [tied(1, first), tied(2, second)], rng=random.Random(1))

    assert choice.decision.chosen_operator_id == chosen


def test_round_robin_ties_read_when_operators_were_last_given_a_contact(anna, boris):
    source = SourceFactory(code="rr", strategy=Source.Strategy.ROUND_ROBIN)
    serve(source, anna, boris)
    first = intake(source, "a")
    assert first.operator == anna
    anna.refresh_from_db()
    assert anna.last_assigned_at == first.assigned_at
    serve(source, anna, boris, weight=2)  # new weights: the credits start again, tied

    assert intake(source, "b").operator == boris


# Priority and overflow -----------------------------------------------------------------


def test_a_freed_place_takes_the_higher_priority_source_first_even_if_newer():
    anna = OperatorFactory(name="Anna", max_open_contacts=1)
    low = SourceFactory(code="low", priority=0)
    high = SourceFactory(code="high", priority=5)
    serve(low, anna)
    serve(high, anna)
    first = intake(low, "first")
    older = intake(low, "older")
    newer = intake(high, "newer")
    assert older.created_at < newer.created_at

    close_contact(contact=first)

    assert (reload(newer).status, reload(newer).operator) == (Contact.Status.OPEN, anna)
    assert reload(older).status == Contact.Status.WAITING


def test_a_freed_place_takes_the_oldest_first_across_sources_of_one_priority():
    anna = OperatorFactory(name="Anna", max_open_contacts=1)
    one, two = SourceFactory(code="one", priority=3), SourceFactory(code="two", priority=3)
    serve(one, anna)
    serve(two, anna)
    first = intake(one, "first")
    older = intake(two, "older")
    newer = intake(one, "newer")

    close_contact(contact=first)

    assert (reload(older).status, reload(older).operator) == (Contact.Status.OPEN, anna)
    assert reload(newer).status == Contact.Status.WAITING


@pytest.fixture
def overflowing() -> tuple[Source, Contact]:
    """A source whose only operator is full, with a contact waiting; overflow after 60 s."""
    source = SourceFactory(code="busy", overflow_after_seconds=60)
    serve(source, OperatorFactory(name="Anna", max_open_contacts=1))
    intake(source, "first")
    waiting = intake(source, "second")
    assert waiting.status == Contact.Status.WAITING
    return source, reload(waiting)


def test_a_contact_goes_to_the_overflow_operators_only_after_the_overflow_time(overflowing):
    source, waiting = overflowing
    carl = OperatorFactory(name="Carl")  # not on the source
    set_source_overflow(source=source, weights={carl.pk: 1})

    assert engine.overflow_waiting(waiting.created_at + timedelta(seconds=30)) == 0
    assert reload(waiting).status == Contact.Status.WAITING
    assert engine.overflow_waiting(waiting.created_at + timedelta(seconds=61)) == 1

    given = reload(waiting)
    assert (given.status, given.operator) == (Contact.Status.OPEN, carl)
    assert given.decision["strategy"] == "overflow"
    assert left_out(given) == {carl.pk: None}


def test_an_overflow_operator_at_its_limit_is_left_out(overflowing):
    source, waiting = overflowing
    carl = OperatorFactory(name="Carl", max_open_contacts=1)
    ContactFactory(open=True, operator=carl)
    dora = OperatorFactory(name="Dora")
    set_source_overflow(source=source, weights={carl.pk: 100, dora.pk: 1})

    assert engine.overflow_waiting(waiting.created_at + timedelta(seconds=61)) == 1

    given = reload(waiting)
    assert (given.operator, given.decision["strategy"]) == (dora, "overflow")
    assert left_out(given) == {carl.pk: "at_limit", dora.pk: None}


def test_with_every_overflow_operator_at_its_limit_the_contact_keeps_waiting(overflowing):
    source, waiting = overflowing
    carl = OperatorFactory(name="Carl", max_open_contacts=1)
    ContactFactory(open=True, operator=carl)
    set_source_overflow(source=source, weights={carl.pk: 1})

    assert engine.overflow_waiting(waiting.created_at + timedelta(seconds=61)) == 0

    assert (reload(waiting).status, reload(waiting).operator) == (Contact.Status.WAITING, None)


def test_a_pass_that_gives_a_waiting_contact_dates_it_at_its_own_moment(overflowing):
    """As drain_where_time_freed_room does (test_worker): the contact's assigned_at, its
    history step and its operator's last_assigned_at all read the pass's `now`."""
    source, waiting = overflowing
    carl = OperatorFactory(name="Carl")
    set_source_overflow(source=source, weights={carl.pk: 1})
    moment = waiting.created_at + timedelta(minutes=5)

    assert engine.overflow_waiting(moment) == 1

    given = reload(waiting)
    step = given.history.order_by("id").last()
    carl.refresh_from_db()
    assert (step.action, step.at) == (Action.ASSIGNED, moment)
    assert carl.last_assigned_at == moment
    assert given.assigned_at == moment


# Weights with returning leads ----------------------------------------------------------


def test_new_leads_shares_follow_weights_when_half_the_traffic_is_returning_leads(monkeypatch):
    """test_engine's tolerance test, with a returning lead's contact after each new one:
    those go to their owners and leave the new leads' shares as the weights say."""
    monkeypatch.setattr(engine, "_rng", random.Random(42))
    source = SourceFactory(code="shares", sticky=Source.Sticky.PREFER)
    heavy = OperatorFactory(max_open_contacts=10_000)
    light = OperatorFactory(max_open_contacts=10_000)
    set_source_weights(source=source, weights={heavy.pk: 3, light.pk: 1})
    leads = random.Random(7)
    owners: dict[str, int] = {}
    for n in range(1000):
        owners[f"new-{n}"] = intake(source, f"new-{n}").operator_id
        back = leads.choice(list(owners))
        assert intake(source, back).operator_id == owners[back]

    new = Counter(Contact.objects.filter(by_owner=False).values_list("operator_id", flat=True))
    # Expected 750 / 250; one standard deviation of the heavy count is about 14.
    assert abs(new[heavy.pk] - 750) < 60
    assert new[heavy.pk] + new[light.pk] == 1000
    assert Contact.objects.filter(by_owner=True).count() == 1000
