import json
from collections import Counter
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db.models import F
from django.utils import timezone

from distribution.models import Contact, Operator, OperatorSourceWeight, Source, counted_load
from distribution.reports import distribution_report
from leads.models import Lead
from tests.factories import (
    ContactFactory,
    LeadFactory,
    OperatorFactory,
    OperatorSourceWeightFactory,
    SourceFactory,
)


def run(command: str, *args: str) -> str:
    out = StringIO()
    call_command(command, *args, stdout=out)
    return out.getvalue()


def seed(*args: str) -> str:
    return run("seed", *args)


def assert_history_keeps_the_engine_rules() -> None:
    """Contacts only with operators on their source; open ones with active operators, none
    over its limit, each stored load what its contacts add up to."""
    counted = Operator.objects.annotate(counted=counted_load("pk"))
    assert not counted.filter(counted__gt=F("max_open_contacts"))
    assert not counted.exclude(open_load=F("counted"))
    weights = set(OperatorSourceWeight.objects.values_list("source_id", "operator_id"))
    assigned = Contact.objects.filter(operator__isnull=False)
    assert set(assigned.values_list("source_id", "operator_id")) <= weights
    open_with = Operator.objects.filter(contacts__status=Contact.Status.OPEN).distinct()
    assert all(operator.is_active for operator in open_with)


@pytest.mark.django_db
def test_seed_creates_exactly_what_was_asked():
    output = seed(
        "--operators=6",
        "--sources=4",
        "--weights-per-source=3",
        "--leads=50",
        "--contacts=400",
        "--seed=7",
        "--batch-size=150",
    )

    assert Operator.objects.count() == 6
    assert Source.objects.count() == 4
    assert all(source.weights.count() == 3 for source in Source.objects.all())
    assert Lead.objects.count() == 50
    assert Contact.objects.count() == 400
    assert set(Contact.objects.values_list("status", flat=True)) <= {"open", "closed"}
    assert Contact.objects.filter(status="closed").exists()
    assert_history_keeps_the_engine_rules()
    assert "contacts:       400 / 400" in output
    assert "Created 6 operators, 4 sources, 50 leads and 400 contacts" in output


# As from the shell: TRUNCATE refuses rows whose foreign keys are still being checked.
@pytest.mark.django_db(transaction=True)
def test_seed_with_the_same_seed_makes_the_same_data():
    def snapshot() -> tuple:
        return (
            list(Operator.objects.values_list("name", "is_active", "max_open_contacts")),
            list(Source.objects.values_list("code", "strategy")),
            sorted(
                OperatorSourceWeight.objects.values_list("source__code", "operator__name", "weight")
            ),
            Counter(Contact.objects.values_list("source__code", "operator__name", "status")),
        )

    arguments = ["--operators=5", "--sources=3", "--weights-per-source=2", "--leads=20"]
    seed("--reset", *arguments, "--contacts=300", "--seed=3")
    first = snapshot()
    seed("--reset", *arguments, "--contacts=300", "--seed=3")

    assert snapshot() == first


@pytest.mark.django_db
def test_seed_keeps_operators_already_holding_contacts_within_their_limits():
    weight = OperatorSourceWeightFactory(operator__max_open_contacts=4)
    ContactFactory.create_batch(3, open=True, operator=weight.operator, source=weight.source)

    seed("--leads=10", "--contacts=500", "--seed=1")

    assert Contact.objects.filter(operator=weight.operator, status="open").count() <= 4
    assert_history_keeps_the_engine_rules()


@pytest.mark.django_db
def test_seed_gives_historical_contacts_to_active_operators_only():
    source = SourceFactory()
    active = OperatorSourceWeightFactory(source=source).operator
    OperatorSourceWeightFactory(source=source, operator__is_active=False)

    seed("--leads=5", "--contacts=100", "--seed=2")

    assert set(Contact.objects.values_list("operator_id", flat=True)) == {active.pk}


# As from the shell: TRUNCATE refuses rows whose foreign keys are still being checked.
@pytest.mark.django_db(transaction=True)
def test_seed_reset_deletes_what_was_there():
    ContactFactory(open=True)

    seed("--reset", "--operators=1")

    assert Operator.objects.count() == 1
    assert not Contact.objects.exists()
    assert not Lead.objects.exists()
    assert not Source.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--operators=2", "--sources=1", "--weights-per-source=3"], "but there are 2"),
        (["--operators=1", "--sources=1", "--weights-per-source=1", "--contacts=5"], "need leads"),
        (["--leads=1", "--contacts=5"], "need a source with an active operator"),
        (["--contacts=-1"], "zero or more"),
    ],
)
def test_seed_refuses_what_it_cannot_make(arguments, message):
    with pytest.raises(CommandError, match=message):
        seed(*arguments)


@pytest.mark.django_db(transaction=True)
def test_seed_with_parallel_writers_creates_every_contact():
    run(
        "seed",
        "--operators=4",
        "--sources=2",
        "--weights-per-source=2",
        "--leads=30",
        "--contacts=1000",
        "--batch-size=100",
        "--writers=3",
    )

    assert Contact.objects.count() == 1000
    assert Lead.objects.count() == 30
    assert_history_keeps_the_engine_rules()


@pytest.mark.django_db
def test_drain_waiting_assigns_every_contact_someone_can_take():
    weight = OperatorSourceWeightFactory(operator__max_open_contacts=2)
    ContactFactory.create_batch(3, source=weight.source)

    output = run("drain_waiting")

    assert output == "2 waiting contact(s) assigned.\n"
    assert Contact.objects.filter(status="open", operator=weight.operator).count() == 2
    assert Contact.objects.filter(status="waiting").count() == 1


@pytest.mark.django_db
def test_distribution_report_prints_the_page_numbers_as_a_table():
    weight = OperatorSourceWeightFactory(
        source__code="tg", operator__name="Ivan", operator__max_open_contacts=5, weight=3
    )
    ContactFactory.create_batch(2, open=True, source=weight.source, operator=weight.operator)
    ContactFactory(source=weight.source)

    output = run("distribution_report")

    assert "tg (weighted_random): 2 assigned, 1 waiting" in output
    assert "Ivan" in output
    assert "100.0%" in output
    assert "2/5" in output


@pytest.mark.django_db
def test_distribution_report_json_matches_the_report():
    weight = OperatorSourceWeightFactory(source__code="tg", weight=2)
    OperatorSourceWeightFactory(source=weight.source, weight=2)
    ContactFactory.create_batch(3, closed=True, source=weight.source, operator=weight.operator)

    data = json.loads(run("distribution_report", "--days=0", "--json"))

    [source] = distribution_report()
    assert data["since"] is None
    assert data["sources"][0]["code"] == "tg"
    assert [row["actual_share"] for row in data["sources"][0]["operators"]] == [
        row.actual_share for row in source.operators
    ]
    assert [row["target_share"] for row in data["sources"][0]["operators"]] == [0.5, 0.5]


@pytest.mark.django_db
def test_distribution_report_refuses_a_bad_period():
    with pytest.raises(CommandError, match="since"):
        run("distribution_report", "--since=yesterday")


@pytest.mark.django_db(transaction=True)
def test_simulate_sends_contacts_through_intake_and_checks_the_invariants():
    source = SourceFactory(code="tg")
    OperatorSourceWeightFactory(source=source, operator__max_open_contacts=5, weight=3)
    OperatorSourceWeightFactory(source=source, operator__max_open_contacts=5, weight=1)

    output = run(
        "simulate", "--contacts=40", "--workers=4", "--close-rate=0.5", "--leads=10", "--seed=1"
    )

    assert Contact.objects.count() == 40
    assert Lead.objects.count() <= 10
    assert "tg (weighted_random)" in output
    assert "all hold" in output
    assert not Operator.objects.with_load().filter(load__gt=F("max_open_contacts"))


@pytest.mark.django_db(transaction=True)
def test_simulate_fails_when_an_operator_is_over_its_limit():
    weight = OperatorSourceWeightFactory(operator__name="Ivan", operator__max_open_contacts=1)
    ContactFactory.create_batch(3, open=True, operator=weight.operator, source=weight.source)
    out = StringIO()

    with pytest.raises(CommandError, match="1 invariant violation"):
        call_command("simulate", "--contacts=5", "--workers=2", stdout=out)

    assert "FAILED: Ivan holds 3 open contacts, over its limit of 1." in out.getvalue()


@pytest.mark.django_db
def test_simulate_needs_an_active_source_with_operators():
    SourceFactory()

    with pytest.raises(CommandError, match="No active source with operators"):
        run("simulate", "--contacts=1")


@pytest.mark.django_db
def test_demo_fills_only_an_empty_database_and_prints_the_login():
    first = run("demo")
    counts = (Operator.objects.count(), Source.objects.count(), Contact.objects.count())
    second = run("demo")

    assert "Demo operators, sources and contacts created." in first
    assert "Demo operators" not in second
    assert "login demo / demo-password" in second
    assert counts[:2] == (5, 4)
    assert counts[2] > 3000
    # The printed first request has someone free to go to.
    telegram = Source.objects.get(code="telegram-bot")
    assert (
        Operator.objects.with_load()
        .filter(weights__source=telegram, load__lt=F("max_open_contacts"))
        .exists()
    )
    assert (Operator.objects.count(), Contact.objects.count()) == (counts[0], counts[2])
    assert_history_keeps_the_engine_rules()


@pytest.mark.django_db
def test_demo_leaves_a_database_with_data_alone():
    LeadFactory()
    OperatorFactory()

    output = run("demo")

    assert "Demo operators" not in output
    assert Source.objects.count() == 0


@pytest.mark.django_db
def test_seed_without_weights_per_source_puts_five_operators_at_most_on_each_new_source():
    seed("--operators=3", "--sources=2", "--leads=5", "--contacts=50", "--seed=4")

    assert [source.weights.count() for source in Source.objects.all()] == [3, 3]
    assert Contact.objects.count() == 50

    seed("--operators=4", "--sources=1", "--seed=5")  # 7 operators in all now

    assert Source.objects.order_by("id").last().weights.count() == 5


@pytest.mark.django_db
def test_seeded_history_counts_in_the_shares_of_the_operators_it_went_to():
    seed("--operators=2", "--sources=1", "--leads=20", "--contacts=200", "--days=7", "--seed=6")

    [source] = distribution_report(since=timezone.now() - timedelta(days=8))
    assert sum(row.share_assigned for row in source.operators) == source.assigned == 200
