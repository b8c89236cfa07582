"""What the admin's pages share: the stylesheet, load bars, status badges, refusals."""

from django.contrib import admin, messages
from django.forms import BaseInlineFormSet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from core.errors import Conflict
from distribution.eligibility import OperatorState, percent_full
from distribution.models import Contact

ADMIN_CSS = {"all": ["distribution/admin.css"]}
# A refused action lists this many reasons, then how many more there were.
REFUSALS_SHOWN = 10


def load_bar(state: OperatorState) -> SafeString:
    """Load as "open / limit" and a small bar: green with room, amber near the limit, red at it."""
    load, limit = state.load, state.limit
    filled = percent_full(state)
    level = "full" if filled == 100 else "high" if filled >= 80 else "ok"
    return format_html(
        '<span class="load load-{}" title="{} open of {} allowed">'
        '<span class="load-text">{} / {}</span>'
        '<span class="load-track"><span class="load-fill" style="width: {}%"></span></span>'
        "</span>",
        level,
        load,
        limit,
        load,
        limit,
        filled,
    )


def status_badge(contact: Contact) -> SafeString:
    return format_html(
        '<span class="status status-{}">{}</span>', contact.status, contact.get_status_display()
    )


def submitted_weights(formset: BaseInlineFormSet, other_side: str) -> dict[int, int]:
    """{id of `other_side`: weight} as the inline's weight rows stand after this POST."""
    return {getattr(row, f"{other_side}_id"): row.weight for row in kept(formset)}


def kept(formset: BaseInlineFormSet) -> list:
    """The inline's rows as they stand after this POST, unsaved, for a service to store.

    The formset itself saves nothing (`commit=False` only fills what the admin's change
    message reads); the caller hands the whole list to a service.
    """
    formset.save(commit=False)
    return [
        form.instance
        for form in formset.forms
        if form.cleaned_data and form not in formset.deleted_forms
    ]


def report_refusals(
    model_admin: admin.ModelAdmin, request: HttpRequest, heading: str, refusals: list[str]
) -> None:
    """One error message listing what an action refused, and why."""
    if not refusals:
        return
    shown = " ".join(refusals[:REFUSALS_SHOWN])
    if len(refusals) > REFUSALS_SHOWN:
        shown += f" And {len(refusals) - REFUSALS_SHOWN} more."
    model_admin.message_user(request, f"{heading}: {shown}", messages.ERROR)


class DeleteThroughServiceMixin:
    """For a ModelAdmin whose `delete_model` calls a service that may refuse (Conflict):
    one object at a time, and a refusal shown on the object's page, not a 500."""

    def get_actions(self, request: HttpRequest) -> dict:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: dict | None = None
    ) -> HttpResponse:
        try:
            return super().delete_view(request, object_id, extra_context)
        except Conflict as refusal:
            self.message_user(request, str(refusal), messages.ERROR)
            opts = self.opts
            change = f"admin:{opts.app_label}_{opts.model_name}_change"
            return HttpResponseRedirect(reverse(change, args=[object_id]))
