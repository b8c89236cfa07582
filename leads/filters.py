import contextlib

import django_filters
from django.db.models import Q, QuerySet

from leads.identity import normalise_phone
from leads.models import Contact, Lead


class LeadFilter(django_filters.FilterSet):
    search = django_filters.CharFilter(
        method="filter_search",
        label="Part of an external id, phone, email or name; a phone in any spelling.",
    )

    class Meta:
        model = Lead
        fields = ["search"]

    def filter_search(self, leads: QuerySet[Lead], name: str, value: str) -> QuerySet[Lead]:
        query = (
            Q(external_id__icontains=value)
            | Q(phone__icontains=value)
            | Q(email__icontains=value)
            | Q(name__icontains=value)
        )
        # "8 (916) 123-45-67" finds the lead stored as +79161234567.
        with contextlib.suppress(ValueError):
            query |= Q(phone=normalise_phone(value))
        return leads.filter(query)


class ContactFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=Contact.Status.choices)
    created = django_filters.IsoDateTimeFromToRangeFilter(
        field_name="created_at",
        label="Created in [created_after, created_before] (ISO 8601).",
    )

    class Meta:
        model = Contact
        fields = ["status", "source", "operator", "lead", "created"]
