"""What the admin's pages share: the stylesheet, load bars, shares as percentages, status
badges, refusals, and what an empty list says to do next."""

from django.contrib import admin, messages
from django.contrib.admin.views.main import IGNORED_PARAMS, ChangeList
from django.forms import BaseInlineFormSet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils import formats
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from core.errors import Conflict
from distribution.eligibility import OperatorState, percent_full
from distribution.models import Contact

ADMIN_CSS = {"all": ["distribution/admin.css"]}
# A refused action lists this many reasons, then how many more there were.
REFUSALS_SHOWN = 10


def percent(share: float) -> str:
    """A share as a percentage to a tenth, with the language's decimal mark ("16,7%" in Russian)."""
    # Rounded here: number_format cuts a float's digits off rather than rounding them.
    return f"{formats.number_format(round(100 * share, 1), 1)}%"


def signed(points: float) -> str:
    """Percentage points with their sign, +0.0 for nothing."""
    # Rounded first, so a tiny negative gap shows as +0.0, not -0.0.
    points = round(points, 1) + 0.0
    return f"{'+' if points >= 0 else ''}{formats.number_format(points, 1)}"


def load_bar(state: OperatorState) -> SafeString:
    """Load as "open / limit" and a small bar: green with room, amber near the limit, red at it."""
    load, limit = state.load, state.limit
    filled = percent_full(state)
    level = "full" if filled == 100 else "high" if filled >= 80 else "ok"
    title = _("%(load)s open of %(limit)s allowed") % {"load": load, "limit": limit}
    return format_html(
        '<span class="load load-{}" title="{}">'
        '<span class="load-text">{} / {}</span>'
        '<span class="load-track"><span class="load-fill" style="width: {}%"></span></span>'
        "</span>",
        level,
        title,
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
    model_admin: admin.ModelAdmin, request: HttpRequest, message: str, refusals: list[str]
) -> None:
    """One error message listing what an action refused, and why: `message` is a
    translated sentence with a %(reason)s placeholder for the list."""
    if not refusals:
        return
    shown = " ".join(refusals[:REFUSALS_SHOWN])
    if len(refusals) > REFUSALS_SHOWN:
        more = len(refusals) - REFUSALS_SHOWN
        shown += " " + ngettext("And %(count)d more.", "And %(count)d more.", more) % {
            "count": more
        }
    model_admin.message_user(request, message % {"reason": shown}, messages.ERROR)


class EmptyListMixin:
    """For a ModelAdmin whose change list, when it shows nothing, says what to do next:
    `empty_list_text` when there is nothing at all, `filtered_empty_text` when filters
    or a search hide everything. templates/admin/change_list.html shows `cl.empty_text`."""

    empty_list_text: str = ""

    def get_changelist_instance(self, request: HttpRequest) -> ChangeList:
        changelist = super().get_changelist_instance(request)
        if not changelist.result_count:
            if is_narrowed(changelist):
                changelist.empty_text = self.filtered_empty_text(changelist)
            else:
                changelist.empty_text = self.empty_list_text
        return changelist

    def filtered_empty_text(self, changelist: ChangeList) -> str:
        return _("Nothing matches these filters or this search: clear them to see all.")


def is_narrowed(changelist: ChangeList) -> bool:
    """Whether a search, a filter or a lookup in the address narrows the list."""
    return bool(changelist.query) or any(name not in IGNORED_PARAMS for name in changelist.params)


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
