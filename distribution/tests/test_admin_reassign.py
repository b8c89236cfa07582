"""Reassigning from the admin: the contact's page lists its source's operators with
their load and why each cannot take it, with a button for each who can; the list
action offers only operators on a source, labelled with their load."""

import re
from html import unescape

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from distribution.models import Contact, Operator
from tests.factories import (
    ContactFactory,
    OperatorFactory,
    OperatorSourceWeightFactory,
    SourceFactory,
    StaffUserFactory,
)

pytestmark = pytest.mark.django_db

CONTACTS = reverse("admin:distribution_contact_changelist")


def contact_page(contact: Contact) -> str:
    return reverse("admin:distribution_contact_change", args=[contact.pk])


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def readable(html: str) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def reassign_rows(response) -> dict[str, str]:
    """The Reassign block as read: each operator's row as text, by name."""
    html = response.content.decode()
    rows = re.findall(r'<div class="[^"]*reassign-row"[^>]*>(.*?)</div>', html, flags=re.S)
    read = [readable(row) for row in rows]
    return {row.split(" ")[0]: row for row in read}


def buttons(response) -> dict[str, tuple[str, str]]:
    """The block's buttons: {label: (formaction, operator value)}."""
    html = response.content.decode()
    found = re.findall(
        r'<button type="submit" class="button" name="operator" value="(\d*)" '
        r'formaction="([^"]+)"[^>]*>(.*?)</button>',
        html,
    )
    return {unescape(label): (action, value) for value, action, label in found}


@pytest.fixture
def source():
    return SourceFactory(code="phone-line", load_units=2)


@pytest.fixture
def team(source) -> dict[str, Operator]:
    """Ivan holds the contact; Maria has room; Oleg is away; Petr is nearly full (the
    contact costs 2); Vera works another source only."""
    ivan = OperatorFactory(name="Ivan", max_open_contacts=5)
    maria = OperatorFactory(name="Maria", max_open_contacts=5)
    oleg = OperatorFactory(name="Oleg", status=Operator.Status.AWAY)
    petr = OperatorFactory(name="Petr", max_open_contacts=3)
    for operator in (ivan, maria, oleg, petr):
        OperatorSourceWeightFactory(source=source, operator=operator)
    ContactFactory(open=True, operator=maria, source=SourceFactory(code="chat"))
    ContactFactory.create_batch(2, open=True, operator=petr, source=SourceFactory(code="chat"))
    vera = OperatorFactory(name="Vera")
    OperatorSourceWeightFactory(source=SourceFactory(code="chat"), operator=vera)
    return {"ivan": ivan, "maria": maria, "oleg": oleg, "petr": petr, "vera": vera}


def test_a_contacts_page_lists_its_sources_operators_with_load_and_why_not(
    admin_client, source, team
):
    contact = ContactFactory(open=True, operator=team["ivan"], source=source)

    response = admin_client.get(contact_page(contact))

    rows = reassign_rows(response)
    assert list(rows) == ["Maria", "Ivan", "Oleg", "Petr"]  # who can take it first
    assert rows["Maria"] == "Maria 1 / 5 Give it to Maria"
    assert rows["Ivan"] == "Ivan 2 / 5 The contact is already with Ivan."
    assert rows["Oleg"] == "Oleg 0 / 10 Oleg is away."
    assert rows["Petr"] == (
        "Petr 2 / 3 Petr has no room for a contact this size (2 / 3 load units)."
    )
    assert "Vera" not in response.content.decode()
    url = reverse("admin:distribution_contact_reassign", args=[contact.pk])
    assert buttons(response) == {
        "Give it to Maria": (url, str(team["maria"].pk)),
        "By the source's rule": (url, ""),
    }
    assert "Reassign" in readable(response.content.decode())
    assert "a contact here costs 2" in readable(response.content.decode())


def test_the_button_gives_the_contact_to_that_operator(admin_client, source, team):
    contact = ContactFactory(open=True, operator=team["ivan"], source=source)
    action, value = buttons(admin_client.get(contact_page(contact)))["Give it to Maria"]

    response = admin_client.post(action, {"operator": value}, follow=True)

    assert response.redirect_chain == [(contact_page(contact), 302)]
    assert messages_of(response) == [f"Contact #{contact.pk} reassigned to Maria."]
    contact.refresh_from_db()
    assert contact.operator == team["maria"]
    assert contact.decision["strategy"] == "manual"
    # Ivan's place is free again; the page now offers the contact back to him.
    assert reassign_rows(response)["Ivan"] == "Ivan 0 / 5 Give it to Ivan"


def test_a_waiting_contacts_page_offers_to_assign_it(admin_client, source, team):
    contact = ContactFactory(source=source)

    page = admin_client.get(contact_page(contact))
    response = admin_client.post(
        buttons(page)["Give it to Maria"][0], {"operator": team["maria"].pk}, follow=True
    )

    assert "<h2>Assign</h2>" in page.content.decode()
    assert messages_of(response) == [f"Contact #{contact.pk} assigned to Maria."]
    contact.refresh_from_db()
    assert (contact.status, contact.operator) == (Contact.Status.OPEN, team["maria"])


def test_a_refusal_since_the_page_was_drawn_says_why(admin_client, source, team):
    contact = ContactFactory(open=True, operator=team["ivan"], source=source)
    action, value = buttons(admin_client.get(contact_page(contact)))["Give it to Maria"]
    Operator.objects.filter(pk=team["maria"].pk).update(status=Operator.Status.OFFLINE)

    response = admin_client.post(action, {"operator": value}, follow=True)

    assert messages_of(response) == ["Not reassigned: Maria is offline."]
    contact.refresh_from_db()
    assert contact.operator == team["ivan"]


def test_by_the_sources_rule_picks_someone_else_or_says_nobody_can(admin_client, source, team):
    contact = ContactFactory(open=True, operator=team["ivan"], source=source)
    url = reverse("admin:distribution_contact_reassign", args=[contact.pk])

    moved = admin_client.post(url, {"operator": ""}, follow=True)
    again = admin_client.post(url, {"operator": ""}, follow=True)

    assert messages_of(moved) == [f"Contact #{contact.pk} reassigned to Maria."]
    # From Maria the rule has only Ivan, who has room again.
    assert messages_of(again) == [f"Contact #{contact.pk} reassigned to Ivan."]
    Operator.objects.filter(pk=team["maria"].pk).update(status=Operator.Status.AWAY)
    refused = admin_client.post(url, {"operator": ""}, follow=True)
    assert messages_of(refused) == [
        "Not reassigned: No other operator on this source can take it now "
        "(active, available, on shift and under the limit)."
    ]


def test_a_closed_contact_has_nothing_to_reassign(admin_client, source, team):
    contact = ContactFactory(closed=True, operator=team["ivan"], source=source)

    response = admin_client.get(contact_page(contact))
    refused = admin_client.post(
        reverse("admin:distribution_contact_reassign", args=[contact.pk]),
        {"operator": team["maria"].pk},
        follow=True,
    )

    assert 'id="reassign"' not in response.content.decode()
    assert messages_of(refused) == ["Not reassigned: A closed contact cannot be reassigned."]


def test_staff_who_may_only_view_contacts_get_no_reassign(client, source, team):
    user = StaffUserFactory()
    user.user_permissions.add(Permission.objects.get(codename="view_contact"))
    client.force_login(user)
    contact = ContactFactory(open=True, operator=team["ivan"], source=source)
    url = reverse("admin:distribution_contact_reassign", args=[contact.pk])

    page = client.get(contact_page(contact))

    assert page.status_code == 200
    assert 'id="reassign"' not in page.content.decode()
    assert client.post(url, {"operator": team["maria"].pk}).status_code == 403
    assert client.get(url).status_code == 405
    contact.refresh_from_db()
    assert contact.operator == team["ivan"]


def test_the_list_action_offers_operators_on_a_source_with_their_load(admin_client, source, team):
    OperatorFactory(name="Nobody's")  # on no source
    inactive = OperatorFactory(name="Zoe", is_active=False)
    OperatorSourceWeightFactory(source=source, operator=inactive)
    ContactFactory(open=True, operator=team["ivan"], source=source)

    html = admin_client.get(CONTACTS).content.decode()

    select = re.search(r'<select name="operator".*?</select>', html, flags=re.S).group(0)
    found = re.findall(r'<option value="(\d*)"( disabled)?[^>]*>(.*?)</option>', select)
    assert [(unescape(label), bool(disabled)) for _, disabled, label in found] == [
        ("whoever the source's rule picks", False),
        ("Ivan — 2 / 5", False),
        ("Maria — 1 / 5", False),
        ("Oleg — away (0 / 10)", True),
        ("Petr — 2 / 3", False),  # room for a one-unit contact of another source
        ("Vera — 0 / 10", False),
        ("Zoe — off the team (0 / 10)", True),
    ]


def test_the_list_action_still_says_why_a_chosen_operator_cannot_take_a_contact(
    admin_client, source, team
):
    contact = ContactFactory(open=True, operator=team["ivan"], source=source)

    response = admin_client.post(
        CONTACTS,
        {"action": "reassign", "_selected_action": [contact.pk], "operator": team["vera"].pk},
        follow=True,
    )

    assert messages_of(response) == [
        f"Not reassigned: Contact {contact.pk}: Vera does not serve the source phone-line."
    ]
