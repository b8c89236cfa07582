"""The admin for bots' API keys: a key is shown once, when it is created, and can be revoked."""

from datetime import datetime

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.forms import ModelForm
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from distribution.admin.common import EmptyListMixin
from distribution.models import SourceApiKey
from distribution.sources import create_source_key, revoke_source_key


class LiveFilter(admin.SimpleListFilter):
    title = gettext_lazy("live or revoked")
    parameter_name = "live"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list:
        return [("yes", gettext_lazy("Live")), ("no", gettext_lazy("Revoked"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() in ("yes", "no"):
            return queryset.filter(revoked_at__isnull=self.value() == "yes")
        return queryset


@admin.register(SourceApiKey)
class SourceApiKeyAdmin(EmptyListMixin, admin.ModelAdmin):
    list_display = ("prefix", "source", "name", "created_at", "last_used", "is_live")
    list_filter = (LiveFilter, "source")
    search_fields = ("prefix", "name", "source__code")
    autocomplete_fields = ("source",)
    readonly_fields = ("prefix", "created_at", "last_used_at", "revoked_at")
    list_select_related = ("source",)
    actions = ("revoke",)
    empty_list_text = gettext_lazy(
        "No API keys yet. Add one for a source and give it to the source's bot: the bot "
        "sends contacts with it. The key is shown once, when it is made."
    )

    def get_fields(self, request: HttpRequest, obj: SourceApiKey | None = None) -> tuple:
        if obj is None:
            return ("source", "name")
        return ("source", "name", "prefix", "created_at", "last_used_at", "revoked_at")

    def get_readonly_fields(self, request: HttpRequest, obj: SourceApiKey | None = None) -> tuple:
        # A key stays with the source it was made for; only its label can change.
        return self.readonly_fields if obj is None else ("source", *self.readonly_fields)

    def save_model(
        self, request: HttpRequest, obj: SourceApiKey, form: ModelForm, change: bool
    ) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        api_key, key = create_source_key(source=obj.source, name=obj.name)
        # The admin goes on with `obj` (its messages, the redirect): make it the stored key.
        obj.pk = api_key.pk
        obj.refresh_from_db()
        self.message_user(
            request,
            format_html(
                _(
                    "API key for {source}: <code>{key}</code>. Copy it now: only its hash is "
                    "stored, it cannot be shown again."
                ),
                source=obj.source,
                key=key,
            ),
            messages.WARNING,
        )

    @admin.display(
        description=gettext_lazy("last used"),
        ordering="last_used_at",
        empty_value=gettext_lazy("never"),
    )
    def last_used(self, obj: SourceApiKey) -> datetime | None:
        return obj.last_used_at

    @admin.display(description=gettext_lazy("live"), boolean=True)
    def is_live(self, obj: SourceApiKey) -> bool:
        return not obj.is_revoked

    @admin.action(description=gettext_lazy("Revoke the selected keys (they stop working at once)"))
    def revoke(self, request: HttpRequest, queryset: QuerySet[SourceApiKey]) -> None:
        live = list(queryset.filter(revoked_at__isnull=True))
        for api_key in live:
            revoke_source_key(api_key=api_key)
        message = ngettext("%(count)d key(s) revoked.", "%(count)d key(s) revoked.", len(live))
        self.message_user(request, message % {"count": len(live)}, messages.SUCCESS)
