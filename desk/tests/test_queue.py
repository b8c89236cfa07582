"""The waiting queue: staff only; per source the contacts waiting, oldest first, why
nobody took them, and assigning or closing them from the page."""

import re
from datetime import timedelta
from html import unescape

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from distribution.contacts import register_contact
from distribution.models import Contact, Operator, Source
from leads.identity import build_identity
from tests.factories import (
    ContactFactory,
    LeadFactory,
    OperatorFactory,
    OperatorSourceWeightFactory,
    SourceFactory,
    StaffUserFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client: Client) -> Client:
    client.force_login(StaffUserFactory())
    return client


def readable(html: str) -> str:
    """HTML as a person reads it: tags gone, entities decoded, spaces collapsed."""
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def text(response) -> str:
    return readable(response.content.decode())


def section(response, code: str) -> str:
    """The HTML of one source's part of the page."""
    html = response.content.decode()
    match = re.search(rf'<section[^>]* id="queue-{code}".*?</section>', html, flags=re.S)
    assert match, f"no section for {code}"
    return match.group(0)


def options(html: str) -> list[tuple[str, bool]]:
    """The first operator dropdown's entries after its prompt: (label, disabled)."""
    select = re.search(r'<select name="operator".*?</select>', html, flags=re.S).group(0)
    found = re.findall(r"<option value=\"(\d+)\"( disabled)?>(.*?)</option>", select)
    return [(unescape(label), bool(disabled)) for _, disabled, label in found]


def test_the_queue_is_for_staff(client: Client):
    contact = ContactFactory()
    assert client.get("/desk/queue/")["Location"] == "/desk/login/?next=/desk/queue/"
    client.force_login(OperatorFactory(user=UserFactory()).user)

    assert client.get("/desk/queue/").status_code == 403
    assert client.post(f"/desk/queue/{contact.pk}/close/").status_code == 403
    assert client.post(f"/desk/queue/{contact.pk}/assign/").status_code == 403
    contact.refresh_from_db()
    assert contact.status == Contact.Status.WAITING


def test_an_empty_queue_says_nobody_is_waiting(staff: Client):
    SourceFactory(code="site-form", name="Site form")

    page = text(staff.get("/desk/queue/"))

    assert "Waiting queue Nobody is waiting." in page
    assert "Site form site-form 0 Nobody is waiting." in page


def test_sources_come_by_priority_then_code_each_with_its_count(staff: Client):
    for code, priority in [("b-chat", 0), ("a-chat", 0), ("vip-line", 5)]:
        ContactFactory(source=SourceFactory(code=code, name=code.upper(), priority=priority))
    ContactFactory(source=Source.objects.get(code="b-chat"))

    response = staff.get("/desk/queue/")

    headings = re.findall(r'<section[^>]* id="queue-([\w-]+)"', response.content.decode())
    assert headings == ["vip-line", "a-chat", "b-chat"]
    page = text(response)
    assert "4 contacts waiting" in page
    assert "B-CHAT b-chat 2" in page and "VIP-LINE vip-line 1 priority 5" in page


def test_each_queue_is_oldest_first_with_its_age(staff: Client):
    now = timezone.now()
    source = SourceFactory(code="site-form")
    newer = ContactFactory(
        source=source, created_at=now - timedelta(minutes=5), lead=LeadFactory(name="Boris")
    )
    older = ContactFactory(
        source=source, created_at=now - timedelta(hours=2), lead=LeadFactory(name="Anna")
    )
    ContactFactory(source=source, open=True, lead=LeadFactory(name="Vera"))  # not waiting

    html = section(staff.get("/desk/queue/"), "site-form")

    ids = [int(pk) for pk in re.findall(r'id="waiting-(\d+)"', html)]
    assert ids == [older.pk, newer.pk]
    page = readable(html)
    assert f"Anna #{older.pk} waiting 2 hours" in page
    assert f"Boris #{newer.pk} waiting 5 minutes" in page
    assert "Vera" not in page


def test_a_contact_says_why_nobody_took_it(staff: Client):
    source = SourceFactory(code="telegram-bot")
    OperatorSourceWeightFactory(
        source=source, operator=OperatorFactory(name="Ivan", max_open_contacts=1)
    )
    OperatorSourceWeightFactory(
        source=source, operator=OperatorFactory(name="Maria", status=Operator.Status.AWAY)
    )
    register_contact(source=source, identity=build_identity(phone="+79161234567"))
    waiting = register_contact(source=source, identity=build_identity(phone="+79161234568"))
    assert waiting.status == Contact.Status.WAITING

    html = section(staff.get("/desk/queue/"), "telegram-bot")

    reasons = re.search(r'<ul class="reasons".*?</ul>', html, flags=re.S).group(0)
    assert re.findall(r"<li>(.*?)</li>", reasons) == [
        "Ivan is at the limit (1 / 1 open).",
        "Maria is away.",
    ]


def test_a_contact_waiting_for_its_leads_own_operator_says_for_whom_and_why(staff: Client):
    source = SourceFactory(code="telegram-bot", sticky=Source.Sticky.REQUIRE)
    ivan = OperatorFactory(name="Ivan", max_open_contacts=1)
    OperatorSourceWeightFactory(source=source, operator=ivan)
    register_contact(source=source, identity=build_identity(phone="+79161234567"))
    again = register_contact(source=source, identity=build_identity(phone="+79161234567"))
    assert again.waits_for == ivan

    page = text(staff.get("/desk/queue/"))

    until = timezone.localtime(again.waits_until).strftime("%H:%M")
    assert (
        f"Waits for Ivan, the lead's own operator, until {until}; then the source's rule decides."
        in page
    )
    assert "The lead's own operator: Ivan is at the limit (1 / 1 open)." in page


def test_a_source_nobody_serves_and_a_contact_without_a_decision_say_so(staff: Client):
    register_contact(
        source=SourceFactory(code="web-form"), identity=build_identity(phone="+79161234567")
    )
    ContactFactory(source=SourceFactory(code="seeded"))

    response = staff.get("/desk/queue/")

    assert "No operator served the source." in section(response, "web-form")
    assert "Nobody on this source can take one now." in section(response, "web-form")
    assert "No decision was recorded for it" in section(response, "seeded")


def test_the_choice_offers_only_the_sources_operators_with_their_load_and_why_not(
    staff: Client,
):
    source = SourceFactory(code="phone-line", load_units=2)
    ivan = OperatorFactory(name="Ivan Petrov", max_open_contacts=5)
    OperatorSourceWeightFactory(source=source, operator=ivan)
    ContactFactory(open=True, operator=ivan, source=SourceFactory(code="chat"))
    OperatorSourceWeightFactory(
        source=source, operator=OperatorFactory(name="Oleg", status=Operator.Status.AWAY)
    )
    full = OperatorFactory(name="Petr", max_open_contacts=3)
    OperatorSourceWeightFactory(source=source, operator=full)
    ContactFactory.create_batch(2, open=True, operator=full, source=SourceFactory(code="chat"))
    OperatorSourceWeightFactory(
        source=source, operator=OperatorFactory(name="Zoe", is_active=False)
    )
    OperatorFactory(name="Stranger")  # not on the source
    ContactFactory(source=source)

    html = section(staff.get("/desk/queue/"), "phone-line")

    assert options(html) == [
        ("Ivan Petrov — 1 / 5", False),
        ("Oleg — away (0 / 10)", True),
        # 2 of 3 taken, and a contact here costs 2 units.
        ("Petr — no room (2 / 3)", True),
        ("Zoe — off the team (0 / 10)", True),
    ]
    assert "Stranger" not in html
    assert "A contact of this source costs 2 load units." in html


def test_assigning_from_the_queue_gives_the_contact_to_the_chosen_operator(staff: Client):
    weight = OperatorSourceWeightFactory(operator__name="Maria", source__code="site-form")
    contact = ContactFactory(source=weight.source)

    response = staff.post(
        f"/desk/queue/{contact.pk}/assign/", {"operator": weight.operator.pk}, follow=True
    )

    assert response.redirect_chain == [("/desk/queue/", 302)]
    assert f"Contact #{contact.pk} assigned to Maria." in text(response)
    contact.refresh_from_db()
    assert (contact.status, contact.operator) == (Contact.Status.OPEN, weight.operator)
    assert contact.decision["strategy"] == "manual"


def test_an_assignment_the_flow_refuses_shows_why_and_the_contact_waits(staff: Client):
    weight = OperatorSourceWeightFactory(
        operator__name="Oleg", operator__status=Operator.Status.AWAY, source__code="site-form"
    )
    stranger = OperatorFactory(name="Stranger")
    contact = ContactFactory(source=weight.source)

    away = staff.post(
        f"/desk/queue/{contact.pk}/assign/", {"operator": weight.operator.pk}, follow=True
    )
    elsewhere = staff.post(
        f"/desk/queue/{contact.pk}/assign/", {"operator": stranger.pk}, follow=True
    )
    nobody = staff.post(f"/desk/queue/{contact.pk}/assign/", {"operator": ""}, follow=True)

    assert "Not assigned: Oleg is away." in text(away)
    assert "Not assigned: Stranger does not serve the source site-form." in text(elsewhere)
    assert f"Choose who takes contact #{contact.pk}." in text(nobody)
    contact.refresh_from_db()
    assert (contact.status, contact.operator) == (Contact.Status.WAITING, None)


def test_closing_from_the_queue_closes_the_contact(staff: Client):
    contact = ContactFactory(source=SourceFactory(code="site-form"))

    response = staff.post(f"/desk/queue/{contact.pk}/close/", follow=True)

    assert f"Contact #{contact.pk} closed." in text(response)
    assert f'id="waiting-{contact.pk}"' not in response.content.decode()
    contact.refresh_from_db()
    assert contact.status == Contact.Status.CLOSED


def test_a_contact_taken_since_the_page_was_drawn_is_left_where_it_went(staff: Client):
    weight = OperatorSourceWeightFactory(operator__name="Maria", source__code="site-form")
    other = OperatorSourceWeightFactory(operator__name="Ivan", source=weight.source).operator
    taken = ContactFactory(source=weight.source, open=True, operator=other)
    closed = ContactFactory(source=weight.source, closed=True, operator=other)

    assign = staff.post(
        f"/desk/queue/{taken.pk}/assign/", {"operator": weight.operator.pk}, follow=True
    )
    close = staff.post(f"/desk/queue/{taken.pk}/close/", follow=True)
    again = staff.post(f"/desk/queue/{closed.pk}/close/", follow=True)

    assert f"Contact #{taken.pk} is no longer waiting: it went to Ivan." in text(assign)
    assert f"Contact #{taken.pk} is no longer waiting: it went to Ivan." in text(close)
    assert f"Contact #{closed.pk} is no longer waiting: it was closed." in text(again)
    taken.refresh_from_db()
    assert (taken.status, taken.operator) == (Contact.Status.OPEN, other)


def test_the_queues_actions_need_the_csrf_token():
    client = Client(enforce_csrf_checks=True)
    client.force_login(StaffUserFactory())
    contact = ContactFactory()

    assert client.post(f"/desk/queue/{contact.pk}/close/").status_code == 403
    contact.refresh_from_db()
    assert contact.status == Contact.Status.WAITING


def test_the_board_and_the_admin_index_link_to_the_queue(staff: Client):
    ContactFactory(source=SourceFactory(code="site-form"))

    board = staff.get("/desk/board/").content.decode()
    index = staff.get("/admin/").content.decode()

    assert '<a href="/desk/queue/" id="open-queue">' in board
    assert 'href="/desk/queue/#queue-site-form"' in board
    assert '<a href="/desk/queue/"><strong>Waiting queue</strong></a>' in index


def test_the_queue_reads_the_same_queries_however_many_contacts_wait(staff: Client):
    source = SourceFactory(code="site-form")
    OperatorSourceWeightFactory(source=source, operator__status=Operator.Status.AWAY)
    ContactFactory(source=source)
    staff.get("/desk/queue/")  # the session and the user, read once

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert staff.get("/desk/queue/").status_code == 200
        return len(captured)

    one = queries()
    ContactFactory.create_batch(5, source=source)
    assert queries() == one
