"""The admin for leads and contacts.

A contact's lead, source, operator, status and timestamps are read-only here: a
contact changes only through the close and reassign actions and its page's Reassign
buttons, which call the flows in distribution.contacts and report what they refused.
"""

from dataclasses import dataclass, replace
from functools import reduce
from operator import or_

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.contrib.admin.utils import unquote
from django.contrib.admin.views.main import IGNORED_PARAMS, ChangeList
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect
from django.urls import URLPattern, path
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.timesince import timesince
from django.utils.translation import gettext, gettext_lazy, ngettext

from core.errors import Conflict
from distribution import eligibility, queries
from distribution.admin.common import (
    ADMIN_CSS,
    EmptyListMixin,
    load_bar,
    report_refusals,
    status_badge,
)
from distribution.api.filters import search_leads
from distribution.contacts import close_contact, reassign_contact
from distribution.eligibility import Decision, OperatorState, Reason
from distribution.models import Contact, ContactHistory, OfferMiss, Operator, OperatorSourceWeight
from leads.identity import NORMALISERS, identifier_lookup, identifier_values
from leads.models import Lead


class LeadForm(forms.ModelForm):
    """Identifiers typed by staff are normalised the way intake normalises them."""

    class Meta:
        model = Lead
        fields = ("name", "external_id", "phone", "email")

    def clean_external_id(self) -> str | None:
        return self._normalised("external_id")

    def clean_phone(self) -> str | None:
        return self._normalised("phone")

    def clean_email(self) -> str | None:
        return self._normalised("email")

    def _normalised(self, field: str) -> str | None:
        value = self.cleaned_data.get(field)
        if not value:
            return None
        try:
            return NORMALISERS[field](value)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None


class ContactInline(admin.TabularInline):
    model = Contact
    fields = ("source", "operator", "status_badge", "created_at", "assigned_at", "closed_at")
    readonly_fields = fields
    ordering = ("-created_at", "-id")
    show_change_link = True
    can_delete = False
    extra = 0

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).select_related("source", "operator")

    def has_add_permission(self, request: HttpRequest, obj: Lead | None = None) -> bool:
        return False

    @admin.display(description=gettext_lazy("Status"))
    def status_badge(self, contact: Contact) -> SafeString:
        return status_badge(contact)


@admin.register(Lead)
class LeadAdmin(EmptyListMixin, admin.ModelAdmin):
    form = LeadForm
    list_display = ("__str__", "external_id", "phone", "email", "contact_count", "created_at")
    list_filter = ("created_at",)
    # What get_search_results looks in, for the search box's presence; it searches them
    # itself, with its contacts' messages (search_leads).
    search_fields = ("external_id", "phone", "email", "name")
    search_help_text = gettext_lazy(
        "Finds leads by part of their external id, phone, e-mail or name, or of one of "
        "their contacts' messages."
    )
    empty_list_text = gettext_lazy(
        "No leads yet. A lead appears when a bot sends its first contact with a source's "
        "API key; you can also add one by hand."
    )
    readonly_fields = ("created_at",)
    list_select_related = False  # a lead has no foreign keys
    inlines = [ContactInline]
    list_per_page = 50
    # Spares a second count of every lead on each filtered or searched page.
    show_full_result_count = False

    class Media:
        css = ADMIN_CSS

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        # A subquery per shown row (the contact.lead_id index), not a join over all contacts.
        contacts = (
            Contact.objects.filter(lead_id=OuterRef("pk"))
            .order_by()
            .values("lead_id")
            .annotate(count=Count("pk"))
            .values("count")
        )
        return super().get_queryset(request).annotate(contact_total=Coalesce(Subquery(contacts), 0))

    @admin.display(description=gettext_lazy("Contacts"), ordering="contact_total")
    def contact_count(self, lead: Lead) -> int:
        return lead.contact_total

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet, search_term: str
    ) -> tuple[QuerySet, bool]:
        """A whole phone or email, typed any way a bot would send it, finds its lead
        exactly; anything else finds the leads whose identifiers or name contain it, or
        one of whose contacts' messages does: the whole term, as the API searches."""
        term = search_term.strip()
        if not term:
            return queryset, False
        values = identifier_values(term)
        if values.keys() & {"phone", "email"}:
            return queryset.filter(identifier_lookup(values)), False
        return search_leads(queryset, term, exact=identifier_lookup(values)), False


class OperatorSelect(forms.Select):
    """A select whose options for operators who cannot take a contact now are disabled."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.disabled_values: set[str] = set()

    def create_option(self, name: str, value: object, *args: object, **kwargs: object) -> dict:
        option = super().create_option(name, value, *args, **kwargs)
        if str(value) in self.disabled_values:
            option["attrs"]["disabled"] = True
        return option


def operator_label(state: OperatorState, reason: Reason | None) -> str:
    """ "Ivan Petrov — 3 / 5" (load / limit, in load units), or "Oleg — away (0 / 5)"."""
    if reason is None:
        return f"{state.name} — {state.load} / {state.limit}"
    short = eligibility.SHORT_REASONS[reason]
    return f"{state.name} — {short} ({state.load} / {state.limit})"


def cannot_take_any(state: OperatorState) -> Reason | None:
    """Why the operator can take no contact now, of any source (None: it has room)."""
    # Asked of operators on some source: read as on one, so only presence, shift and
    # room count; staff's choice is not held to the burst limit (as reassigning is not).
    return eligibility.left_out_reason(replace(state, weight=1, burst_limit=None))


class OperatorChoiceField(forms.ChoiceField):
    """Offers the operators it is given, yet takes any: one taken off every source since
    the page was drawn then hears why from reassign_contact, not "No action selected"."""

    widget = OperatorSelect

    def valid_value(self, value: str) -> bool:
        return value.isdigit() and Operator.objects.filter(pk=value).exists()


class ContactActionForm(ActionForm):
    """The reassign action's choice: operators on at least one source, with their load;
    those who can take nothing now are listed, disabled, with why. A selection may span
    sources, so reassign_contact still says, per contact, why one cannot take it."""

    operator = OperatorChoiceField(required=False, label=gettext_lazy("Reassign to"))

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        on_a_source = OperatorSourceWeight.objects.values_list("operator_id", flat=True)
        states = queries.operator_states(
            source_id=None, operator_ids=sorted(set(on_a_source)), now=timezone.now()
        )
        field = self.fields["operator"]
        # A new set per form: Django's widget copy shares anything but `attrs`, so marks
        # from an earlier request would stay.
        field.widget.disabled_values = set()
        choices = [("", gettext("whoever the source's rule picks"))]
        for state in sorted(states, key=lambda state: (state.name, state.operator_id)):
            reason = cannot_take_any(state)
            choices.append((str(state.operator_id), operator_label(state, reason)))
            if reason is not None:
                field.widget.disabled_values.add(str(state.operator_id))
        field.choices = choices


class ReassignForm(forms.Form):
    """The change page's Reassign buttons: an operator, or none for the source's rule."""

    operator = forms.ModelChoiceField(queryset=Operator.objects.all(), required=False)


@dataclass(frozen=True)
class ReassignRow:
    """One of the source's operators on a contact's page."""

    state: OperatorState
    why_not: str  # why it cannot take the contact now, as reassign_contact would say; "" if it can
    load: SafeString  # its load bar


def reassign_choices(contact: Contact) -> list[ReassignRow] | None:
    """The operators of the contact's source, those who can take it first, each with its
    load and why not (None for a closed contact: it cannot be reassigned)."""
    if contact.status == Contact.Status.CLOSED:
        return None
    source = contact.source
    states = queries.operator_states(source_id=source.pk, operator_ids=None, now=timezone.now())
    rows = []
    for state in states:
        # As contacts._named_operator judges staff's choice: not held to the burst limit.
        state = replace(state, burst_limit=None)
        reason = eligibility.left_out_reason(
            state, exclude_operator_id=contact.operator_id, units=source.load_units
        )
        why_not = eligibility.explain(reason, state, source_code=source.code) if reason else ""
        rows.append(ReassignRow(state, why_not, load_bar(state)))
    return sorted(rows, key=lambda row: (bool(row.why_not), row.state.name, row.state.operator_id))


class OfferMissInline(admin.TabularInline):
    """Who was offered the contact and did not take it: never offered it again by rule."""

    model = OfferMiss
    fields = ("at", "operator", "kind", "reason")
    readonly_fields = fields
    extra = 0
    can_delete = False
    verbose_name = gettext_lazy("declined or expired offer")
    verbose_name_plural = gettext_lazy("declined or expired offers")

    def has_add_permission(self, request: HttpRequest, obj: Contact | None = None) -> bool:
        return False


def decision_html(data: dict | None) -> SafeString:
    """A stored decision as staff read it: the strategy, the lead's own operator where the
    source is sticky, what the contact costs, then every candidate with its weight and
    load, and what came of it (chosen, why it was left out, or not picked)."""
    decision = Decision.from_json(data or {})
    owner = decision.owner
    strategy = decision.strategy_text or "—"
    notes = [
        format_html(
            gettext("Strategy: <b>{strategy}</b> (after {trigger})"),
            strategy=strategy,
            trigger=eligibility.trigger_text(decision.trigger),
        )
        if decision.trigger
        else format_html(gettext("Strategy: <b>{strategy}</b>"), strategy=strategy)
    ]
    if owner:
        notes.append(
            format_html(
                gettext("the lead's own operator: {name} ({outcome})"),
                name=owner.name,
                outcome=decision.outcome(owner),
            )
        )
    if decision.units != 1:
        notes.append(
            format_html(
                ngettext("costs {units} load unit", "costs {units} load units", decision.units),
                units=decision.units,
            )
        )
    rows = format_html_join(
        "",
        "<tr><td>{}</td><td>{}</td><td>{} / {}</td><td>{}</td></tr>",
        (
            (
                candidate.name,
                "—" if candidate.weight is None else candidate.weight,
                candidate.load,
                candidate.limit,
                decision.outcome(candidate),
            )
            for candidate in decision.candidates
        ),
    )
    return format_html(
        "<p>{}</p>"
        "<table><thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr></thead>"
        "<tbody>{}</tbody></table>",
        format_html_join(" &middot; ", "{}", ((note,) for note in notes)),
        gettext("Operator"),
        gettext("Weight"),
        gettext("Open / limit"),
        gettext("Outcome"),
        rows,
    )


class ContactHistoryInline(admin.TabularInline):
    """The contact's steps, oldest first, each with the decision made at it: append-only,
    written by the flows that change the contact, never here."""

    model = ContactHistory
    fields = ("when", "action", "status", "operator", "step_detail", "decision_at_step")
    readonly_fields = fields
    # In the order they were written, which is the order they happened in.
    ordering = ("id",)
    extra = 0
    can_delete = False
    verbose_name = gettext_lazy("step")
    verbose_name_plural = gettext_lazy("timeline")
    classes = ("contact-timeline",)

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).select_related("operator")

    def has_add_permission(self, request: HttpRequest, obj: Contact | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Contact | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Contact | None = None) -> bool:
        return False

    @admin.display(description=gettext_lazy("When"))
    def when(self, step: ContactHistory) -> str:
        """In the viewer's time zone (the admin's current one), to the second, with its name;
        the date as the language writes it (its DATE_FORMAT: "Jan. 15, 2026" in English)."""
        at = timezone.localtime(step.at)
        return f"{date_format(at, 'DATE_FORMAT')}, {date_format(at, 'H:i:s T')}"

    @admin.display(description=gettext_lazy("detail"))
    def step_detail(self, step: ContactHistory) -> str:
        # What freed the capacity is stored as a code (a trigger); a decline's reason as typed.
        return eligibility.trigger_text(step.detail) or self.get_empty_value_display()

    @admin.display(description=gettext_lazy("Decision"))
    def decision_at_step(self, step: ContactHistory) -> SafeString | str:
        return decision_html(step.decision) if step.decision else self.get_empty_value_display()


class FlaggedFilter(admin.SimpleListFilter):
    title = gettext_lazy("supervisor's attention")
    parameter_name = "flagged"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list:
        return [("yes", gettext_lazy("Flagged, not closed"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() == "yes":
            return queryset.filter(flagged_at__isnull=False).exclude(status=Contact.Status.CLOSED)
        return queryset


@admin.register(Contact)
class ContactAdmin(EmptyListMixin, admin.ModelAdmin):
    list_display = ("id", "lead", "source", "operator", "status_badge", "age")
    list_display_links = ("id",)
    list_filter = ("status", FlaggedFilter, "source", "operator", "created_at")
    list_select_related = ("lead", "source", "operator")
    search_fields = ("=lead__external_id", "=lead__phone", "=lead__email")
    search_help_text = gettext_lazy(
        "Finds the contacts of the lead with this whole external id, phone or e-mail, or "
        "the contact with this number."
    )
    # Nothing is edited by hand, so no foreign key needs a picker (autocomplete, raw id):
    # the lead, source and operator show as links.
    readonly_fields = (
        "lead",
        "source",
        "operator",
        "status",
        "payload",
        "decision_table",
        "lead_conflicts",
        "created_at",
        "assigned_at",
        "offer_expires_at",
        "flagged_at",
        "closed_at",
    )
    fields = readonly_fields
    inlines = [ContactHistoryInline, OfferMissInline]
    action_form = ContactActionForm
    actions = ["close", "reassign"]
    list_per_page = 100
    empty_list_text = gettext_lazy(
        "No contacts yet. Bots send them to the intake API with a source's API key: add a "
        "source, put operators on it with their weights, then give its bot a key."
    )
    # Spares a second count of a million contacts on each filtered or searched page.
    show_full_result_count = False

    class Media:
        css = ADMIN_CSS

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # contacts come in through the intake API

    def has_delete_permission(self, request: HttpRequest, obj: Contact | None = None) -> bool:
        return False  # history: close a contact instead

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict | None = None,
    ) -> HttpResponse:
        context = {"show_save": False, "show_save_and_continue": False}
        contact = self.get_object(request, unquote(object_id))
        if contact is not None and self.has_change_permission(request, contact):
            context["reassign"] = reassign_choices(contact)
        return super().change_view(request, object_id, form_url, context | (extra_context or {}))

    def get_urls(self) -> list[URLPattern]:
        reassign = path(
            "<path:object_id>/reassign/",
            self.admin_site.admin_view(self.reassign_view),
            name="distribution_contact_reassign",
        )
        # Before the default patterns, whose catch-all would take ".../reassign/".
        return [reassign, *super().get_urls()]

    def reassign_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The change page's buttons: the contact to the operator named, or (none named)
        to whoever the source's rule picks; the flow's refusal is shown as it says it."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        contact = self.get_object(request, unquote(object_id))
        if contact is None:
            raise Http404
        if not self.has_change_permission(request, contact):
            raise PermissionDenied
        form = ReassignForm(request.POST)
        if not form.is_valid():
            self.message_user(request, gettext("That operator no longer exists."), messages.ERROR)
            return redirect("admin:distribution_contact_change", contact.pk)
        done = (
            gettext("Contact #%(id)d reassigned to %(operator)s.")
            if contact.operator_id
            else gettext("Contact #%(id)d assigned to %(operator)s.")
        )
        try:
            contact = reassign_contact(contact=contact, operator=form.cleaned_data["operator"])
        except Conflict as refusal:
            message = gettext("Not reassigned: %(reason)s") % {"reason": refusal}
            self.message_user(request, message, messages.ERROR)
        else:
            message = done % {"id": contact.pk, "operator": contact.operator.name}
            self.message_user(request, message, messages.SUCCESS)
        return redirect("admin:distribution_contact_change", contact.pk)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet, search_term: str
    ) -> tuple[QuerySet, bool]:
        """The contacts of the lead any identifier names, normalised as intake does.

        Exact matches only: they use the leads' unique indexes, where a partial match
        would scan every contact.
        """
        term = search_term.strip()
        if not term:
            return queryset, False
        matches = [identifier_lookup(identifier_values(term), prefix="lead__")]
        if term.isdigit():
            matches.append(Q(pk=int(term)))
        matches = [match for match in matches if match is not None]
        if not matches:
            return queryset.none(), False
        return queryset.filter(reduce(or_, matches)), False

    @admin.display(description=gettext_lazy("Status"), ordering="status")
    def status_badge(self, contact: Contact) -> SafeString:
        return status_badge(contact)

    @admin.display(description=gettext_lazy("Age"), ordering="created_at")
    def age(self, contact: Contact) -> str:
        return timesince(contact.created_at, depth=1)

    @admin.display(description=gettext_lazy("Decision"))
    def decision_table(self, contact: Contact) -> SafeString:
        """Why the engine chose this operator: every candidate, and why others were left out."""
        return decision_html(contact.decision)

    @admin.action(description=gettext_lazy("Close selected contacts"), permissions=["change"])
    def close(self, request: HttpRequest, queryset: QuerySet) -> None:
        refusals = []
        closed = 0
        for contact in queryset.order_by("id"):
            try:
                close_contact(contact=contact)
            except Conflict as refusal:
                refusals.append(refused(contact, refusal))
            else:
                closed += 1
        if closed:
            message = ngettext(
                "%(count)d contact(s) closed.", "%(count)d contact(s) closed.", closed
            ) % {"count": closed}
            self.message_user(request, message, messages.SUCCESS)
        report_refusals(self, request, gettext("Not closed: %(reason)s"), refusals)

    @admin.action(description=gettext_lazy("Reassign selected contacts"), permissions=["change"])
    def reassign(self, request: HttpRequest, queryset: QuerySet) -> None:
        """To the operator chosen beside the action, or by the source's rule."""
        # The admin has validated the action form, the operator field with it.
        operator_id = request.POST.get("operator")
        operator = Operator.objects.filter(pk=operator_id).first() if operator_id else None
        if operator_id and operator is None:
            self.message_user(request, gettext("That operator no longer exists."), messages.ERROR)
            return
        refusals = []
        moved = []
        for contact in queryset.order_by("id"):
            try:
                moved.append(reassign_contact(contact=contact, operator=operator))
            except Conflict as refusal:
                refusals.append(refused(contact, refusal))
        if moved:
            names = sorted({contact.operator.name for contact in moved})
            message = ngettext(
                "%(count)d contact(s) reassigned to %(operators)s.",
                "%(count)d contact(s) reassigned to %(operators)s.",
                len(moved),
            ) % {"count": len(moved), "operators": ", ".join(names)}
            self.message_user(request, message, messages.SUCCESS)
        report_refusals(self, request, gettext("Not reassigned: %(reason)s"), refusals)

    def filtered_empty_text(self, changelist: ChangeList) -> str:
        """A list narrowed to one status, and nothing else, says what that means."""
        if not changelist.query:
            narrowed = {name for name in changelist.params if name not in IGNORED_PARAMS}
            status = changelist.params.get("status__exact")
            if narrowed == {"status__exact"} and status in EMPTY_STATUS_TEXTS:
                return EMPTY_STATUS_TEXTS[status]
            if narrowed == {"flagged"}:
                return gettext("No open contact needs a supervisor's attention.")
        return super().filtered_empty_text(changelist)


# What a list of contacts of one status says when it is empty.
EMPTY_STATUS_TEXTS = {
    Contact.Status.WAITING: gettext_lazy(
        "No contact is waiting: every contact that came in has gone to an operator."
    ),
    Contact.Status.OFFERED: gettext_lazy("No contact is offered to an operator right now."),
    Contact.Status.OPEN: gettext_lazy("No contact is open right now."),
    Contact.Status.CLOSED: gettext_lazy("No contact has been closed yet."),
}


def refused(contact: Contact, refusal: Conflict) -> str:
    """One contact an action left as it was, and why."""
    return gettext("Contact %(id)s: %(reason)s") % {"id": contact.pk, "reason": refusal}
