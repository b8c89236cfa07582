"""The admin for bots' API keys: a key is shown once, when it is created, and can be revoked."""

from datetime import datetime

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.forms import ModelForm
from django.http import HttpRequest
from django.utils.html import format_html

from distribution.models import SourceApiKey
from distribution.sources import create_source_key, revoke_source_key


@admin.register(SourceApiKey)
class SourceApiKeyAdmin(admin.ModelAdmin):
    list_display = ("prefix", "source", "name", "created_at", "last_used", "is_live")
    list_filter = (("revoked_at", admin.EmptyFieldListFilter), "source")
    search_fields = ("prefix", "name", "source__code")
    autocomplete_fields = ("source",)
    readonly_fields = ("prefix", "created_at", "last_used_at", "revoked_at")
    list_select_related = ("source",)
    actions = ("revoke",)

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
                "API key for {}: <code>{}</code>. Copy it now: only its hash is stored, "
                "it cannot be shown again.",
                obj.source,
                key,
            ),
            messages.WARNING,
        )

    @admin.display(description="last used", ordering="last_used_at", empty_value="never")
    def last_used(self, obj: SourceApiKey) -> datetime | None:
        return obj.last_used_at

    @admin.display(description="live", boolean=True)
    def is_live(self, obj: SourceApiKey) -> bool:
        return not obj.is_revoked

    @admin.action(description="Revoke the selected keys (they stop working at once)")
    def revoke(self, request: HttpRequest, queryset: QuerySet[SourceApiKey]) -> None:
        live = list(queryset.filter(revoked_at__isnull=True))
        for api_key in live:
            revoke_source_key(api_key=api_key)
        self.message_user(request, f"{len(live)} key(s) revoked.", messages.SUCCESS)
