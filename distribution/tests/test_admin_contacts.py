from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from distribution.models import Contact, OfferMiss
from leads.models import Lead
from tests.factories import (
    ContactFactory,
    LeadFactory,
    OperatorFactory,
    OperatorSourceWeightFactory,
    SourceFactory,
)

pytestmark = pytest.mark.django_db

LEADS = reverse("admin:leads_lead_changelist")
CONTACTS = reverse("admin:distribution_contact_changelist")


def lead_page(lead: Lead) -> str:
    return reverse("admin:leads_lead_change", args=[lead.pk])


def contact_page(contact: Contact) -> str:
    return reverse("admin:distribution_contact_change", args=[contact.pk])


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def shown(response) -> set[int]:
    return {obj.pk for obj in response.context["cl"].result_list}


def query_count(client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return len(queries)


def test_lead_list_counts_contacts(admin_client):
    lead = LeadFactory()
    ContactFactory.create_batch(3, lead=lead)

    response = admin_client.get(LEADS)

    assert [row.contact_total for row in response.context["cl"].result_list] == [3]


@pytest.mark.parametrize(
    "term", ["ext-42", "8 (916) 123-45-67", "+79161234567", "Ann@Example.com", "example", "Ann"]
)
def test_lead_search_finds_a_lead_by_any_identifier(admin_client, term):
    lead = LeadFactory(
        external_id="ext-42", phone="+79161234567", email="ann@example.com", name="Ann Lee"
    )
    LeadFactory(external_id="other", phone="+79169999999", email="bob@test.org", name="Bob")

    response = admin_client.get(LEADS, {"q": term})

    assert shown(response) == {lead.pk}


def test_lead_list_runs_a_fixed_number_of_queries_whatever_the_page_size(admin_client):
    ContactFactory()
    few = query_count(admin_client, LEADS)
    for _ in range(30):
        ContactFactory.create_batch(2, lead=LeadFactory())

    assert query_count(admin_client, LEADS) == few


def test_lead_page_lists_its_contacts_read_only(admin_client):
    lead = LeadFactory()
    contact = ContactFactory(lead=lead, open=True, operator__name="Ivan", source__code="tg")

    response = admin_client.get(lead_page(lead))

    page = response.content.decode()
    assert "Ivan" in page
    assert "tg" in page
    assert contact_page(contact) in page
    formset = response.context["inline_admin_formsets"][0].formset
    assert formset.forms[0].fields.keys() <= {"id", "lead"}


def test_lead_page_normalises_identifiers_typed_by_staff(admin_client, form_data):
    lead = LeadFactory(phone=None, email=None)
    data = form_data(admin_client.get(lead_page(lead)), "lead_form")
    data.update({"phone": ["8 916 123-45-67"], "email": [" Ann@Example.COM "]})

    response = admin_client.post(lead_page(lead), data)

    assert response.status_code == 302
    lead.refresh_from_db()
    assert (lead.phone, lead.email) == ("+79161234567", "ann@example.com")


def test_lead_page_refuses_a_bad_phone_and_a_lead_without_identifiers(admin_client, form_data):
    lead = LeadFactory(phone=None, email=None)
    data = form_data(admin_client.get(lead_page(lead)), "lead_form")
    data.update({"phone": ["12"]})

    bad_phone = admin_client.post(lead_page(lead), data)
    data.update({"phone": [""], "external_id": [""]})
    nothing = admin_client.post(lead_page(lead), data)

    assert bad_phone.context["adminform"].form.errors == {"phone": ["Enter a valid phone number."]}
    # A sentence staff can act on, not the database constraint's name.
    assert nothing.context["adminform"].form.non_field_errors() == [
        "Give the lead at least one of an external id, a phone or an email."
    ]
    lead.refresh_from_db()
    assert lead.phone is None
    assert lead.external_id


def test_contact_list_shows_status_and_age(admin_client):
    ContactFactory(open=True, created_at=timezone.now() - timedelta(hours=3))

    page = admin_client.get(CONTACTS).content.decode()

    assert '<span class="status status-open">Open</span>' in page
    assert "3\xa0hours" in page


@pytest.mark.parametrize("status", ["waiting", "open", "closed"])
def test_contact_list_filters_by_status(admin_client, status):
    contacts = {
        "waiting": ContactFactory(),
        "open": ContactFactory(open=True),
        "closed": ContactFactory(closed=True),
    }

    response = admin_client.get(CONTACTS, {"status__exact": status})

    assert shown(response) == {contacts[status].pk}


def test_contact_list_filters_by_source_operator_and_date(admin_client):
    mine = ContactFactory(open=True)
    old = ContactFactory(created_at=timezone.now() - timedelta(days=40))
    ContactFactory(open=True)

    by_source = admin_client.get(CONTACTS, {"source__id__exact": mine.source_id})
    by_operator = admin_client.get(CONTACTS, {"operator__id__exact": mine.operator_id})
    this_week = admin_client.get(
        CONTACTS, {"created_at__gte": (timezone.now() - timedelta(days=7)).isoformat()}
    )

    assert shown(by_source) == {mine.pk}
    assert shown(by_operator) == {mine.pk}
    assert old.pk not in shown(this_week)
    assert mine.pk in shown(this_week)


def test_contact_search_finds_a_lead_contacts_by_identifier(admin_client):
    lead = LeadFactory(phone="+79161234567")
    contact = ContactFactory(lead=lead)
    other = ContactFactory()

    by_phone = admin_client.get(CONTACTS, {"q": "8 916 123 45 67"})
    by_id = admin_client.get(CONTACTS, {"q": str(other.pk)})

    assert shown(by_phone) == {contact.pk}
    assert other.pk in shown(by_id)


def test_contact_list_runs_a_fixed_number_of_queries_whatever_the_page_size(admin_client):
    ContactFactory(open=True)
    few = query_count(admin_client, CONTACTS)
    ContactFactory.create_batch(40, open=True)
    ContactFactory.create_batch(20)

    assert query_count(admin_client, CONTACTS) == few


def test_contact_page_is_read_only_and_explains_the_decision(admin_client):
    weight = OperatorSourceWeightFactory(operator__name="Ivan", weight=3)
    contact = ContactFactory(
        open=True,
        operator=weight.operator,
        source=weight.source,
        decision={
            "strategy": "weighted_random",
            "candidates": [
                {
                    "operator_id": weight.operator_id,
                    "name": "Ivan",
                    "weight": 3,
                    "load": 1,
                    "limit": 5,
                    "left_out": None,
                },
                {
                    "operator_id": 999,
                    "name": "Maria",
                    "weight": 1,
                    "load": 5,
                    "limit": 5,
                    "left_out": "at_limit",
                },
            ],
            "chosen_operator_id": weight.operator_id,
        },
    )

    response = admin_client.get(contact_page(contact))

    page = response.content.decode()
    assert response.context["adminform"].form.fields == {}
    assert 'name="_save"' not in page
    assert "<td>Ivan</td><td>3</td><td>1 / 5</td><td>chosen</td>" in page
    assert "<td>Maria</td><td>1</td><td>5 / 5</td><td>no room</td>" in page


def test_a_contact_from_the_waiting_queue_says_in_words_what_freed_the_room(admin_client):
    contact = ContactFactory(
        open=True,
        operator__name="Ivan",
        decision={
            "strategy": "waiting_queue",
            "trigger": "contact_closed",
            "candidates": [],
            "chosen_operator_id": None,
        },
    )

    page = admin_client.get(contact_page(contact)).content.decode()

    assert "Strategy: <b>From the waiting queue</b> (after a contact was closed)" in page
    assert "contact_closed" not in page


def test_contacts_cannot_be_added_or_deleted_in_the_admin(admin_client):
    contact = ContactFactory()

    add = admin_client.get(reverse("admin:distribution_contact_add"))
    delete = admin_client.get(reverse("admin:distribution_contact_delete", args=[contact.pk]))

    assert (add.status_code, delete.status_code) == (403, 403)


def test_close_action_frees_load_for_the_waiting_queue(admin_client):
    weight = OperatorSourceWeightFactory(operator__max_open_contacts=1)
    held = ContactFactory(open=True, operator=weight.operator, source=weight.source)
    waiting = ContactFactory(source=weight.source)

    response = admin_client.post(
        CONTACTS, {"action": "close", "_selected_action": [held.pk]}, follow=True
    )

    held.refresh_from_db()
    waiting.refresh_from_db()
    assert held.status == Contact.Status.CLOSED
    assert waiting.operator_id == weight.operator_id
    assert messages_of(response) == ["1 contact(s) closed."]


def test_close_action_says_which_contacts_were_closed_already(admin_client):
    closed = ContactFactory(closed=True)
    open_one = ContactFactory(open=True)

    response = admin_client.post(
        CONTACTS, {"action": "close", "_selected_action": [closed.pk, open_one.pk]}, follow=True
    )

    assert messages_of(response) == [
        "1 contact(s) closed.",
        f"Not closed: Contact {closed.pk}: This contact is already closed.",
    ]


def test_reassign_action_moves_contacts_to_the_chosen_operator(admin_client):
    source = SourceFactory()
    ivan = OperatorSourceWeightFactory(source=source, operator__name="Ivan").operator
    maria = OperatorSourceWeightFactory(source=source, operator__name="Maria").operator
    contact = ContactFactory(open=True, operator=ivan, source=source)

    response = admin_client.post(
        CONTACTS,
        {"action": "reassign", "_selected_action": [contact.pk], "operator": maria.pk},
        follow=True,
    )

    contact.refresh_from_db()
    assert contact.operator_id == maria.pk
    assert contact.decision["strategy"] == "manual"
    assert messages_of(response) == ["1 contact(s) reassigned to Maria."]


def test_reassign_action_without_an_operator_follows_the_source_rule(admin_client):
    source = SourceFactory()
    ivan = OperatorSourceWeightFactory(source=source, operator__name="Ivan").operator
    maria = OperatorSourceWeightFactory(source=source, operator__name="Maria").operator
    contact = ContactFactory(open=True, operator=ivan, source=source)

    admin_client.post(
        CONTACTS, {"action": "reassign", "_selected_action": [contact.pk], "operator": ""}
    )

    contact.refresh_from_db()
    assert contact.operator_id == maria.pk


def test_a_refused_reassign_says_why(admin_client):
    source = SourceFactory()
    ivan = OperatorSourceWeightFactory(source=source, operator__name="Ivan").operator
    full = OperatorSourceWeightFactory(
        source=source, operator__name="Maria", operator__max_open_contacts=1
    ).operator
    ContactFactory(open=True, operator=full, source=source)
    contact = ContactFactory(open=True, operator=ivan, source=source)

    response = admin_client.post(
        CONTACTS,
        {"action": "reassign", "_selected_action": [contact.pk], "operator": full.pk},
        follow=True,
    )

    contact.refresh_from_db()
    assert contact.operator_id == ivan.pk
    assert messages_of(response) == [
        f"Not reassigned: Contact {contact.pk}: Maria is at the limit (1 / 1 open)."
    ]


def test_reassign_to_an_inactive_operator_says_why(admin_client):
    contact = ContactFactory(open=True)
    inactive = OperatorFactory(name="Oleg", is_active=False)

    response = admin_client.post(
        CONTACTS,
        {"action": "reassign", "_selected_action": [contact.pk], "operator": inactive.pk},
        follow=True,
    )

    assert messages_of(response) == [f"Not reassigned: Contact {contact.pk}: Oleg is inactive."]
    assert Contact.objects.get(pk=contact.pk).operator_id == contact.operator_id


@pytest.mark.parametrize("term", ["9" * 30, "x" * 300, "nobody"])
def test_contact_search_for_no_identifier_finds_nothing(admin_client, term):
    ContactFactory()

    response = admin_client.get(CONTACTS, {"q": term})

    assert response.status_code == 200
    assert shown(response) == set()


def test_lead_search_for_a_whole_phone_finds_only_that_lead(admin_client):
    lead = LeadFactory(phone="+79160000001")
    LeadFactory(external_id="8-916-000", phone="+79160000100", name="00 01")

    response = admin_client.get(LEADS, {"q": "8 916 000 00 01"})

    assert shown(response) == {lead.pk}


def test_the_contact_page_lists_who_passed_on_it_and_the_flagged_filter_finds_it(admin_client):
    anna = OperatorFactory(name="Anna")
    flagged = ContactFactory()
    ContactFactory()  # not flagged
    OfferMiss.objects.create(
        contact=flagged, operator=anna, kind="declined", reason="Wrong city", at=timezone.now()
    )
    Contact.objects.filter(pk=flagged.pk).update(flagged_at=timezone.now())

    page = admin_client.get(contact_page(flagged)).content.decode()
    listed = admin_client.get(CONTACTS, {"flagged": "yes"})

    assert "Wrong city" in page and "Anna" in page
    assert shown(listed) == {flagged.pk}


def test_contact_page_says_why_the_leads_own_operator_did_not_take_it(admin_client):
    weight = OperatorSourceWeightFactory(operator__name="Ivan")
    contact = ContactFactory(
        open=True,
        operator=weight.operator,
        source=weight.source,
        decision={
            "strategy": "weighted_random",
            "owner": {
                "operator_id": 999,
                "name": "Maria",
                "load": 5,
                "limit": 5,
                "left_out": "away",
            },
            "units": 3,
            "candidates": [],
            "chosen_operator_id": weight.operator_id,
        },
    )

    page = admin_client.get(contact_page(contact)).content.decode()

    assert "the lead's own operator: Maria (away)" in page
    assert "costs 3 load units" in page
