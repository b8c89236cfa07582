"""The admin for webhooks: endpoints (the secret shown once, when one is created), and
their deliveries with every attempt, which staff can send again."""

from django import forms
from django.contrib import admin, messages
from django.db.models import Count, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.forms import ModelForm
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from distribution import events
from distribution.admin.common import EmptyListMixin
from distribution.models import Source
from events import webhooks
from events.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint

FIELDS = ("url", "description", "sources", "event_types", "is_active")


def source_choices() -> list[tuple[str, str]]:
    return [(code, code) for code in Source.objects.order_by("code").values_list("code", flat=True)]


class WebhookEndpointForm(forms.ModelForm):
    url = forms.URLField(max_length=500, assume_scheme="https", label=gettext_lazy("URL"))
    sources = forms.MultipleChoiceField(
        label=gettext_lazy("Sources"),
        choices=source_choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=gettext_lazy(
            "Leave all unticked to get every source's events (and those of no source)."
        ),
    )
    event_types = forms.MultipleChoiceField(
        label=gettext_lazy("Event types"),
        choices=[(event_type, event_type) for event_type in events.TYPES],
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=gettext_lazy("Leave all unticked to get every type."),
    )

    class Meta:
        model = WebhookEndpoint
        fields = FIELDS


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(EmptyListMixin, admin.ModelAdmin):
    form = WebhookEndpointForm
    list_display = ("url", "description", "is_active", "filters", "pending", "failures")
    list_filter = ("is_active",)
    search_fields = ("url", "description")
    readonly_fields = ("created_at", "failures", "next_attempt_at", "deliveries_link")
    empty_list_text = gettext_lazy(
        "No webhooks yet. Add one to have events (a contact assigned, closed and so on) "
        "posted to your system's address as they happen."
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[WebhookEndpoint]:
        # A subquery on the pending deliveries' index, not a join over every delivery made.
        pending = (
            WebhookDelivery.objects.filter(
                endpoint=OuterRef("pk"), status=WebhookDelivery.Status.PENDING
            )
            .values("endpoint")
            .annotate(count=Count("pk"))
            .values("count")
        )
        return super().get_queryset(request).annotate(pending_count=Coalesce(Subquery(pending), 0))

    def get_fields(self, request: HttpRequest, obj: WebhookEndpoint | None = None) -> tuple:
        return FIELDS if obj is None else (*FIELDS, *self.readonly_fields)

    def save_model(
        self, request: HttpRequest, obj: WebhookEndpoint, form: ModelForm, change: bool
    ) -> None:
        data = {field: form.cleaned_data[field] for field in FIELDS}
        if change:
            webhooks.update_endpoint(endpoint=obj, **data)
            return
        endpoint = webhooks.create_endpoint(**data)
        # The admin goes on with `obj` (its messages, the redirect): make it the stored one.
        obj.pk = endpoint.pk
        obj.refresh_from_db()
        self.message_user(
            request,
            format_html(
                _(
                    "Signing secret for {url}: <code>{secret}</code>. Copy it to the receiver "
                    "now: it is not shown again."
                ),
                url=endpoint.url,
                secret=endpoint.secret,
            ),
            messages.WARNING,
        )

    @admin.display(description=gettext_lazy("gets"))
    def filters(self, obj: WebhookEndpoint) -> str:
        sources = ", ".join(obj.sources) or _("every source")
        types = ", ".join(obj.event_types) or _("every type")
        return _("%(types)s; %(sources)s") % {"types": types, "sources": sources}

    @admin.display(description=gettext_lazy("pending"), ordering="pending_count")
    def pending(self, obj: WebhookEndpoint) -> int:
        return obj.pending_count

    @admin.display(description=gettext_lazy("deliveries"))
    def deliveries_link(self, obj: WebhookEndpoint) -> SafeString:
        url = reverse("admin:events_webhookdelivery_changelist")
        return format_html(
            '<a href="{}?endpoint__id__exact={}">{}</a>', url, obj.pk, _("Its deliveries")
        )


class WebhookAttemptInline(admin.TabularInline):
    model = WebhookAttempt
    fields = ("at", "status_code", "duration_ms", "error")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: WebhookDelivery | None = None) -> bool:
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(EmptyListMixin, admin.ModelAdmin):
    list_display = ("id", "endpoint", "event_type", "event_id", "status", "attempts", "created_at")
    list_filter = ("status", "endpoint")
    search_fields = ("endpoint__url", "event__type")
    list_select_related = ("endpoint", "event")
    raw_id_fields = ("endpoint", "event")
    readonly_fields = (
        "endpoint",
        "event",
        "webhook_id",
        "status",
        "attempts",
        "created_at",
        "delivered_at",
    )
    fields = readonly_fields
    inlines = (WebhookAttemptInline,)
    actions = ("send_again",)
    empty_list_text = gettext_lazy(
        "No deliveries yet. One is made for each event an active webhook asks for."
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description=gettext_lazy("event"), ordering="event__type")
    def event_type(self, obj: WebhookDelivery) -> str:
        return obj.event.type

    @admin.action(description=gettext_lazy("Send again (now, with the same webhook-id)"))
    def send_again(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> None:
        deliveries = list(queryset)
        for delivery in deliveries:
            webhooks.send_again(delivery=delivery, now=timezone.now())
        count = len(deliveries)
        message = ngettext(
            "%(count)d delivery(ies) will be sent again.",
            "%(count)d delivery(ies) will be sent again.",
            count,
        ) % {"count": count}
        self.message_user(request, message, messages.SUCCESS)
