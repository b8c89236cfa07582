"""Lead search by name and by the words of a lead's messages, in the API and the admin
(issue 14 #15), and on PostgreSQL through the trigram indexes."""

import pytest
from django.db import connection
from django.urls import reverse

from distribution.api.filters import search_leads
from leads.models import Lead
from tests.factories import ContactFactory, LeadFactory

pytestmark = pytest.mark.django_db

LEADS = reverse("admin:leads_lead_changelist")


def api_search(api, term: str) -> list[int]:
    response = api.get("/api/leads/", {"search": term})
    assert response.status_code == 200
    return [lead["id"] for lead in response.data["results"]]


def admin_search(admin_client, term: str) -> list[int]:
    response = admin_client.get(LEADS, {"q": term})
    assert response.status_code == 200
    return [lead.pk for lead in response.context["cl"].result_list]


@pytest.fixture
def leads() -> dict[str, Lead]:
    """A lead named "Форма 1" with no message, one whose two contacts both ask about
    delivery, and one who wrote something else."""
    form = LeadFactory(name="Форма 1", external_id="lead-a")
    asking = LeadFactory(name="Anna", external_id="lead-b")
    ContactFactory(lead=asking, payload={"text": "Сколько стоит доставка в Казань?"})
    ContactFactory(lead=asking, payload={"text": "Hello, is DELIVERY free?", "chat": 7})
    other = LeadFactory(name="Ivan", external_id="lead-c")
    ContactFactory(lead=other, payload={"text": "Call me back"})
    ContactFactory(lead=other, payload={"text": 42})  # not a message: never matched
    ContactFactory(lead=other, payload={})
    return {"form": form, "asking": asking, "other": other}


@pytest.mark.parametrize("search", [api_search, admin_search], ids=["api", "admin"])
def test_lead_search_finds_a_lead_by_its_name(search, api, admin_client, leads):
    assert search(api if search is api_search else admin_client, "Форма 1") == [leads["form"].pk]


@pytest.mark.parametrize("search", [api_search, admin_search], ids=["api", "admin"])
@pytest.mark.parametrize("term", ["доставка в Казань", "Казань", "delivery", "is delivery free"])
def test_lead_search_finds_a_lead_by_words_of_its_messages_once(
    search, term, api, admin_client, leads
):
    client = api if search is api_search else admin_client

    assert search(client, term) == [leads["asking"].pk]


def test_lead_search_by_message_counts_each_lead_once(api, leads):
    response = api.get("/api/leads/", {"search": "доставка"})

    assert response.data["count"] == 1


def test_lead_search_ignores_what_is_not_a_message(api, leads):
    assert api_search(api, "42") == []
    assert api_search(api, "chat") == []


def test_lead_search_finds_by_name_or_message_together(api, leads):
    ContactFactory(lead=LeadFactory(name="Oleg"), payload={"text": "Я Анна, перезвоните"})
    named = LeadFactory(name="Анна")

    found = search_leads(Lead.objects.all(), "Анна")

    assert sorted(found.values_list("name", flat=True)) == ["Oleg", "Анна"]
    assert named in found


def test_lead_search_for_two_letters_looks_at_identifiers_and_names_only(api, leads):
    """No trigram in two letters: the messages are not read for them."""
    ContactFactory(lead=LeadFactory(name="Petr", external_id="lead-d"), payload={"text": "ok"})

    assert api_search(api, "ok") == []
    assert api_search(api, "nn") == [leads["asking"].pk]


def test_admin_lead_search_for_a_whole_phone_still_finds_only_that_lead(admin_client):
    lead = LeadFactory(phone="+79160000001")
    ContactFactory(lead=LeadFactory(), payload={"text": "my number is 8 916 000 00 01"})

    assert admin_search(admin_client, "8 916 000 00 01") == [lead.pk]


# On PostgreSQL: the statements the search runs can use the trigram indexes.


def plan_of(sql: str, params: list) -> str:
    """EXPLAIN of `sql` with sequential scans priced out: a tiny test table is otherwise
    read whole, index or not."""
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        # With the values written in: EXPLAIN takes no parameters of its own.
        cursor.execute(connection.ops.compose_sql(f"EXPLAIN {sql}", params))
        return "\n".join(row[0] for row in cursor.fetchall())


postgresql_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="trigram indexes are PostgreSQL's"
)


@postgresql_only
def test_lead_search_reads_the_trigram_indexes_of_names_and_messages(leads):
    sql, params = search_leads(Lead.objects.all(), "Форма 1").query.sql_with_params()

    plan = plan_of(sql, list(params))

    assert "Bitmap Index Scan on lead_search_trigram" in plan
    assert "Bitmap Index Scan on contact_message_trigram" in plan
    assert "Seq Scan" not in plan


@postgresql_only
def test_lead_search_reads_the_message_index_in_a_prepared_statements_generic_plan(leads):
    """psycopg prepares a statement after a few runs, and PostgreSQL may then plan it once
    for any parameters: the message's key must be in the SQL, not a parameter, for that
    plan to match the index."""
    sql, params = search_leads(Lead.objects.all(), "доставка").query.sql_with_params()
    numbered = sql
    for number in range(1, len(params) + 1):
        numbered = numbered.replace("%s", f"${number}::text", 1)
    arguments = ", ".join(["%s"] * len(params))

    with connection.cursor() as cursor:
        cursor.execute(f"PREPARE lead_search AS {numbered}")
        cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        plan = plan_of(f"EXECUTE lead_search ({arguments})", list(params))
        cursor.execute("DEALLOCATE lead_search")

    assert "Bitmap Index Scan on contact_message_trigram" in plan


@postgresql_only
def test_lead_search_on_postgresql_ignores_the_case_of_cyrillic_letters(api, leads):
    """SQLite's LIKE folds only ASCII letters; PostgreSQL's UPPER folds every letter."""
    assert api_search(api, "форма 1") == [leads["form"].pk]
    assert api_search(api, "казань") == [leads["asking"].pk]
