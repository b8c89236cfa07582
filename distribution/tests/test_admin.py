import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from distribution.models import Contact, Operator, OperatorSourceWeight, Source
from tests.factories import (
    ContactFactory,
    OperatorFactory,
    OperatorSourceWeightFactory,
    SourceFactory,
)

pytestmark = pytest.mark.django_db

OPERATORS = reverse("admin:distribution_operator_changelist")
SOURCES = reverse("admin:distribution_source_changelist")
DISTRIBUTION = reverse("admin:distribution_report")


def operator_page(operator: Operator) -> str:
    return reverse("admin:distribution_operator_change", args=[operator.pk])


def source_page(source: Source) -> str:
    return reverse("admin:distribution_source_change", args=[source.pk])


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def query_count(client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return len(queries)


def busy_operator(*, sources: int = 2, open_contacts: int = 1) -> Operator:
    operator = OperatorFactory(max_open_contacts=5)
    for _ in range(sources):
        weight = OperatorSourceWeightFactory(operator=operator)
    ContactFactory.create_batch(open_contacts, open=True, operator=operator, source=weight.source)
    return operator


def test_admin_index_links_the_distribution_page(admin_client):
    response = admin_client.get(reverse("admin:index"))

    assert response.status_code == 200
    assert f'href="{DISTRIBUTION}"' in response.content.decode()


def test_operator_list_shows_load_against_limit_and_weights(admin_client):
    operator = OperatorFactory(name="Ivan", max_open_contacts=4)
    OperatorSourceWeightFactory(operator=operator, source=SourceFactory(code="tg"), weight=3)
    ContactFactory.create_batch(3, open=True, operator=operator)
    ContactFactory(closed=True, operator=operator)

    page = admin_client.get(OPERATORS).content.decode()

    assert "3 / 4" in page
    assert 'style="width: 75%"' in page
    assert "tg <b>&times;3</b>" in page


def test_operator_list_marks_an_operator_at_its_limit(admin_client):
    operator = OperatorFactory(max_open_contacts=2)
    ContactFactory.create_batch(2, open=True, operator=operator)

    page = admin_client.get(OPERATORS).content.decode()

    assert 'class="load load-full"' in page


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("load=full", {"full"}),
        ("load=room", {"room", "idle"}),
        ("is_active__exact=0", {"idle"}),
    ],
)
def test_operator_list_filters_by_load_and_activity(admin_client, query, expected):
    full = OperatorFactory(name="full", max_open_contacts=1)
    ContactFactory(open=True, operator=full)
    OperatorFactory(name="room", max_open_contacts=1)
    OperatorFactory(name="idle", is_active=False)

    response = admin_client.get(f"{OPERATORS}?{query}")

    assert {operator.name for operator in response.context["cl"].result_list} == expected


def test_operator_list_filters_by_source_and_searches_by_name(admin_client):
    on_tg = OperatorSourceWeightFactory(operator__name="Ivan Petrov", source__code="tg")
    OperatorSourceWeightFactory(operator__name="Maria Sokolova", source__code="site")

    by_source = admin_client.get(f"{OPERATORS}?weights__source__id__exact={on_tg.source_id}")
    by_name = admin_client.get(f"{OPERATORS}?q=sokolova")

    assert [op.name for op in by_source.context["cl"].result_list] == ["Ivan Petrov"]
    assert [op.name for op in by_name.context["cl"].result_list] == ["Maria Sokolova"]


def test_operator_list_runs_a_fixed_number_of_queries_whatever_the_page_size(admin_client):
    busy_operator()
    few = query_count(admin_client, OPERATORS)
    for _ in range(30):
        busy_operator(sources=3, open_contacts=2)

    many = query_count(admin_client, OPERATORS)

    assert many == few
    assert many <= 10


def test_activate_action_hands_waiting_contacts_to_the_operator(admin_client):
    weight = OperatorSourceWeightFactory(operator__is_active=False, operator__max_open_contacts=5)
    waiting = ContactFactory(source=weight.source)

    response = admin_client.post(
        OPERATORS, {"action": "activate", "_selected_action": [weight.operator_id]}, follow=True
    )

    waiting.refresh_from_db()
    assert waiting.status == Contact.Status.OPEN
    assert waiting.operator_id == weight.operator_id
    assert Operator.objects.get(pk=weight.operator_id).is_active
    assert messages_of(response) == [
        "1 operator(s) activated. 1 waiting contact(s) were assigned to them."
    ]


def test_deactivate_action_stops_new_assignments(admin_client):
    operator = OperatorFactory()

    response = admin_client.post(
        OPERATORS, {"action": "deactivate", "_selected_action": [operator.pk]}, follow=True
    )

    operator.refresh_from_db()
    assert not operator.is_active
    assert messages_of(response) == ["1 operator(s) deactivated."]


def test_deactivating_operators_with_open_contacts_says_how_many_they_keep_and_links_them(
    admin_client,
):
    ivan, maria = OperatorFactory(), OperatorFactory()
    ContactFactory.create_batch(2, open=True, operator=ivan)
    kept = ContactFactory(open=True, operator=maria)
    ContactFactory(closed=True, operator=maria)

    response = admin_client.post(
        OPERATORS,
        {"action": "deactivate", "_selected_action": [ivan.pk, maria.pk]},
        follow=True,
    )

    [message] = messages_of(response)
    assert message.startswith("2 operator(s) deactivated. They keep 3 open contact(s):")
    link = re.search(r'href="([^"]+)"', message).group(1).replace("&amp;", "&")
    listed = admin_client.get(link)
    assert listed.status_code == 200
    assert kept in listed.context["cl"].result_list
    assert listed.context["cl"].result_count == 3


def test_raising_a_limit_on_the_operator_page_assigns_waiting_contacts(admin_client, form_data):
    weight = OperatorSourceWeightFactory(operator__max_open_contacts=0)
    waiting = ContactFactory(source=weight.source)
    data = form_data(admin_client.get(operator_page(weight.operator)), "operator_form")
    data["max_open_contacts"] = ["3"]

    response = admin_client.post(operator_page(weight.operator), data, follow=True)

    assert response.status_code == 200
    assert f"1 waiting contact(s) were assigned to {weight.operator.name}." in messages_of(response)
    waiting.refresh_from_db()
    assert waiting.operator_id == weight.operator_id
    assert waiting.decision["trigger"] == "operator_updated"


def test_adding_a_weight_on_the_operator_page_assigns_waiting_contacts(admin_client, form_data):
    operator = OperatorFactory()
    source = SourceFactory()
    waiting = ContactFactory(source=source)
    data = form_data(admin_client.get(operator_page(operator)), "operator_form")
    data.update({"weights-0-source": [str(source.pk)], "weights-0-weight": ["2"]})

    response = admin_client.post(operator_page(operator), data)

    assert response.status_code == 302
    assert OperatorSourceWeight.objects.get(operator=operator, source=source).weight == 2
    waiting.refresh_from_db()
    assert waiting.operator_id == operator.pk
    assert waiting.decision["trigger"] == "weights_changed"


def test_removing_a_weight_on_the_operator_page_keeps_the_others(admin_client, form_data):
    operator = OperatorFactory()
    kept = OperatorSourceWeightFactory(operator=operator, weight=4)
    removed = OperatorSourceWeightFactory(operator=operator)
    data = form_data(admin_client.get(operator_page(operator)), "operator_form")
    row = next(
        key for key, value in data.items() if key.endswith("-id") and value == [str(removed.pk)]
    )
    data[row.removesuffix("-id") + "-DELETE"] = ["on"]

    response = admin_client.post(operator_page(operator), data)

    assert response.status_code == 302
    assert dict(operator.weights.values_list("source_id", "weight")) == {kept.source_id: 4}


def test_adding_an_operator_with_weights(admin_client, form_data):
    source = SourceFactory()
    data = form_data(admin_client.get(reverse("admin:distribution_operator_add")), "operator_form")
    data.update(
        {
            "name": ["Olga"],
            "max_open_contacts": ["7"],
            "weights-0-source": [str(source.pk)],
            "weights-0-weight": ["5"],
        }
    )

    response = admin_client.post(reverse("admin:distribution_operator_add"), data)

    assert response.status_code == 302
    operator = Operator.objects.get(name="Olga")
    assert operator.max_open_contacts == 7
    assert list(operator.weights.values_list("source_id", "weight")) == [(source.pk, 5)]


def test_deleting_an_operator_with_open_contacts_is_refused(admin_client):
    operator = OperatorFactory(name="Ivan")
    ContactFactory(open=True, operator=operator)

    response = admin_client.post(
        reverse("admin:distribution_operator_delete", args=[operator.pk]),
        {"post": "yes"},
        follow=True,
    )

    assert Operator.objects.filter(pk=operator.pk).exists()
    assert messages_of(response) == ["Ivan has 1 open contacts: close or reassign them first."]


def test_deleting_an_operator_without_open_contacts(admin_client):
    operator = OperatorFactory()
    closed = ContactFactory(closed=True, operator=operator)

    response = admin_client.post(
        reverse("admin:distribution_operator_delete", args=[operator.pk]), {"post": "yes"}
    )

    assert response.status_code == 302
    assert not Operator.objects.filter(pk=operator.pk).exists()
    closed.refresh_from_db()
    assert closed.operator_id is None


def test_source_list_warns_about_sources_where_contacts_would_wait(admin_client):
    nobody = SourceFactory(code="nobody")
    full = OperatorSourceWeightFactory(source__code="full", operator__max_open_contacts=1)
    ContactFactory(open=True, operator=full.operator, source=full.source)
    ContactFactory.create_batch(2, source=full.source)
    OperatorSourceWeightFactory(source__code="fine")

    response = admin_client.get(SOURCES)

    rows = {source.code: source for source in response.context["cl"].result_list}
    page = response.content.decode()
    assert rows["full"].waiting_count == 2
    assert "No operator serves this source" in page
    assert "Every active operator on this source is at the limit" in page
    assert page.count('class="warning-text"') == 2
    assert nobody.pk in {source.pk for source in rows.values()}


def test_source_list_runs_a_fixed_number_of_queries_whatever_the_page_size(admin_client):
    OperatorSourceWeightFactory()
    few = query_count(admin_client, SOURCES)
    for _ in range(30):
        weight = OperatorSourceWeightFactory()
        OperatorSourceWeightFactory(source=weight.source)
        ContactFactory(source=weight.source)

    many = query_count(admin_client, SOURCES)

    assert many == few
    assert many <= 10


def test_source_page_shows_target_shares_of_active_operators(admin_client):
    source = SourceFactory()
    OperatorSourceWeightFactory(source=source, operator__name="Ivan", weight=3)
    OperatorSourceWeightFactory(source=source, operator__name="Maria", weight=1)
    OperatorSourceWeightFactory(source=source, operator__name="Gone", operator__is_active=False)

    page = admin_client.get(source_page(source)).content.decode()

    assert "75.0%" in page
    assert "25.0%" in page
    assert "0% (inactive)" in page


def test_source_page_warns_when_no_operator_is_active(admin_client):
    source = SourceFactory()
    OperatorSourceWeightFactory(source=source, operator__is_active=False)

    response = admin_client.get(source_page(source))

    assert response.context["source_warnings"] == [
        "No active operator on this source: every new contact will wait."
    ]
    assert 'class="source-warnings"' in response.content.decode()


def test_source_page_warns_when_every_operator_is_at_its_limit(admin_client):
    weight = OperatorSourceWeightFactory(operator__max_open_contacts=1)
    ContactFactory(open=True, operator=weight.operator, source=weight.source)

    response = admin_client.get(source_page(weight.source))

    assert response.context["source_warnings"] == [
        "Every active operator on this source is at the limit: new contacts will wait."
    ]


def test_source_page_previews_the_next_hundred_contacts_without_writing(admin_client):
    source = SourceFactory(strategy=Source.Strategy.ROUND_ROBIN)
    big = OperatorSourceWeightFactory(source=source, weight=3, operator__max_open_contacts=500)
    small = OperatorSourceWeightFactory(source=source, weight=1, operator__max_open_contacts=10)

    response = admin_client.get(source_page(source))

    preview = response.context["preview"]
    split = {row.state.operator_id: row.contacts for row in preview.rows}
    assert split == {big.operator_id: 90, small.operator_id: 10}
    assert preview.waiting == 0
    assert "Preview: the next 100 contacts" in response.content.decode()
    assert not Contact.objects.exists()
    assert set(OperatorSourceWeight.objects.values_list("round_robin_credit", flat=True)) == {0}


def test_saving_source_weights_goes_through_the_service(admin_client, form_data):
    source = SourceFactory()
    operator = OperatorFactory()
    waiting = ContactFactory(source=source)
    data = form_data(admin_client.get(source_page(source)), "source_form")
    data.update({"weights-0-operator": [str(operator.pk)], "weights-0-weight": ["4"]})

    response = admin_client.post(source_page(source), data)

    assert response.status_code == 302
    assert list(source.weights.values_list("operator_id", "weight")) == [(operator.pk, 4)]
    waiting.refresh_from_db()
    assert waiting.operator_id == operator.pk


def test_changing_a_source_on_its_page(admin_client, form_data):
    source = SourceFactory(code="old")
    data = form_data(admin_client.get(source_page(source)), "source_form")
    data.update({"code": ["new"], "strategy": ["round_robin"]})

    response = admin_client.post(source_page(source), data)

    assert response.status_code == 302
    source.refresh_from_db()
    assert (source.code, source.strategy) == ("new", "round_robin")


def test_a_zero_weight_or_unit_is_a_field_message_not_a_constraint_name(admin_client, form_data):
    source = SourceFactory()
    operator = OperatorFactory()
    data = form_data(admin_client.get(source_page(source)), "source_form")
    data.update(
        {"load_units": ["0"], "weights-0-operator": [str(operator.pk)], "weights-0-weight": ["0"]}
    )

    response = admin_client.post(source_page(source), data)

    assert response.status_code == 200  # the form again, with the messages
    assert response.context["adminform"].form.errors == {"load_units": ["Must be at least 1."]}
    [weights] = [
        f for f in response.context["inline_admin_formsets"] if f.formset.prefix == "weights"
    ]
    assert weights.formset.errors[0] == {"weight": ["Must be at least 1."]}
    assert "Constraint" not in response.content.decode()
    assert not source.weights.exists()


def test_routing_settings_and_overflow_operators_are_set_on_the_source_page(
    admin_client, form_data
):
    source = SourceFactory()
    spare = OperatorFactory()
    data = form_data(admin_client.get(source_page(source)), "source_form")
    data.update(
        {
            "load_units": ["3"],
            "priority": ["5"],
            "sticky": ["require"],
            "overflow_after_seconds": ["90"],
            "overflow_weights-TOTAL_FORMS": ["1"],
            "overflow_weights-0-operator": [str(spare.pk)],
            "overflow_weights-0-weight": ["2"],
        }
    )

    response = admin_client.post(source_page(source), data)

    assert response.status_code == 302
    source.refresh_from_db()
    assert (source.load_units, source.priority, source.sticky) == (3, 5, "require")
    assert source.overflow_after_seconds == 90
    assert list(source.overflow_weights.values_list("operator_id", "weight")) == [(spare.pk, 2)]
    assert not source.weights.exists()  # the overflow list is not the weight list


def test_source_page_warns_when_nobody_has_room_for_a_contact_of_its_units(admin_client):
    weight = OperatorSourceWeightFactory(operator__max_open_contacts=4, source__load_units=3)
    ContactFactory(open=True, operator=weight.operator, source=weight.source)

    response = admin_client.get(source_page(weight.source))

    assert response.context["source_warnings"] == [
        "No active operator on this source has room for a contact of 3 load units: "
        "new contacts will wait."
    ]


def test_adding_a_source(admin_client, form_data):
    data = form_data(admin_client.get(reverse("admin:distribution_source_add")), "source_form")
    data.update({"code": ["vk-bot"], "name": ["VK bot"]})

    response = admin_client.post(reverse("admin:distribution_source_add"), data)

    assert response.status_code == 302
    assert Source.objects.get(code="vk-bot").name == "VK bot"


def test_a_source_with_contacts_offers_no_delete(admin_client):
    contact = ContactFactory()

    response = admin_client.get(
        reverse("admin:distribution_source_delete", args=[contact.source_id])
    )

    assert response.status_code == 403
    assert Source.objects.filter(pk=contact.source_id).exists()


def test_distribution_page_compares_target_and_actual_shares(admin_client):
    source = SourceFactory(code="tg")
    ivan = OperatorSourceWeightFactory(source=source, operator__name="Ivan", weight=3).operator
    maria = OperatorSourceWeightFactory(source=source, operator__name="Maria", weight=1).operator
    ContactFactory.create_batch(2, closed=True, source=source, operator=ivan)
    ContactFactory.create_batch(2, closed=True, source=source, operator=maria)
    ContactFactory(source=source)

    response = admin_client.get(DISTRIBUTION)

    card = response.context["cards"][0]
    rows = {row.share.name: row for row in card.rows}
    assert card.report.waiting == 1
    assert (rows["Ivan"].target_text, rows["Ivan"].actual_text) == ("75.0%", "50.0%")
    assert (rows["Maria"].target_text, rows["Maria"].actual_text) == ("25.0%", "50.0%")
    assert rows["Ivan"].gap_text == "-25.0"
    assert rows["Ivan"].gap_off
    page = response.content.decode()
    assert 'id="source-tg"' in page
    assert "1 waiting" in page


def test_distribution_page_counts_only_the_chosen_period(admin_client):
    weight = OperatorSourceWeightFactory()
    long_ago = timezone.now() - timedelta(days=40)
    ContactFactory(
        closed=True,
        source=weight.source,
        operator=weight.operator,
        assigned_at=long_ago,
        created_at=long_ago,
    )
    ContactFactory(closed=True, source=weight.source, operator=weight.operator)

    def assigned(query: str) -> int:
        return admin_client.get(f"{DISTRIBUTION}?{query}").context["summary"]["assigned"]

    since = (long_ago - timedelta(days=1)).date().isoformat()
    until = (long_ago + timedelta(days=1)).date().isoformat()
    assert assigned("days=30") == 1
    assert assigned("days=0") == 2
    assert assigned(f"since={since}&until={until}") == 1


def test_distribution_page_says_why_a_period_is_refused(admin_client):
    response = admin_client.get(f"{DISTRIBUTION}?since=2030-01-02&until=2030-01-01")

    assert response.status_code == 200
    assert "The period must start before it ends." in response.content.decode()
    assert response.context["period"] == "Last 7 days"


def test_distribution_page_runs_a_fixed_number_of_queries(admin_client):
    busy_operator()
    few = query_count(admin_client, DISTRIBUTION)
    for _ in range(20):
        busy_operator(sources=3, open_contacts=2)

    assert query_count(admin_client, DISTRIBUTION) == few


def test_distribution_page_needs_a_staff_login(client):
    response = client.get(DISTRIBUTION)

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_the_admin_says_the_products_name_and_filters_read_as_headings(admin_client):
    OperatorFactory()

    page = admin_client.get(OPERATORS).content.decode()

    assert "Leads CRM" in page
    assert "Django administration" not in page
    assert "By is active" not in page
    assert "<summary>Active</summary>" in page
