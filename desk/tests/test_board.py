"""The supervisors' board: staff only, and what it shows."""

from datetime import timedelta

import pytest
from django.utils import timezone

from distribution.contacts import close_contact, reassign_contact, register_contact
from distribution.models import Operator
from leads.identity import build_identity
from tests.factories import (
    ContactFactory,
    OperatorFactory,
    OperatorSourceWeightFactory,
    SourceFactory,
    StaffUserFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def board(client):
    client.force_login(StaffUserFactory())
    return client


def test_the_board_is_for_staff(client):
    assert client.get("/desk/board/")["Location"] == "/desk/login/?next=/desk/board/"
    client.force_login(OperatorFactory(user=UserFactory()).user)

    assert client.get("/desk/board/").status_code == 403
    assert client.get("/desk/board/live/").status_code == 403


def test_the_board_shows_each_operators_presence_shift_load_and_oldest_open_contact(board):
    now = timezone.now()
    ivan = OperatorFactory(name="Ivan", max_open_contacts=3)
    ContactFactory(open=True, operator=ivan, created_at=now - timedelta(minutes=40))
    ContactFactory(open=True, operator=ivan, created_at=now - timedelta(minutes=5))
    OperatorFactory(name="Maria", status=Operator.Status.AWAY)
    OperatorFactory(name="Oleg", is_active=False)

    response = board.get("/desk/board/")

    rows = {row.operator.name: row for row in response.context["board"].operators}
    assert (rows["Ivan"].state.load, rows["Ivan"].state.limit) == (2, 3)
    assert rows["Ivan"].load_percent == 67
    assert rows["Ivan"].oldest_open_at == now - timedelta(minutes=40)
    assert rows["Maria"].state.status == "away"
    assert response.context["board"].presence == {"available": 1, "away": 1, "offline": 0}
    page = response.content.decode()
    assert "2 / 3" in page and "40\xa0minutes" in page
    assert "Off the team" in page  # Oleg


def test_the_board_shows_each_sources_waiting_count_and_oldest_waiting_age(board):
    now = timezone.now()
    site = SourceFactory(code="site-form")
    ContactFactory(source=site, created_at=now - timedelta(hours=2))
    ContactFactory(source=site, created_at=now - timedelta(minutes=1))
    ContactFactory(source=site, open=True)
    SourceFactory(code="quiet-bot")

    response = board.get("/desk/board/")

    rows = {row.source.code: row for row in response.context["board"].sources}
    assert (rows["site-form"].waiting, rows["quiet-bot"].waiting) == (2, 0)
    assert rows["site-form"].oldest_waiting_at == now - timedelta(hours=2)
    assert response.context["board"].sources[0].source.code == "site-form"  # longest first
    assert "2\xa0hours" in response.content.decode()


def test_the_board_lists_the_latest_assignments_with_their_reasons(board):
    weight = OperatorSourceWeightFactory(operator__name="Ivan", source__code="telegram-bot")
    contact = register_contact(source=weight.source, identity=build_identity(phone="+79161234567"))
    moved = register_contact(source=weight.source, identity=build_identity(phone="+79161234568"))
    maria = OperatorSourceWeightFactory(operator__name="Maria", source=weight.source).operator
    reassign_contact(contact=moved, operator=maria)

    response = board.get("/desk/board/")

    reasons = dict(response.context["assignments"])
    assert reasons[moved] == "Chosen by staff"
    assert reasons[contact] == "Weighted random; 1 of 1 could take it"


def test_a_contact_from_the_queue_says_what_freed_the_place(board):
    weight = OperatorSourceWeightFactory(operator__max_open_contacts=1)
    busy = ContactFactory(open=True, operator=weight.operator, source=weight.source)
    waiting = ContactFactory(source=weight.source)
    close_contact(contact=busy)

    reasons = dict(board.get("/desk/board/").context["assignments"])
    assert reasons[waiting] == "From the waiting queue: a contact was closed"


def test_the_board_refresh_answers_204_until_something_changes(board):
    source = SourceFactory()
    version = board.get("/desk/board/").context["version"]

    assert board.get(f"/desk/board/live/?version={version}").status_code == 204

    ContactFactory(source=source)
    assert board.get(f"/desk/board/live/?version={version}").status_code == 200


def test_the_admin_index_links_to_the_board(board):
    assert 'href="/desk/board/"' in board.get("/admin/").content.decode()
