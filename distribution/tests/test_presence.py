"""Operators at work: presence and shifts in the engine's decision, becoming available
draining the queue, and the operator's own API (/api/me/) with what it may not touch."""

from datetime import UTC, date, datetime, time, timedelta

import pytest
from django.db import transaction
from django.utils import timezone
from rest_framework.test import APIClient

from distribution import engine, operators
from distribution.models import Contact, DayOff, Operator, OperatorStatusChange, Shift
from distribution.shifts import ShiftInterval
from tests.factories import (
    ContactFactory,
    OperatorFactory,
    OperatorSourceWeightFactory,
    SourceFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

WEDNESDAY_NOON = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def decide(source, now=WEDNESDAY_NOON) -> dict[str, str | None]:
    """Each candidate's reason in the engine's decision for a new contact of `source`."""
    with transaction.atomic():
        assignment = engine.choose_operator(source=source, now=now)
        transaction.set_rollback(True)
    return {c.name: c.left_out for c in assignment.decision.candidates}


def test_away_offline_and_off_shift_operators_are_left_out_with_their_reason():
    source = SourceFactory()
    for name, status in [("Anna", "available"), ("Boris", "away"), ("Vera", "offline")]:
        OperatorSourceWeightFactory(source=source, operator__name=name, operator__status=status)
    gleb = OperatorSourceWeightFactory(source=source, operator__name="Gleb").operator
    operators.set_operator_shifts(operator=gleb, shifts=[ShiftInterval(0, time(9), time(18))])

    assert decide(source) == {"Anna": None, "Boris": "away", "Vera": "offline", "Gleb": "off_shift"}


def test_a_night_shift_past_midnight_counts_in_the_engine():
    source = SourceFactory()
    owl = OperatorSourceWeightFactory(source=source, operator__name="Owl").operator
    # Tuesday night, past midnight
    operators.set_operator_shifts(operator=owl, shifts=[ShiftInterval(1, time(22), time(6))])

    assert decide(source, datetime(2026, 12, 2, 3, 0, tzinfo=UTC)) == {"Owl": None}
    assert decide(source, datetime(2026, 12, 2, 6, 0, tzinfo=UTC)) == {"Owl": "off_shift"}


def test_a_day_off_keeps_the_operator_off_shift():
    source = SourceFactory()
    operator = OperatorSourceWeightFactory(source=source, operator__name="Ivan").operator
    days_off = [DayOff(first_day=date(2026, 12, 1), last_day=date(2026, 12, 3))]
    operators.set_operator_days_off(operator=operator, days_off=days_off)

    assert decide(source) == {"Ivan": "off_shift"}
    assert decide(source, datetime(2026, 12, 4, 12, 0, tzinfo=UTC)) == {"Ivan": None}


def test_away_keeps_open_contacts_and_becoming_available_takes_the_oldest_waiting():
    source = SourceFactory()
    ivan = OperatorSourceWeightFactory(
        source=source, operator__status="away", operator__max_open_contacts=2
    ).operator
    kept = ContactFactory(source=source, open=True, operator=ivan)
    older, newer, newest = (ContactFactory(source=source) for _ in range(3))

    operators.set_operator_status(operator=ivan, status="available")

    assert Contact.objects.get(pk=kept.pk).operator == ivan
    statuses = dict(Contact.objects.values_list("id", "status"))
    assert [statuses[c.pk] for c in (older, newer, newest)] == ["open", "waiting", "waiting"]
    assert Contact.objects.get(pk=older.pk).decision["trigger"] == "operator_available"
    assert list(ivan.status_changes.values_list("status", flat=True)) == ["available"]


def test_going_away_keeps_open_contacts_and_is_kept_in_the_history():
    ivan = OperatorFactory()
    contact = ContactFactory(open=True, operator=ivan)

    operators.set_operator_status(operator=ivan, status="away")

    assert Contact.objects.get(pk=contact.pk).status == Contact.Status.OPEN
    assert Operator.objects.get(pk=ivan.pk).status == "away"
    assert list(OperatorStatusChange.objects.values_list("status", flat=True)) == ["away"]


def test_taking_back_a_day_off_gives_the_operator_its_waiting_contacts():
    source = SourceFactory()
    ivan = OperatorSourceWeightFactory(source=source).operator
    today = timezone.now().date()
    waiting = ContactFactory(source=source)
    days_off = [DayOff(first_day=today - timedelta(days=1), last_day=today + timedelta(days=1))]
    operators.set_operator_days_off(operator=ivan, days_off=days_off)  # nothing moves
    assert Contact.objects.get(pk=waiting.pk).status == Contact.Status.WAITING

    operators.set_operator_days_off(operator=ivan, days_off=[])  # no day off, no shifts

    assert Contact.objects.get(pk=waiting.pk).operator == ivan


# The operator's own API


@pytest.fixture
def ivan() -> Operator:
    return OperatorFactory(name="Ivan", user=UserFactory(username="ivan"))


@pytest.fixture
def desk(ivan) -> APIClient:
    client = APIClient()
    client.force_authenticate(user=ivan.user)
    return client


def test_an_operator_reads_itself_and_sets_its_status(desk, ivan):
    ContactFactory(open=True, operator=ivan)

    me = desk.get("/api/me/")
    changed = desk.patch("/api/me/", {"status": "away"}, format="json")

    assert me.status_code == 200
    assert (me.data["name"], me.data["open_contacts"], me.data["on_shift"]) == ("Ivan", 1, True)
    assert changed.status_code == 200
    assert changed.data["status"] == "away"
    assert Operator.objects.get(pk=ivan.pk).status == "away"


def test_an_unknown_status_is_a_field_error_and_changes_nothing(desk, ivan):
    response = desk.patch("/api/me/", {"status": "busy"}, format="json")

    assert response.status_code == 400
    assert "status" in response.data
    assert Operator.objects.get(pk=ivan.pk).status == "available"


def test_an_operator_sees_and_closes_only_its_own_contacts(desk, ivan):
    own = ContactFactory(open=True, operator=ivan)
    others = ContactFactory(open=True)

    listed = desk.get("/api/me/contacts/")
    closed = desk.post(f"/api/contacts/{own.pk}/close/")
    refused = desk.post(f"/api/contacts/{others.pk}/close/")

    assert [row["id"] for row in listed.data["results"]] == [own.pk]
    assert closed.status_code == 200
    assert refused.status_code == 404
    assert Contact.objects.get(pk=others.pk).status == Contact.Status.OPEN


@pytest.mark.parametrize(
    "route", ["/api/operators/", "/api/sources/", "/api/contacts/", "/api/stats/distribution/"]
)
def test_an_operator_login_may_not_use_the_staff_api(desk, route):
    assert desk.get(route).status_code == 403


def test_an_operator_login_may_not_open_the_admin(client, ivan):
    client.force_login(ivan.user)

    assert client.get("/admin/").status_code == 403
    assert client.get("/admin/distribution/contact/").status_code == 403


def test_a_bot_key_and_a_staff_login_without_an_operator_cannot_use_me(bot_client, api):
    assert bot_client(SourceFactory()).get("/api/me/").status_code == 403
    assert api.get("/api/me/").status_code == 403


# Staff: presence, zone, login and shifts of an operator


def test_staff_set_an_operators_shifts_and_read_them_back(api, ivan):
    week = [
        {"weekday": 0, "start": "09:00", "end": "18:00"},
        {"weekday": 4, "start": "22:00", "end": "06:00"},
    ]

    put = api.put(f"/api/operators/{ivan.pk}/shifts/", week, format="json")
    got = api.get(f"/api/operators/{ivan.pk}/shifts/")

    assert put.status_code == 200
    assert got.data == week
    assert [ShiftInterval(s.weekday, s.start, s.end) for s in ivan.shifts.all()] == [
        ShiftInterval(0, time(9), time(18)),
        ShiftInterval(4, time(22), time(6)),
    ]


@pytest.mark.parametrize(
    ("week", "errors"),
    [
        (
            [{"weekday": 0, "start": "09:00", "end": "09:00"}],
            {"0": {"end": ["Must differ from start."]}},
        ),
        (
            [
                {"weekday": 0, "start": "09:00", "end": "13:00"},
                {"weekday": 0, "start": "12:00", "end": "18:00"},
            ],
            {"1": {"non_field_errors": ["Overlaps shift 0."]}},
        ),
        ([{"weekday": 7, "start": "09:00", "end": "10:00"}], None),
    ],
)
def test_bad_shifts_are_field_errors_and_store_nothing(api, ivan, week, errors):
    Shift.objects.create(operator=ivan, weekday=2, start=time(9), end=time(17))

    response = api.put(f"/api/operators/{ivan.pk}/shifts/", week, format="json")

    assert response.status_code == 400
    if errors is not None:
        assert response.json() == errors
    assert list(ivan.shifts.values_list("weekday", flat=True)) == [2]


def test_staff_set_status_zone_and_login_and_refuse_an_unknown_zone(api, ivan):
    login = UserFactory(username="ivan2")

    changed = api.patch(
        f"/api/operators/{ivan.pk}/",
        {"status": "offline", "time_zone": "Europe/Moscow", "user": login.pk},
        format="json",
    )
    refused = api.patch(f"/api/operators/{ivan.pk}/", {"time_zone": "Mars/Olympus"}, format="json")

    assert changed.status_code == 200
    stored = Operator.objects.get(pk=ivan.pk)
    assert (stored.status, stored.time_zone, stored.user) == ("offline", "Europe/Moscow", login)
    assert refused.status_code == 400
    assert list(refused.data) == ["time_zone"]


def test_a_staff_login_cannot_become_an_operators_login(api, ivan, staff_user):
    response = api.patch(f"/api/operators/{ivan.pk}/", {"user": staff_user.pk}, format="json")

    assert response.status_code == 400
    assert list(response.data) == ["user"]


def test_the_operators_row_keeps_its_hours_whichever_way_they_are_set():
    """Operator.hours, which the intake reads, follows the shifts and days off."""
    ivan = OperatorFactory()
    monday = [ShiftInterval(0, time(9), time(18))]
    holiday = [DayOff(first_day=date(2026, 12, 31), last_day=date(2027, 1, 2))]

    def hours() -> str:
        return Operator.objects.get(pk=ivan.pk).hours

    operators.set_operator_shifts(operator=ivan, shifts=monday)
    assert hours() == "0 09:00 18:00;"
    operators.set_operator_days_off(operator=ivan, days_off=holiday)
    assert hours() == "0 09:00 18:00;2026-12-31 2027-01-02"
    operators.set_operator_shifts(operator=ivan, shifts=[])
    assert hours() == ";2026-12-31 2027-01-02"
    operators.set_operator_days_off(operator=ivan, days_off=[])
    assert hours() == ""
