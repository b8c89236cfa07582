"""Filters of the API's lists: leads by search, contacts by status, source, operator, lead
and time."""

import contextlib
from datetime import UTC

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
    def clean_created(self) -> slice | None:
        """Refuse ends that exist only in their own offset (9999-12-31T23:59-05:00): the
        database gets them in UTC, where they would overflow."""
        period = self.cleaned_data["created"]
        for end in (period.start, period.stop) if period else ():
            try:
                if end is not None:
                    end.astimezone(UTC)
            except OverflowError:
                raise forms.ValidationError("Date and time out of range.") from None
        return period


class ContactFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=Contact.Status.choices)
    created = django_filters.IsoDateTimeFromToRangeFilter(
        field_name="created_at",
        label="Created in [created_after, created_before] (ISO 8601).",
    )

    class Meta:
        model = Contact
        fields = ["status", "source", "operator", "lead", "created"]
        form = ContactFilterForm
