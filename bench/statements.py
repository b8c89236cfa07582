"""CPU per call of each plain-SQL statement of the hot path and of its ORM twin.

What each hand-written statement in distribution/queries.py, leads/queries.py and
events/outbox.py buys:
on a fresh bench database (dropped at the end), each is called --calls times after a
warm-up, inside one transaction that is rolled back, and this process's CPU per call
is printed beside the same read or write through the ORM.

    .venv/bin/python -m bench.statements [--calls 3000]
"""

import argparse
import time
from collections.abc import Callable
from functools import reduce
from operator import or_

from bench import run

WARMUP_CALLS = 300


def main() -> None:
    parser = argparse.ArgumentParser(description="Plain SQL against the ORM, per statement.")
    parser.add_argument("--calls", type=int, default=3000)
    args = parser.parse_args()
    run.setup_django()
    from django.core.management import call_command

    with run.fresh_database():
        call_command("migrate", verbosity=0)
        for name, sql_ms, orm_ms in measure(args.calls):
            print(f"{name:<16} plain SQL {sql_ms:6.3f} ms   ORM {orm_ms:6.3f} ms CPU per call")
        print("* in one statement (PostgreSQL's way); the second column: in two, not the ORM")


def measure(calls: int) -> list[tuple[str, float, float]]:
    from django.db import transaction
    from django.db.models import Q
    from django.utils import timezone

    from distribution import events, queries
    from distribution.models import Contact, Operator, OperatorSourceWeight, Source, SourceApiKey
    from distribution.sources import create_source_key
    from events.models import Event
    from events.outbox import record
    from leads import queries as lead_queries
    from leads.models import Lead

    def cpu(call: Callable[[], object]) -> float:
        for _ in range(WARMUP_CALLS):
            call()
        started = time.process_time()
        for _ in range(calls):
            call()
        return (time.process_time() - started) / calls * 1000

    with transaction.atomic():
        source = Source.objects.create(code="statements", name="Statements")
        operators = [Operator.objects.create(name=f"Operator {n}") for n in range(5)]
        for operator in operators:
            OperatorSourceWeight.objects.create(operator=operator, source=source, weight=1)
        ids = [operator.pk for operator in operators]
        identifiers = {"external_id": "x1", "phone": "+79161234567", "email": "a@example.com"}
        lead = Lead.objects.create(**identifiers)
        api_key, _ = create_source_key(source=source)
        weights = list(source.weights.all())
        credits = {weight.operator_id: 1 for weight in weights}

        def contact() -> Contact:
            now = timezone.now()
            return Contact(
                lead=lead, source=source, operator=operators[0], status="open",
                payload={"text": "Hello"}, created_at=now, assigned_at=now,
            )  # fmt: skip

        def intake_events() -> list:
            shown = contact()
            shown.pk = None
            return events.contact_events(shown, events.CREATED, events.ASSIGNED)

        match = reduce(or_, [Q(**{name: value}) for name, value in identifiers.items()])
        rows = [
            (
                "lock operators",
                cpu(lambda: queries.lock_operators(operator_ids=[], source_id=source.pk)),
                cpu(
                    lambda: list(
                        Operator.objects.select_for_update()
                        .filter(weights__source_id=source.pk)
                        .order_by("id")
                        .values_list("id", flat=True)
                    )
                ),
            ),
            (
                "operator states",
                cpu(
                    lambda: queries.operator_states(
                        source_id=source.pk, operator_ids=ids, now=timezone.now()
                    )
                ),
                cpu(
                    lambda: (
                        list(Operator.objects.filter(id__in=ids).with_load().order_by("id")),
                        list(OperatorSourceWeight.objects.filter(source=source, operator__in=ids)),
                    )
                ),
            ),
            (
                "lead match",
                cpu(lambda: lead_queries.leads_with_any(identifiers)),
                cpu(lambda: list(Lead.objects.filter(match).only(*lead_queries.MATCH_FIELDS))),
            ),
            (
                "bot key",
                cpu(lambda: queries.live_source_key(api_key.prefix)),
                cpu(
                    lambda: (
                        SourceApiKey.objects.select_related("source")
                        .filter(prefix=api_key.prefix, revoked_at__isnull=True)
                        .first()
                    )
                ),
            ),
            (
                "credits update",
                cpu(lambda: queries.save_round_robin_credits(source_id=source.pk, credits=credits)),
                cpu(
                    lambda: OperatorSourceWeight.objects.bulk_update(
                        weights, ["round_robin_credit"]
                    )
                ),
            ),
            (
                "contact insert",
                cpu(lambda: queries.insert_contact(contact())),
                cpu(lambda: contact().save()),
            ),
            (
                "events insert",
                cpu(lambda: record(intake_events(), at=timezone.now())),
                cpu(
                    lambda: Event.objects.bulk_create(
                        Event(type=e.type, occurred_at=timezone.now(), scope=e.scope, data=e.data)
                        for e in intake_events()
                    )
                ),
            ),
            (
                # The intake's contact with its two events: one statement against two.
                "contact+events*",
                cpu(
                    lambda: queries.insert_contact(
                        contact(), events=intake_events(), at=timezone.now()
                    )
                ),
                cpu(
                    lambda: (
                        queries.insert_contact(contact()),
                        record(intake_events(), at=timezone.now()),
                    )
                ),
            ),
        ]
        transaction.set_rollback(True)
    return rows


if __name__ == "__main__":
    main()
