"""The back office for operators and sources, and the distribution page.

Every write with a side effect goes through `distribution.services`: an operator
saved or (de)activated, weights changed from either side. Those flows drain the
waiting queue in the same transaction, so staff see waiting contacts assigned at once.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, F, OuterRef, Prefetch, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce
from django.forms import BaseInlineFormSet, ModelForm
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from crm.errors import Conflict
from distribution.forms import PRESET_DAYS, ReportPeriodForm
from distribution.models import Operator, OperatorSourceWeight, Source
from distribution.preview import (
    Staffing,
    preview_next_contacts,
    source_warnings,
    staffing,
    weights_with_load,
)
from distribution.reports import OperatorShare, SourceReport, distribution_report
from distribution.services import (
    create_operator,
    create_source,
    delete_operator,
    delete_source,
    operator_load,
    set_operator_weights,
    set_source_weights,
    update_operator,
    update_source,
)
from leads.models import Contact

ADMIN_CSS = {"all": ["distribution/admin.css"]}
# How many of an operator's sources the list shows before "and N more".
SOURCES_SHOWN = 4
# Percentage points between actual and target share past which the page highlights a row.
GAP_ALERT = 5


def load_bar(load: int, limit: int) -> SafeString:
    """Load as "open / limit" and a small bar: green with room, amber near the limit, red at it."""
    filled = 100 if load >= limit else round(100 * load / limit)
    level = "full" if load >= limit else "high" if filled >= 80 else "ok"
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


def submitted_weights(formset: BaseInlineFormSet, other_side: str) -> dict[int, int]:
    """{id of `other_side`: weight} as the inline rows stand after this POST.

    The formset itself saves nothing (`commit=False` only fills what the admin's
    change message reads); the caller hands the whole list to a service.
    """
    formset.save(commit=False)
    weights = {}
    for form in formset.forms:
        if not form.cleaned_data or form in formset.deleted_forms:
            continue
        weights[form.cleaned_data[other_side].pk] = form.cleaned_data["weight"]
    return weights


class AtLimitFilter(admin.SimpleListFilter):
    title = "load"
    parameter_name = "load"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list:
        return [("full", "At the limit"), ("room", "Has room")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        # `load` is annotated by OperatorAdmin.get_queryset.
        if self.value() == "full":
            return queryset.filter(load__gte=F("max_open_contacts"))
        if self.value() == "room":
            return queryset.filter(load__lt=F("max_open_contacts"))
        return queryset


class OperatorWeightInline(admin.TabularInline):
    model = OperatorSourceWeight
    fk_name = "operator"
    fields = ("source", "weight")
    autocomplete_fields = ("source",)
    extra = 1
    verbose_name = "source"
    verbose_name_plural = "Sources and weights"

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).select_related("source")


@admin.register(Operator)
class OperatorAdmin(admin.ModelAdmin):
    list_display = ("name", "is_active", "load", "sources_and_weights")
    list_display_links = ("name",)
    list_filter = ("is_active", AtLimitFilter, ("weights__source", admin.RelatedFieldListFilter))
    search_fields = ("name",)
    readonly_fields = ("load", "created_at")
    fields = ("name", "is_active", "max_open_contacts", "load", "created_at")
    list_select_related = False  # an operator has no foreign keys; weights are prefetched
    inlines = [OperatorWeightInline]
    actions = ["activate", "deactivate"]
    list_per_page = 50

    class Media:
        css = ADMIN_CSS

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        weights = OperatorSourceWeight.objects.select_related("source").order_by("source__code")
        return (
            super()
            .get_queryset(request)
            .annotate(load=operator_load())
            .prefetch_related(Prefetch("weights", queryset=weights))
        )

    @admin.display(description="Open / limit", ordering="load")
    def load(self, operator: Operator) -> SafeString:
        if operator.pk is None:
            return format_html("{}", "—")
        return load_bar(operator.load, operator.max_open_contacts)

    @admin.display(description="Sources (weight)")
    def sources_and_weights(self, operator: Operator) -> SafeString:
        weights = list(operator.weights.all())
        shown = format_html_join(
            " ",
            '<span class="weight-chip">{} <b>&times;{}</b></span>',
            ((weight.source.code, weight.weight) for weight in weights[:SOURCES_SHOWN]),
        )
        if len(weights) > SOURCES_SHOWN:
            return format_html("{} and {} more", shown, len(weights) - SOURCES_SHOWN)
        return shown or format_html('<span class="quiet">{}</span>', "no source")

    def save_model(
        self, request: HttpRequest, obj: Operator, form: ModelForm, change: bool
    ) -> None:
        fields = {
            "name": obj.name,
            "is_active": obj.is_active,
            "max_open_contacts": obj.max_open_contacts,
        }
        if change:
            update_operator(operator=obj, **fields)
        else:
            created = create_operator(**fields)
            obj.pk, obj.created_at = created.pk, created.created_at

    def save_formset(
        self, request: HttpRequest, form: ModelForm, formset: BaseInlineFormSet, change: bool
    ) -> None:
        if formset.model is not OperatorSourceWeight:
            super().save_formset(request, form, formset, change)
            return
        weights = submitted_weights(formset, "source")
        set_operator_weights(operator=formset.instance, weights=weights)

    def get_actions(self, request: HttpRequest) -> dict:
        # An operator with open contacts cannot go; delete_view says why, one at a time.
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def delete_model(self, request: HttpRequest, obj: Operator) -> None:
        delete_operator(operator=obj)

    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: dict | None = None
    ) -> HttpResponse:
        try:
            return super().delete_view(request, object_id, extra_context)
        except Conflict as refusal:
            self.message_user(request, str(refusal), messages.ERROR)
            return HttpResponseRedirect(
                reverse("admin:distribution_operator_change", args=[object_id])
            )

    @admin.action(description="Activate selected operators", permissions=["change"])
    def activate(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._set_active(request, queryset.filter(is_active=False), active=True)

    @admin.action(description="Deactivate selected operators", permissions=["change"])
    def deactivate(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._set_active(request, queryset.filter(is_active=True), active=False)

    def _set_active(self, request: HttpRequest, queryset: QuerySet, *, active: bool) -> None:
        operators = list(queryset.order_by("id"))
        ids = [operator.pk for operator in operators]
        open_before = _open_count(ids)
        for operator in operators:
            update_operator(operator=operator, is_active=active)
        verb = "activated" if active else "deactivated"
        message = f"{len(operators)} operator(s) {verb}."
        if taken := _open_count(ids) - open_before:
            message += f" {taken} waiting contact(s) were assigned to them."
        self.message_user(request, message, messages.SUCCESS)


def _open_count(operator_ids: Sequence[int]) -> int:
    return Contact.objects.filter(operator_id__in=operator_ids, status=Contact.Status.OPEN).count()


class SourceWeightInline(admin.TabularInline):
    model = OperatorSourceWeight
    fk_name = "source"
    fields = ("operator", "weight", "operator_load", "target_share")
    readonly_fields = ("operator_load", "target_share")
    autocomplete_fields = ("operator",)
    extra = 1
    verbose_name = "operator"
    verbose_name_plural = "Operators and weights"

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        active_weight = (
            OperatorSourceWeight.objects.filter(
                source_id=OuterRef("source_id"), operator__is_active=True
            )
            .order_by()
            .values("source_id")
            .annotate(total=Sum("weight"))
            .values("total")
        )
        return (
            super()
            .get_queryset(request)
            .select_related("operator")
            .annotate(
                load=operator_load("operator_id"),
                active_weight=Coalesce(Subquery(active_weight), 0),
            )
        )

    @admin.display(description="Open / limit")
    def operator_load(self, weight: OperatorSourceWeight) -> SafeString:
        if weight.pk is None:
            return format_html("{}", "—")
        return load_bar(weight.load, weight.operator.max_open_contacts)

    @admin.display(description="Target share")
    def target_share(self, weight: OperatorSourceWeight) -> SafeString:
        """weight / sum of the active operators' weights here, as in the report."""
        if weight.pk is None:
            return format_html("{}", "—")
        if not weight.operator.is_active:
            return format_html('<span class="quiet">{}</span>', "0% (inactive)")
        return format_html("{}%", f"{100 * weight.weight / weight.active_weight:.1f}")


@admin.register(Source)
class SourceAdmin(admin.ModelAdmin):
    list_display = ("code", "name", "strategy", "is_active", "operators", "waiting", "health")
    list_filter = ("is_active", "strategy")
    search_fields = ("code", "name")
    readonly_fields = ("created_at",)
    fields = ("code", "name", "strategy", "is_active", "created_at")
    list_select_related = False  # a source has no foreign keys; weights are prefetched
    inlines = [SourceWeightInline]
    list_per_page = 50
    change_form_template = "admin/distribution/source/change_form.html"

    class Media:
        css = ADMIN_CSS

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        waiting = (
            Contact.objects.filter(source_id=OuterRef("pk"), status=Contact.Status.WAITING)
            .order_by()
            .values("source_id")
            .annotate(count=Count("pk"))
            .values("count")
        )
        weights = (
            OperatorSourceWeight.objects.select_related("operator")
            .annotate(load=operator_load("operator_id"))
            .order_by("operator_id")
        )
        return (
            super()
            .get_queryset(request)
            .annotate(waiting_count=Coalesce(Subquery(waiting), 0))
            .prefetch_related(Prefetch("weights", queryset=weights))
        )

    @admin.display(description="Operators (weight)")
    def operators(self, source: Source) -> SafeString:
        return format_html_join(
            " ",
            '<span class="weight-chip{}">{} <b>&times;{}</b></span>',
            (
                ("" if weight.operator.is_active else " inactive", weight.operator, weight.weight)
                for weight in source.weights.all()
            ),
        )

    @admin.display(description="Waiting", ordering="waiting_count")
    def waiting(self, source: Source) -> int:
        return source.waiting_count

    @admin.display(description="Warnings")
    def health(self, source: Source) -> SafeString:
        warnings = source_warnings(
            is_active=source.is_active, operators=staffing(source.weights.all())
        )
        return format_html_join(
            "", '<span class="warning-text">{}</span>', ((w,) for w in warnings)
        )

    def save_model(self, request: HttpRequest, obj: Source, form: ModelForm, change: bool) -> None:
        fields = {
            "code": obj.code,
            "name": obj.name,
            "is_active": obj.is_active,
            "strategy": obj.strategy,
        }
        if change:
            update_source(source=obj, **fields)
        else:
            created = create_source(**fields)
            obj.pk, obj.created_at = created.pk, created.created_at

    def save_formset(
        self, request: HttpRequest, form: ModelForm, formset: BaseInlineFormSet, change: bool
    ) -> None:
        if formset.model is not OperatorSourceWeight:
            super().save_formset(request, form, formset, change)
            return
        weights = submitted_weights(formset, "operator")
        set_source_weights(source=formset.instance, weights=weights)

    def get_actions(self, request: HttpRequest) -> dict:
        # Only a source without contacts may go (see has_delete_permission), one at a time.
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def has_delete_permission(self, request: HttpRequest, obj: Source | None = None) -> bool:
        # Contacts protect their source: rather than list a million of them on the
        # confirmation page, offer no delete at all (deactivate the source instead).
        if obj is not None and obj.contacts.exists():
            return False
        return super().has_delete_permission(request, obj)

    def delete_model(self, request: HttpRequest, obj: Source) -> None:
        delete_source(source=obj)

    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: dict | None = None
    ) -> HttpResponse:
        try:
            return super().delete_view(request, object_id, extra_context)
        except Conflict as refusal:
            self.message_user(request, str(refusal), messages.ERROR)
            return HttpResponseRedirect(
                reverse("admin:distribution_source_change", args=[object_id])
            )

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict | None = None,
    ) -> HttpResponse:
        """The change form, with the source's warnings and a preview of its next contacts."""
        source = self.get_object(request, object_id)
        context = dict(extra_context or {})
        if source is not None:
            context["source_warnings"] = source_warnings(
                is_active=source.is_active, operators=staffing(weights_with_load(source))
            )
            context["preview"] = preview_next_contacts(source=source)
        return super().change_view(request, object_id, form_url, context)

    def get_urls(self) -> list[URLPattern]:
        report = path(
            "distribution/",
            self.admin_site.admin_view(self.distribution_view),
            name="distribution_report",
        )
        # Before the default patterns, whose catch-all would take "distribution/".
        return [report, *super().get_urls()]

    def distribution_view(self, request: HttpRequest) -> TemplateResponse:
        """Per source: target against actual shares over a period, load and waiting."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        form = ReportPeriodForm(request.GET or None)
        since, until = form.bounds(now=timezone.now())
        report = distribution_report(since=since, until=until)
        context = {
            **self.admin_site.each_context(request),
            "title": "Distribution",
            "opts": self.model._meta,
            "form": form,
            "period": form.label(),
            "presets": PRESET_DAYS.items(),
            "cards": [source_card(source) for source in report],
            "summary": report_summary(report),
        }
        return TemplateResponse(request, "admin/distribution/report.html", context)


@dataclass
class ShareRow:
    """One operator on the distribution page; widths are % of the source's bar track."""

    share: OperatorShare
    target_width: float
    actual_width: float
    target_text: str
    actual_text: str
    gap_text: str  # actual minus target, in percentage points
    gap_off: bool  # more than GAP_ALERT points away from the target
    load: SafeString
    note: str


@dataclass
class SourceCard:
    report: SourceReport
    rows: list[ShareRow]
    scale: int  # the share, in %, that a full bar stands for
    warnings: list[str]


def source_card(report: SourceReport) -> SourceCard:
    """Bars for one source, scaled so its largest share fills the track (rounded up to 10%)."""
    shares = [row.target_share for row in report.operators]
    shares += [row.actual_share or 0.0 for row in report.operators]
    scale = max(10, math.ceil(max(shares, default=0.0) * 10) * 10)
    return SourceCard(
        report=report,
        rows=[_share_row(row, scale) for row in report.operators],
        scale=scale,
        warnings=_card_warnings(report),
    )


def _share_row(row: OperatorShare, scale: int) -> ShareRow:
    actual = row.actual_share
    gap = None if actual is None else 100 * (actual - row.target_share)
    return ShareRow(
        share=row,
        target_width=round(100 * 100 * row.target_share / scale, 1),
        actual_width=round(100 * 100 * (actual or 0.0) / scale, 1),
        target_text=f"{100 * row.target_share:.1f}%",
        actual_text="—" if actual is None else f"{100 * actual:.1f}%",
        # Rounded before formatting, so a tiny negative gap shows as +0.0, not -0.0.
        gap_text="—" if gap is None else f"{round(gap, 1) + 0.0:+.1f}",
        gap_off=gap is not None and abs(gap) > GAP_ALERT,
        load=load_bar(row.open_contacts, row.max_open_contacts),
        note=_share_note(row),
    )


def _share_note(row: OperatorShare) -> str:
    if not row.weight:
        return "no longer on this source"
    if not row.is_active:
        return "inactive"
    if row.open_contacts >= row.max_open_contacts:
        return "at the limit"
    return ""


def _card_warnings(report: SourceReport) -> list[str]:
    operators = [
        Staffing(is_active=row.is_active, load=row.open_contacts, limit=row.max_open_contacts)
        for row in report.operators
        if row.weight  # still configured on the source, not only in its history
    ]
    return source_warnings(is_active=report.is_active, operators=operators)


def report_summary(report: Sequence[SourceReport]) -> dict[str, int]:
    """The headline numbers above the cards."""
    operators = {row.operator_id: row for source in report for row in source.operators}
    return {
        "assigned": sum(source.assigned for source in report),
        "waiting": sum(source.waiting for source in report),
        "open": sum(row.open_contacts for row in operators.values()),
        "at_limit": sum(
            1
            for row in operators.values()
            if row.is_active and row.open_contacts >= row.max_open_contacts
        ),
        "operators": len(operators),
    }


from distribution import admin_keys  # noqa: F401,E402
