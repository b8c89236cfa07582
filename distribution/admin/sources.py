"""The admin for sources: operators and weights inline, warnings, a preview of the next
contacts, and the distribution page."""

from django.contrib import admin
from django.db.models import Count, OuterRef, Prefetch, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce
from django.forms import BaseInlineFormSet, ModelForm
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.utils import formats, timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from distribution.admin import distribution_page
from distribution.admin.common import (
    ADMIN_CSS,
    DeleteThroughServiceMixin,
    EmptyListMixin,
    load_bar,
    percent,
    submitted_weights,
)
from distribution.eligibility import state_of
from distribution.models import Contact, OperatorSourceWeight, OverflowWeight, Source
from distribution.preview import preview_next_contacts, source_operators, source_warnings
from distribution.sources import (
    SETTINGS,
    create_source,
    delete_source,
    set_source_overflow,
    set_source_weights,
    update_source,
)


class SourceWeightInline(admin.TabularInline):
    model = OperatorSourceWeight
    fk_name = "source"
    fields = ("operator", "weight", "operator_load", "target_share", "on_source_since")
    readonly_fields = ("operator_load", "target_share", "on_source_since")
    autocomplete_fields = ("operator",)
    extra = 1
    verbose_name = gettext_lazy("operator")
    verbose_name_plural = gettext_lazy("Operators and weights")

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
            .with_load()
            .annotate(active_weight=Coalesce(Subquery(active_weight), 0))
        )

    @admin.display(description=gettext_lazy("Open / limit"))
    def operator_load(self, weight: OperatorSourceWeight) -> SafeString:
        if weight.pk is None:
            return format_html("{}", "—")
        return load_bar(state_of(weight.operator, load=weight.load))

    @admin.display(description=gettext_lazy("Target share"))
    def target_share(self, weight: OperatorSourceWeight) -> SafeString | str:
        """weight / sum of the active operators' weights here, as in the report."""
        if weight.pk is None:
            return format_html("{}", "—")
        if not weight.operator.is_active:
            return format_html(
                '<span class="quiet">{}</span>', _("%(share)s (inactive)") % {"share": "0%"}
            )
        return percent(weight.weight / weight.active_weight)

    @admin.display(description=gettext_lazy("On the source since"))
    def on_source_since(self, weight: OperatorSourceWeight) -> str:
        """When the operator joined the source (a weight change keeps it): the
        distribution page measures its share from then on."""
        if weight.pk is None:
            return "—"
        return formats.date_format(timezone.localtime(weight.since), "DATETIME_FORMAT")


class OverflowWeightInline(admin.TabularInline):
    model = OverflowWeight
    fk_name = "source"
    fields = ("operator", "weight")
    autocomplete_fields = ("operator",)
    extra = 0
    verbose_name = gettext_lazy("overflow operator")
    verbose_name_plural = gettext_lazy(
        "Overflow operators: who may also take contacts that waited past the overflow time"
    )


@admin.register(Source)
class SourceAdmin(DeleteThroughServiceMixin, EmptyListMixin, admin.ModelAdmin):
    list_display = ("code", "name", "strategy", "is_active", "operators", "waiting", "health")
    list_filter = ("is_active", "strategy")
    search_fields = ("code", "name")
    readonly_fields = ("created_at",)
    fieldsets = (
        (None, {"fields": ("code", "name", "strategy", "is_active", "priority", "load_units")}),
        (gettext_lazy("Offers"), {"fields": ("accept_timeout_seconds", "max_offers")}),
        (
            gettext_lazy("A returning lead's own operator"),
            {"fields": ("sticky", "sticky_days", "sticky_wait_seconds")},
        ),
        (gettext_lazy("Overflow"), {"fields": ("overflow_after_seconds",)}),
        (None, {"fields": ("created_at",)}),
    )
    list_select_related = False  # a source has no foreign keys; weights are prefetched
    inlines = [SourceWeightInline, OverflowWeightInline]
    list_per_page = 50
    change_form_template = "admin/distribution/source/change_form.html"
    empty_list_text = gettext_lazy(
        "No sources yet. Add one for each bot, put operators on it with their weights, then "
        "give the bot an API key of the source: the bot sends contacts with that key."
    )

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
            .with_load()
            .order_by("operator_id")
        )
        return (
            super()
            .get_queryset(request)
            .annotate(waiting_count=Coalesce(Subquery(waiting), 0))
            .prefetch_related(Prefetch("weights", queryset=weights))
        )

    @admin.display(description=gettext_lazy("Operators (weight)"))
    def operators(self, source: Source) -> SafeString:
        return format_html_join(
            " ",
            '<span class="weight-chip{}">{} <b>&times;{}</b></span>',
            (
                ("" if weight.operator.is_active else " inactive", weight.operator, weight.weight)
                for weight in source.weights.all()
            ),
        )

    @admin.display(description=gettext_lazy("Waiting"), ordering="waiting_count")
    def waiting(self, source: Source) -> int:
        return source.waiting_count

    @admin.display(description=gettext_lazy("Warnings"))
    def health(self, source: Source) -> SafeString:
        operators = [
            state_of(weight.operator, load=weight.load, weight=weight.weight)
            for weight in source.weights.all()
        ]
        warnings = source_warnings(
            is_active=source.is_active, operators=operators, units=source.load_units
        )
        return format_html_join(
            "", '<span class="warning-text">{}</span>', ((w,) for w in warnings)
        )

    def save_model(self, request: HttpRequest, obj: Source, form: ModelForm, change: bool) -> None:
        fields = {name: getattr(obj, name) for name in SETTINGS}
        if change:
            update_source(source=obj, **fields)
        else:
            created = create_source(**fields)
            obj.pk, obj.created_at = created.pk, created.created_at

    def save_formset(
        self, request: HttpRequest, form: ModelForm, formset: BaseInlineFormSet, change: bool
    ) -> None:
        weights = submitted_weights(formset, "operator")
        if formset.model is OverflowWeight:
            set_source_overflow(source=formset.instance, weights=weights)
        else:
            set_source_weights(source=formset.instance, weights=weights)

    def has_delete_permission(self, request: HttpRequest, obj: Source | None = None) -> bool:
        # Contacts protect their source: rather than list a million of them on the
        # confirmation page, offer no delete at all (deactivate the source instead).
        if obj is not None and obj.contacts.exists():
            return False
        return super().has_delete_permission(request, obj)

    def delete_model(self, request: HttpRequest, obj: Source) -> None:
        delete_source(source=obj)

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
                is_active=source.is_active,
                operators=source_operators(source),
                units=source.load_units,
            )
            context["preview"] = preview_next_contacts(source=source)
            context["preview_strategy"] = source.get_strategy_display()
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
        return distribution_page.distribution_view(self, request)
