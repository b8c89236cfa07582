"""The distribution report: target against actual shares, per source and operator.

One read for the API (`/api/stats/distribution/`), the admin's distribution page and
`manage.py distribution_report`. Four queries whatever the history size, each served
by an index on the contact table (see distribution.models.Contact.Meta).
"""

from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Count

from distribution.eligibility import OperatorState, state_of
from distribution.models import Contact, Operator, OperatorSourceWeight, Source


@dataclass
class OperatorShare:
    operator_id: int
    name: str
    is_active: bool
    weight: int  # 0 when the operator is no longer on the source but got contacts in the period
    target_share: float  # weight / sum of the active operators' weights on the source
    assigned: int  # by the source's rule: what the weights govern
    actual_share: float | None  # of `assigned`; None when the source assigned nothing by rule
    returning: int  # given to the operator as the lead's own (sticky): load, not shares
    load: int  # open contacts now
    limit: int

    @property
    def state(self) -> OperatorState:
        return OperatorState(
            operator_id=self.operator_id,
            name=self.name,
            is_active=self.is_active,
            load=self.load,
            limit=self.limit,
            weight=self.weight or None,
        )


@dataclass
class SourceReport:
    source_id: int
    code: str
    name: str
    strategy: str
    is_active: bool
    waiting: int
    assigned: int  # by the source's rule
    returning: int  # to the lead's own operator
    load_units: int  # what one of its contacts costs
    operators: list[OperatorShare] = field(default_factory=list)


def distribution_report(
    *, since: datetime | None = None, until: datetime | None = None
) -> list[SourceReport]:
    """Per source: each operator's target share and its share of contacts assigned by
    the source's rule in [since, until), the contacts it got as a returning lead's own
    operator (sticky: not in the shares, which the weights govern for new leads), its
    open load and limit, and the source's waiting count."""
    assigned_contacts = Contact.objects.filter(operator__isnull=False, assigned_at__isnull=False)
    if since is not None:
        assigned_contacts = assigned_contacts.filter(assigned_at__gte=since)
    if until is not None:
        assigned_contacts = assigned_contacts.filter(assigned_at__lt=until)
    assigned: dict[tuple[int, int, bool], int] = {
        (row["source_id"], row["operator_id"], row["by_owner"]): row["count"]
        for row in assigned_contacts.order_by()
        .values("source_id", "operator_id", "by_owner")
        .annotate(count=Count("pk"))
    }
    waiting = dict(
        Contact.objects.filter(status=Contact.Status.WAITING)
        .order_by()
        .values("source_id")
        .annotate(count=Count("pk"))
        .values_list("source_id", "count")
    )
    weights: dict[int, dict[int, int]] = {}
    for source_id, operator_id, weight in OperatorSourceWeight.objects.values_list(
        "source_id", "operator_id", "weight"
    ):
        weights.setdefault(source_id, {})[operator_id] = weight
    operators = {op.pk: op for op in Operator.objects.with_load()}
    return [
        _source_report(source, weights.get(source.pk, {}), assigned, waiting, operators)
        for source in Source.objects.order_by("code")
    ]


def _source_report(
    source: Source,
    weights: dict[int, int],
    assigned: dict[tuple[int, int, bool], int],
    waiting: dict[int, int],
    operators: dict[int, Operator],
) -> SourceReport:
    assigned_here: dict[int, int] = {}
    returning_here: dict[int, int] = {}
    for (source_id, operator_id, by_owner), count in assigned.items():
        if source_id == source.pk:
            counts = returning_here if by_owner else assigned_here
            counts[operator_id] = count
    total_assigned = sum(assigned_here.values())
    active_weight = sum(w for op_id, w in weights.items() if operators[op_id].is_active)
    rows = []
    for operator_id in sorted(set(weights) | set(assigned_here) | set(returning_here)):
        operator = state_of(operators[operator_id])
        weight = weights.get(operator_id, 0)
        count = assigned_here.get(operator_id, 0)
        rows.append(
            OperatorShare(
                operator_id=operator_id,
                name=operator.name,
                is_active=operator.is_active,
                weight=weight,
                target_share=weight / active_weight
                if operator.is_active and active_weight
                else 0.0,
                assigned=count,
                actual_share=count / total_assigned if total_assigned else None,
                returning=returning_here.get(operator_id, 0),
                load=operator.load,
                limit=operator.limit,
            )
        )
    return SourceReport(
        source_id=source.pk,
        code=source.code,
        name=source.name,
        strategy=source.strategy,
        is_active=source.is_active,
        waiting=waiting.get(source.pk, 0),
        assigned=total_assigned,
        returning=sum(returning_here.values()),
        load_units=source.load_units,
        operators=rows,
    )
