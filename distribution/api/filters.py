"""Filters of the API's lists: leads by search, contacts by status, source, operator, lead
and time."""

import contextlib
from datetime import UTC, datetime

import django_filters
from django import forms
from django.db.models import Q, QuerySet

from distribution.models import Contact
from leads.identity import normalise_phone
from leads.models import Lead


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


class ContactFilterForm(forms.Form):
    """Refuses ends that exist only in their own offset (9999-12-31T23:59-05:00): the
    database gets them in UTC, where they would overflow. Errors are keyed by the
    parameter's own name."""

    def _in_range(self, name: str) -> datetime | None:
        moment = self.cleaned_data[name]
        try:
            if moment is not None:
                moment.astimezone(UTC)
        except OverflowError:
            raise forms.ValidationError("Date and time out of range.") from None
        return moment

    def clean_created_after(self) -> datetime | None:
        return self._in_range("created_after")

    def clean_created_before(self) -> datetime | None:
        return self._in_range("created_before")


class ContactFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=Contact.Status.choices)
    created_after = django_filters.IsoDateTimeFilter(
        field_name="created_at", lookup_expr="gte", label="Created at or after (ISO 8601)."
    )
    created_before = django_filters.IsoDateTimeFilter(
        field_name="created_at", lookup_expr="lte", label="Created at or before (ISO 8601)."
    )

    class Meta:
        model = Contact
        fields = ["status", "source", "operator", "lead", "created_after", "created_before"]
        form = ContactFilterForm
