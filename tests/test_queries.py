"""Each plain-SQL statement of the hot path returns what its ORM twin returns."""

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
from django.db.models import Q

from distribution import queries
from distribution.eligibility import Decision, OperatorState, state_of
from distribution.models import (
    Contact,
    ContactHistory,
    Operator,
    OperatorSourceWeight,
    Source,
    SourceApiKey,
)
from leads import queries as lead_queries
from leads.models import Lead
from tests.factories import (
    ContactFactory,
    LeadFactory,
    OperatorFactory,
    OperatorSourceWeightFactory,
    SourceApiKeyFactory,
    SourceFactory,
)

pytestmark = pytest.mark.django_db

# A Wednesday noon: the moment operator_states reads shifts at.
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


@dataclass
class Floor:
    """Two sources sharing operators, with loads only a status filter counts right."""

    north: Source
    south: Source
    ivan: Operator  # on both sources; open contacts on both, closed ones too
    maria: Operator  # on north only, inactive, holding an open contact
    petr: Operator  # on south only, at its limit, with closed history
    olga: Operator  # on no source, with an open contact


@pytest.fixture
def floor() -> Floor:
    north = SourceFactory(code="north")
    south = SourceFactory(code="south", strategy=Source.Strategy.ROUND_ROBIN)
    ivan = OperatorFactory(name="Ivan", max_open_contacts=5)
    maria = OperatorFactory(name="Maria", is_active=False, max_open_contacts=3)
    petr = OperatorFactory(name="Petr", max_open_contacts=2)
    olga = OperatorFactory(name="Olga")
    OperatorSourceWeightFactory(operator=ivan, source=north, weight=3, round_robin_credit=-2)
    OperatorSourceWeightFactory(operator=maria, source=north, weight=2, round_robin_credit=2)
    OperatorSourceWeightFactory(operator=ivan, source=south, weight=1, round_robin_credit=4)
    OperatorSourceWeightFactory(operator=petr, source=south, weight=4, round_robin_credit=-4)
    contacts = [
        (ivan, north, "open"),
        (ivan, south, "open"),
        (ivan, north, "closed"),
        (ivan, south, "closed"),
        (ivan, north, "closed"),
        (maria, north, "open"),
        (petr, south, "open"),
        (petr, south, "open"),
        (petr, south, "closed"),
        (olga, north, "open"),
    ]
    for operator, source, status in contacts:
        ContactFactory(operator=operator, source=source, **{status: True})
    ContactFactory(source=north)  # waiting: nobody's load
    ContactFactory(source=south)
    return Floor(north=north, south=south, ivan=ivan, maria=maria, petr=petr, olga=olga)


# lock_operators


def orm_lock_ids(*, operator_ids: list[int], source_id: int | None) -> list[int]:
    condition = Q(id__in=operator_ids)
    if source_id is not None:
        condition |= Q(weights__source_id=source_id)
    operators = Operator.objects.filter(condition).distinct().order_by("id")
    return list(operators.values_list("id", flat=True))


def test_lock_operators_by_ids_locks_those_operators_in_id_order(floor):
    ids = [floor.olga.pk, floor.ivan.pk, floor.petr.pk]

    locked = queries.lock_operators(operator_ids=ids, source_id=None)

    assert locked == orm_lock_ids(operator_ids=ids, source_id=None)
    assert locked == sorted(ids)


@pytest.mark.parametrize("source_name", ["north", "south"])
def test_lock_operators_by_source_locks_everyone_on_it_active_or_not(floor, source_name):
    source_id = getattr(floor, source_name).pk

    locked = queries.lock_operators(operator_ids=[], source_id=source_id)

    assert locked == orm_lock_ids(operator_ids=[], source_id=source_id)
    expected = {"north": [floor.ivan, floor.maria], "south": [floor.ivan, floor.petr]}
    assert locked == [operator.pk for operator in expected[source_name]]


def test_lock_operators_by_ids_and_source_locks_the_union_once_each(floor):
    ids = [floor.olga.pk, floor.ivan.pk]

    locked = queries.lock_operators(operator_ids=ids, source_id=floor.south.pk)

    assert locked == orm_lock_ids(operator_ids=ids, source_id=floor.south.pk)
    assert locked == [floor.ivan.pk, floor.petr.pk, floor.olga.pk]


def test_lock_operators_with_nothing_named_locks_nothing(floor):
    assert queries.lock_operators(operator_ids=[], source_id=None) == []


def test_lock_operators_of_a_source_nobody_serves_locks_only_those_named(floor):
    empty = SourceFactory()

    assert queries.lock_operators(operator_ids=[], source_id=empty.pk) == []
    assert queries.lock_operators(operator_ids=[floor.maria.pk], source_id=empty.pk) == [
        floor.maria.pk
    ]


# operator_states


def orm_states(*, source_id: int | None, operator_ids: list[int] | None) -> list[OperatorState]:
    weights = {w.operator_id: w for w in OperatorSourceWeight.objects.filter(source_id=source_id)}
    operators = Operator.objects.with_load().order_by("id")
    operators = operators.filter(id__in=weights if operator_ids is None else operator_ids)
    states = []
    for operator in operators:
        weight = weights.get(operator.pk)
        if weight is None:
            states.append(state_of(operator))
        else:
            states.append(
                replace(
                    state_of(operator, weight=weight.weight),
                    round_robin_credit=weight.round_robin_credit,
                )
            )
    return states


def test_operator_states_of_named_operators_match_the_orm(floor):
    ids = [floor.petr.pk, floor.ivan.pk, floor.maria.pk, floor.olga.pk]

    states = queries.operator_states(source_id=floor.north.pk, operator_ids=ids, now=NOW)

    assert states == orm_states(source_id=floor.north.pk, operator_ids=ids)
    assert [(s.name, s.load, s.weight, s.round_robin_credit) for s in states] == [
        ("Ivan", 2, 3, -2),  # two open (one per source), three closed not counted
        ("Maria", 1, 2, 2),
        ("Petr", 2, None, 0),  # not on north: no weight, no credit
        ("Olga", 1, None, 0),
    ]
    assert [s.is_active for s in states] == [True, False, True, True]
    assert [s.limit for s in states] == [5, 3, 2, 10]


@pytest.mark.parametrize("source_name", ["north", "south"])
def test_operator_states_of_a_whole_source_match_the_orm(floor, source_name):
    source_id = getattr(floor, source_name).pk

    states = queries.operator_states(source_id=source_id, now=NOW)

    assert states == orm_states(source_id=source_id, operator_ids=None)
    weights = OperatorSourceWeight.objects.with_load().filter(source_id=source_id)
    assert [(s.operator_id, s.load, s.weight, s.round_robin_credit) for s in states] == [
        (w.operator_id, w.load, w.weight, w.round_robin_credit)
        for w in weights.order_by("operator_id")
    ]
    expected = {"north": ["Ivan", "Maria"], "south": ["Ivan", "Petr"]}
    assert [s.name for s in states] == expected[source_name]


def test_operator_states_without_a_source_give_loads_but_no_weights(floor):
    ids = [floor.ivan.pk, floor.petr.pk]

    states = queries.operator_states(source_id=None, operator_ids=ids, now=NOW)

    assert states == orm_states(source_id=None, operator_ids=ids)
    assert [(s.load, s.weight) for s in states] == [(2, None), (2, None)]


def test_operator_states_of_nobody_is_empty(floor):
    assert queries.operator_states(source_id=floor.north.pk, operator_ids=[], now=NOW) == []
    assert queries.operator_states(source_id=SourceFactory().pk, now=NOW) == []


# operator_of


def test_operator_of_is_the_operator_the_orm_reads(floor):
    [state] = queries.operator_states(
        source_id=floor.north.pk, operator_ids=[floor.maria.pk], now=NOW
    )

    operator = queries.operator_of(state)

    stored = Operator.objects.get(pk=floor.maria.pk)
    assert operator == stored
    fields = ["id", "name", "is_active", "max_open_contacts", "created_at"]
    assert [getattr(operator, f) for f in fields] == [getattr(stored, f) for f in fields]
    assert not operator._state.adding


def test_operator_of_can_be_given_a_contact(floor):
    [state] = queries.operator_states(
        source_id=floor.north.pk, operator_ids=[floor.ivan.pk], now=NOW
    )
    contact = ContactFactory(source=floor.north)

    contact.operator = queries.operator_of(state)
    contact.status = Contact.Status.OPEN
    contact.assigned_at = datetime(2025, 1, 1, tzinfo=UTC)
    contact.save()

    assert Contact.objects.get(pk=contact.pk).operator == floor.ivan


# save_round_robin_credits


def credits_by_source() -> dict[tuple[int, int], int]:
    return {
        (w.source_id, w.operator_id): w.round_robin_credit
        for w in OperatorSourceWeight.objects.all()
    }


def test_save_round_robin_credits_stores_them_on_that_source_only(floor):
    before = credits_by_source()

    queries.save_round_robin_credits(
        source_id=floor.south.pk, credits={floor.ivan.pk: -7, floor.petr.pk: 7}
    )

    assert credits_by_source() == before | {
        (floor.south.pk, floor.ivan.pk): -7,
        (floor.south.pk, floor.petr.pk): 7,
    }
    assert before[(floor.north.pk, floor.ivan.pk)] == -2  # Ivan's north credit kept


def test_save_round_robin_credits_leaves_operators_not_named_alone(floor):
    before = credits_by_source()

    queries.save_round_robin_credits(source_id=floor.north.pk, credits={floor.maria.pk: 0})

    assert credits_by_source() == before | {(floor.north.pk, floor.maria.pk): 0}


def test_save_round_robin_credits_stores_credits_beyond_32_bits(floor):
    queries.save_round_robin_credits(
        source_id=floor.north.pk, credits={floor.ivan.pk: 2**40, floor.maria.pk: -(2**40)}
    )

    assert credits_by_source()[(floor.north.pk, floor.ivan.pk)] == 2**40
    assert credits_by_source()[(floor.north.pk, floor.maria.pk)] == -(2**40)


def test_save_no_round_robin_credits_writes_nothing(floor, django_assert_num_queries):
    before = credits_by_source()

    with django_assert_num_queries(0):
        queries.save_round_robin_credits(source_id=floor.north.pk, credits={})

    assert credits_by_source() == before


# insert_contact


CONTACT_FIELDS = [f.attname for f in Contact._meta.concrete_fields if not f.primary_key]


def stored_contact(pk: int) -> dict[str, object]:
    contact = Contact.objects.get(pk=pk)
    return {name: getattr(contact, name) for name in CONTACT_FIELDS}


@pytest.mark.parametrize("status", ["open", "waiting", "closed"])
def test_insert_contact_stores_what_save_stores(floor, status):
    lead = LeadFactory()
    moment = datetime(2025, 3, 1, 9, 30, 15, 123456, tzinfo=timezone(timedelta(hours=3)))
    with_operator = status != "waiting"

    def contact() -> Contact:
        return Contact(
            lead=lead,
            source=floor.north,
            operator=floor.ivan if with_operator else None,
            status=status,
            payload={"text": "Здравствуйте, <b>мне</b> нужна помощь", "items": [1, 2.5, None]},
            decision=Decision(strategy="manual", chosen_operator_id=floor.ivan.pk).as_json(),
            lead_conflicts=[{"field": "phone", "value": "+79990000000", "reason": "taken"}],
            created_at=moment,
            assigned_at=moment + timedelta(seconds=1) if with_operator else None,
            closed_at=moment + timedelta(hours=1) if status == "closed" else None,
        )

    inserted, saved = contact(), contact()
    load_before = floor.ivan.open_load
    queries.insert_contact(inserted, history=step(inserted), at=moment)
    saved.save()
    step(saved).save()

    assert inserted.pk is not None
    assert inserted.pk != saved.pk
    assert not inserted._state.adding
    assert stored_contact(inserted.pk) == stored_contact(saved.pk)
    assert stored_contact(inserted.pk)["created_at"] == moment
    assert stored_history(inserted.pk) == stored_history(saved.pk)
    # Only an open contact adds to its operator's stored load.
    floor.ivan.refresh_from_db()
    assert floor.ivan.open_load == load_before + (1 if status == "open" else 0)


def step(contact: Contact) -> ContactHistory:
    return ContactHistory(
        contact_id=contact.pk,
        at=contact.created_at,
        action=ContactHistory.Action.ASSIGNED,
        status=contact.status,
        operator_id=contact.operator_id,
        decision=contact.decision,
        detail="через <очередь>",
    )


def stored_history(contact_id: int) -> list[tuple]:
    return list(
        ContactHistory.objects.filter(contact_id=contact_id).values_list(
            "at", "action", "status", "operator_id", "decision", "detail"
        )
    )


def test_insert_contact_with_the_fields_left_to_their_defaults(floor):
    lead = LeadFactory()
    inserted = Contact(lead=lead, source=floor.south)
    saved = Contact(lead=lead, source=floor.south, created_at=inserted.created_at)

    queries.insert_contact(inserted, history=step(inserted), at=inserted.created_at)
    saved.save()

    assert stored_contact(inserted.pk) == stored_contact(saved.pk)
    assert stored_contact(inserted.pk)["status"] == Contact.Status.WAITING


# live_source_key


def key_fields(api_key: SourceApiKey | None) -> tuple | None:
    if api_key is None:
        return None
    source = api_key.source
    return (
        api_key.pk,
        api_key.source_id,
        api_key.prefix,
        api_key.key_hash,
        (source.pk, source.code, source.name, source.is_active, source.strategy),
    )


def orm_live_key(prefix: str) -> SourceApiKey | None:
    keys = SourceApiKey.objects.select_related("source")
    return keys.filter(prefix=prefix, revoked_at__isnull=True).first()


@pytest.mark.parametrize("which", ["live", "inactive_source", "second_key"])
def test_live_source_key_reads_the_key_and_its_source_as_the_orm(which):
    closed = SourceFactory(
        code="closed", name="Closed bot", is_active=False, strategy=Source.Strategy.ROUND_ROBIN
    )
    open_source = SourceFactory(code="open", name="Open bot")
    keys = {
        "live": SourceApiKeyFactory(source=open_source, key="0123456789ab.secret-one"),
        "inactive_source": SourceApiKeyFactory(source=closed, key="ba9876543210.secret-two"),
        "second_key": SourceApiKeyFactory(source=open_source, key="00000000ffff.secret-three"),
    }
    prefix = keys[which].prefix

    api_key = queries.live_source_key(prefix)

    assert key_fields(api_key) == key_fields(orm_live_key(prefix))
    assert api_key.pk == keys[which].pk
    assert api_key.source.pk == keys[which].source_id


def test_live_source_key_of_the_inactive_source_says_so():
    closed = SourceFactory(is_active=False, strategy=Source.Strategy.ROUND_ROBIN)
    SourceApiKeyFactory(source=closed, key="ba9876543210.secret")

    api_key = queries.live_source_key("ba9876543210")

    assert api_key.source.is_active is False
    assert api_key.source.strategy == "round_robin"


def test_live_source_key_ignores_a_revoked_key():
    SourceApiKeyFactory(key="0123456789ab.secret", revoked_at=datetime(2025, 1, 1, tzinfo=UTC))

    assert orm_live_key("0123456789ab") is None
    assert queries.live_source_key("0123456789ab") is None


def test_live_source_key_of_an_unknown_prefix_is_none():
    SourceApiKeyFactory(key="0123456789ab.secret")

    assert queries.live_source_key("ffffffffffff") is None


# leads_with_any


MATCH_FIELDS = ["id", "external_id", "phone", "email", "name"]


def lead_fields(leads: list[Lead]) -> list[tuple]:
    return sorted(tuple(getattr(lead, f) for f in MATCH_FIELDS) for lead in leads)


def orm_leads_with_any(identifiers: dict[str, str]) -> list[Lead]:
    condition = Q()
    for field, value in identifiers.items():
        condition |= Q(**{field: value})
    return list(Lead.objects.filter(condition))


@pytest.fixture
def leads() -> dict[str, Lead]:
    return {
        "by_phone": LeadFactory(external_id=None, phone="+79990000001", name="Anna"),
        "by_email": LeadFactory(external_id=None, email="anna@example.com", name="Anna M."),
        "by_external_id": LeadFactory(external_id="crm-1", phone="+79990000002"),
        "all_three": LeadFactory(
            external_id="crm-2", phone="+79990000003", email="boris@example.com"
        ),
        "stranger": LeadFactory(external_id="crm-3", phone="+79990000004", email="c@example.com"),
    }


@pytest.mark.parametrize(
    ("identifiers", "expected"),
    [
        ({"phone": "+79990000001"}, ["by_phone"]),
        (
            {"external_id": "crm-1", "phone": "+79990000001", "email": "anna@example.com"},
            ["by_phone", "by_email", "by_external_id"],
        ),
        (
            {"external_id": "crm-2", "phone": "+79990000003", "email": "boris@example.com"},
            ["all_three"],
        ),
        ({"email": "+79990000001", "phone": "anna@example.com"}, []),
        ({"external_id": "nobody"}, []),
    ],
    ids=["one", "three_leads", "one_lead_three_ways", "crossed_fields", "none"],
)
def test_leads_with_any_match_the_orm(leads, identifiers, expected):
    found = lead_queries.leads_with_any(identifiers)

    assert lead_fields(found) == lead_fields(orm_leads_with_any(identifiers))
    assert sorted(lead.pk for lead in found) == sorted(leads[name].pk for name in expected)


def test_leads_with_any_refuses_a_field_that_is_not_an_identifier():
    with pytest.raises(ValueError, match="name"):
        lead_queries.leads_with_any({"name": "Anna"})


# insert_lead


LEAD_FIELDS = ["id", "external_id", "phone", "email", "name", "created_at"]


def lead_row(lead: Lead) -> dict[str, object]:
    return {f: getattr(lead, f) for f in LEAD_FIELDS}


@pytest.mark.parametrize(
    "identifiers",
    [
        {"external_id": "crm-9", "phone": None, "email": None},
        {"external_id": None, "phone": "+79990000009", "email": "new@example.com"},
    ],
    ids=["external_id_only", "phone_and_email"],
)
def test_insert_lead_returns_the_lead_the_orm_reads_back(identifiers):
    now = datetime(2025, 3, 1, 9, 30, 15, 123456, tzinfo=timezone(timedelta(hours=3)))

    lead = lead_queries.insert_lead(**identifiers, name="Vera", now=now)

    assert lead is not None
    assert lead_row(lead) == lead_row(Lead.objects.get(pk=lead.pk))
    assert lead_row(lead) == {"id": lead.pk, **identifiers, "name": "Vera", "created_at": now}


@pytest.mark.parametrize("taken", ["external_id", "phone", "email"])
def test_insert_lead_with_a_taken_identifier_returns_none_and_writes_nothing(taken):
    first = LeadFactory(external_id="crm-1", phone="+79990000001", email="a@example.com")
    before = [lead_row(lead) for lead in Lead.objects.order_by("id")]
    fresh = {"external_id": "crm-2", "phone": "+79990000002", "email": "b@example.com"}

    lead = lead_queries.insert_lead(
        **(fresh | {taken: getattr(first, taken)}), name="Other", now=datetime.now(UTC)
    )

    assert lead is None
    assert [lead_row(lead) for lead in Lead.objects.order_by("id")] == before
    # The transaction is still usable: no error was raised and rolled back.
    assert lead_queries.insert_lead(**fresh, name="Other", now=datetime.now(UTC)) is not None
