"""The admin for operators: load, sources and weights, activation."""

from collections.abc import Sequence
from urllib.parse import urlencode

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import Prefetch, QuerySet
from django.forms import BaseInlineFormSet, ModelForm
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from distribution.admin.common import (
    ADMIN_CSS,
    DeleteThroughServiceMixin,
    EmptyListMixin,
    kept,
    load_bar,
    submitted_weights,
)
from distribution.eligibility import state_of
from distribution.logins import ensure_operator_login, set_password_path
from distribution.models import Contact, DayOff, Operator, OperatorSourceWeight, Shift
from distribution.operators import (
    create_operator,
    delete_operator,
    set_operator_days_off,
    set_operator_shifts,
    set_operator_weights,
    update_operator,
)
from distribution.shifts import ShiftInterval, overlaps

# How many of an operator's sources the list shows before "and N more".
SOURCES_SHOWN = 4


class AtLimitFilter(admin.SimpleListFilter):
    title = gettext_lazy("load")
    parameter_name = "load"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list:
        return [("full", gettext_lazy("At the limit")), ("room", gettext_lazy("Has room"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        # `load` is annotated by OperatorAdmin.get_queryset.
        if self.value() in ("full", "room"):
            return queryset.at_limit(self.value() == "full")
        return queryset


class ShiftFormSet(BaseInlineFormSet):
    def clean(self) -> None:
        """Refuse shifts that share a minute of the week, before anything is saved."""
        super().clean()
        shifts = [
            ShiftInterval(
                form.cleaned_data["weekday"], form.cleaned_data["start"], form.cleaned_data["end"]
            )
            for form in self.forms
            if form.cleaned_data and form not in self.deleted_forms
        ]
        if pairs := overlaps(shifts):
            first, second = pairs[0]
            raise ValidationError(
                _("Shifts %(first)d and %(second)d overlap.")
                % {"first": first + 1, "second": second + 1}
            )


class ShiftInline(admin.TabularInline):
    model = Shift
    formset = ShiftFormSet
    fields = ("weekday", "start", "end")
    extra = 0
    verbose_name = gettext_lazy("shift")
    verbose_name_plural = gettext_lazy(
        "Shifts, in the operator's time zone (with none, the operator is always on shift)"
    )


class DayOffInline(admin.TabularInline):
    model = DayOff
    fields = ("first_day", "last_day", "note")
    extra = 0


class OperatorWeightInline(admin.TabularInline):
    model = OperatorSourceWeight
    fk_name = "operator"
    fields = ("source", "weight")
    autocomplete_fields = ("source",)
    extra = 1
    verbose_name = gettext_lazy("source")
    verbose_name_plural = gettext_lazy("Sources and weights")

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).select_related("source")


@admin.register(Operator)
class OperatorAdmin(DeleteThroughServiceMixin, EmptyListMixin, admin.ModelAdmin):
    list_display = ("name", "is_active", "status", "load", "sources_and_weights", "desk_login")
    list_display_links = ("name",)
    list_filter = (
        "is_active",
        "status",
        AtLimitFilter,
        ("weights__source", admin.RelatedFieldListFilter),
    )
    search_fields = ("name",)
    readonly_fields = ("load", "status_changed_at", "created_at")
    fields = (
        "name",
        "is_active",
        "status",
        "status_changed_at",
        "max_open_contacts",
        "load",
        "burst_limit",
        "burst_window_minutes",
        "time_zone",
        "user",
        "created_at",
    )
    autocomplete_fields = ("user",)
    list_select_related = ("user",)
    inlines = [OperatorWeightInline, ShiftInline, DayOffInline]
    actions = ["activate", "deactivate", "give_desk_login"]
    list_per_page = 50
    empty_list_text = gettext_lazy(
        "No operators yet. Add one, put it on sources with a weight each, then give it a "
        "desk login (an action on this list) so it can take contacts."
    )

    class Media:
        css = ADMIN_CSS

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        weights = OperatorSourceWeight.objects.select_related("source").order_by("source__code")
        return (
            super()
            .get_queryset(request)
            .with_load()
            .prefetch_related(Prefetch("weights", queryset=weights))
        )

    @admin.display(description=gettext_lazy("Open / limit"), ordering="load")
    def load(self, operator: Operator) -> SafeString:
        if operator.pk is None:
            return format_html("{}", "—")
        return load_bar(state_of(operator))

    @admin.display(description=gettext_lazy("Sources (weight)"))
    def sources_and_weights(self, operator: Operator) -> SafeString:
        weights = list(operator.weights.all())
        shown = format_html_join(
            " ",
            '<span class="weight-chip">{} <b>&times;{}</b></span>',
            ((weight.source.code, weight.weight) for weight in weights[:SOURCES_SHOWN]),
        )
        if len(weights) > SOURCES_SHOWN:
            more = len(weights) - SOURCES_SHOWN
            return format_html(
                ngettext("{sources} and {count} more", "{sources} and {count} more", more),
                sources=shown,
                count=more,
            )
        return shown or format_html('<span class="quiet">{}</span>', _("no source"))

    @admin.display(description=gettext_lazy("Desk login"), ordering="user__username")
    def desk_login(self, operator: Operator) -> str:
        return operator.user.get_username() if operator.user else "—"

    def save_model(
        self, request: HttpRequest, obj: Operator, form: ModelForm, change: bool
    ) -> None:
        names = (
            "name",
            "is_active",
            "max_open_contacts",
            "status",
            "time_zone",
            "user",
            "burst_limit",
            "burst_window_minutes",
        )
        fields = {name: getattr(obj, name) for name in names}
        if change:
            open_before = _open_count([obj.pk])
            update_operator(operator=obj, **fields)
            # A raised limit, or the operator made available, takes waiting contacts.
            if taken := _open_count([obj.pk]) - open_before:
                message = ngettext(
                    "%(count)d waiting contact(s) were assigned to %(name)s.",
                    "%(count)d waiting contact(s) were assigned to %(name)s.",
                    taken,
                ) % {"count": taken, "name": obj.name}
                self.message_user(request, message, messages.SUCCESS)
        else:
            created = create_operator(**fields)
            obj.pk, obj.created_at = created.pk, created.created_at

    def save_formset(
        self, request: HttpRequest, form: ModelForm, formset: BaseInlineFormSet, change: bool
    ) -> None:
        operator = formset.instance
        if formset.model is OperatorSourceWeight:
            set_operator_weights(operator=operator, weights=submitted_weights(formset, "source"))
        elif formset.model is Shift:
            shifts = [ShiftInterval(row.weekday, row.start, row.end) for row in kept(formset)]
            set_operator_shifts(operator=operator, shifts=shifts)
        else:
            set_operator_days_off(operator=operator, days_off=kept(formset))

    def delete_model(self, request: HttpRequest, obj: Operator) -> None:
        delete_operator(operator=obj)

    @admin.action(description=gettext_lazy("Activate selected operators"), permissions=["change"])
    def activate(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._set_active(request, queryset.filter(is_active=False), active=True)

    @admin.action(description=gettext_lazy("Deactivate selected operators"), permissions=["change"])
    def deactivate(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._set_active(request, queryset.filter(is_active=True), active=False)

    @admin.action(
        description=gettext_lazy(
            "Give selected operators a desk login (one-time set-password links)"
        ),
        permissions=["change"],
    )
    def give_desk_login(self, request: HttpRequest, queryset: QuerySet) -> None:
        """A login for each operator without one, and for every operator a fresh link
        to set the password, to send to the operator (staff never see the password)."""
        for operator in queryset.order_by("id"):
            user = ensure_operator_login(operator=operator)
            link = request.build_absolute_uri(set_password_path(user))
            self.message_user(
                request,
                format_html(
                    _(
                        "{name} signs in to the desk as <b>{username}</b>. Send this link "
                        '(it works once) to set the password: <a href="{link}">{link}</a>'
                    ),
                    name=operator.name,
                    username=user.get_username(),
                    link=link,
                ),
                messages.SUCCESS,
            )

    def _set_active(self, request: HttpRequest, queryset: QuerySet, *, active: bool) -> None:
        operators = list(queryset.order_by("id"))
        ids = [operator.pk for operator in operators]
        open_before = _open_count(ids)
        for operator in operators:
            update_operator(operator=operator, is_active=active)
        count = len(operators)
        if active:
            done = ngettext(
                "%(count)d operator(s) activated.", "%(count)d operator(s) activated.", count
            )
        else:
            done = ngettext(
                "%(count)d operator(s) deactivated.", "%(count)d operator(s) deactivated.", count
            )
        sentences = [format_html("{}", done % {"count": count})]
        if taken := _open_count(ids) - open_before:
            taken_text = ngettext(
                "%(count)d waiting contact(s) were assigned to them.",
                "%(count)d waiting contact(s) were assigned to them.",
                taken,
            )
            sentences.append(format_html("{}", taken_text % {"count": taken}))
        if not active and (kept := _open_count(ids)):
            # Their open contacts stay with them: say so, and lead to the bulk reassign.
            contacts = reverse("admin:distribution_contact_changelist")
            query = urlencode(
                {"operator__id__in": ",".join(map(str, ids)), "status__exact": "open"}
            )
            sentences.append(
                format_html(
                    ngettext(
                        'They keep {count} open contact(s): <a href="{url}">reassign them</a> '
                        "(select them, then the action Reassign).",
                        'They keep {count} open contact(s): <a href="{url}">reassign them</a> '
                        "(select them, then the action Reassign).",
                        kept,
                    ),
                    count=kept,
                    url=f"{contacts}?{query}",
                )
            )
        message = format_html_join(" ", "{}", ((sentence,) for sentence in sentences))
        self.message_user(request, message, messages.SUCCESS)


def _open_count(operator_ids: Sequence[int]) -> int:
    return Contact.objects.filter(operator_id__in=operator_ids, status=Contact.Status.OPEN).count()
