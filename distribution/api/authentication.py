"""Bots' credentials: a source's API key sent as `Authorization: Bearer <key>`.

A bot is not a Django user. It authenticates as a `SourceBot` (never staff), with the
key row as `request.auth`; views admit it only where `IsStaffOrSourceBot` says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from django.conf import settings
from django.http import HttpRequest
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import BasePermission, IsAdminUser
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from core.middleware import log_ids
from distribution import queries
from distribution.keys import key_matches, prefix_of
from distribution.models import Operator, Source, SourceApiKey

if TYPE_CHECKING:
    # Imported for annotations only: DRF imports this module while loading its views.
    from drf_spectacular.openapi import AutoSchema
    from rest_framework.views import APIView

KEYWORD = "Bearer"


class SourceBot:
    """`request.user` for a request made with a source's API key."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False

    def __init__(self, source: Source) -> None:
        self.source = source

    def __str__(self) -> str:
        return f"bot of {self.source.code}"


class SourceKeyAuthentication(BaseAuthentication):
    """`Authorization: Bearer <key>`; other schemes are left to the next authenticator."""

    def authenticate(self, request: Request) -> tuple[SourceBot, SourceApiKey] | None:
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != KEYWORD.lower().encode():
            return None
        if len(parts) != 2:
            raise AuthenticationFailed("Invalid Bearer header: give exactly one API key.")
        try:
            key = parts[1].decode()
        except UnicodeDecodeError:
            raise AuthenticationFailed("Invalid API key.") from None
        api_key = find_source_key(key)
        if api_key is None:
            raise AuthenticationFailed("Invalid or revoked API key.")
        # Known from here on, also when the request then fails validation.
        log_ids(request, source=api_key.source.code)
        return SourceBot(api_key.source), api_key

    def authenticate_header(self, request: Request) -> str:
        return f'{KEYWORD} realm="api"'


def find_source_key(key: str) -> SourceApiKey | None:
    """The live (not revoked) key row that `key` opens, read afresh on every request."""
    prefix = prefix_of(key)
    if prefix is None:
        return None
    api_key = queries.live_source_key(prefix)
    if api_key is None or not key_matches(key, api_key.key_hash):
        return None
    return api_key


def signed_in_operator(request: Request | HttpRequest) -> Operator | None:
    """The operator whose login made the request; None for staff without one, bots and
    anonymous requests."""
    user = request.user
    if isinstance(user, SourceBot) or not user.is_authenticated:
        return None
    return Operator.objects.filter(user=user).first()


class IsOperator(BasePermission):
    """A signed-in operator (its own login): the desk's API."""

    message = "Only an operator's login may do this."

    def has_permission(self, request: Request, view: APIView) -> bool:
        return signed_in_operator(request) is not None


class IsStaffOrOperator(IsAdminUser):
    """Staff, or a signed-in operator, who then sees only its own contacts."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        return super().has_permission(request, view) or IsOperator().has_permission(request, view)


def bot_source(request: Request) -> Source | None:
    """The source whose key made the request; None for staff and anonymous requests."""
    return request.auth.source if isinstance(request.auth, SourceApiKey) else None


class IsStaffOrSourceBot(IsAdminUser):
    """Staff, or a bot with its source's API key: for the few endpoints bots may use."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        return isinstance(request.auth, SourceApiKey) or super().has_permission(request, view)


class NamesOwnSource(BasePermission):
    """A bot may name no source but its own in a request body (`source`: a code)."""

    message = "This API key may only act for its own source."

    def has_permission(self, request: Request, view: APIView) -> bool:
        if not isinstance(request.auth, SourceApiKey):
            return True
        data = request.data
        named = data.get("source") if isinstance(data, Mapping) else None
        return named is None or named == request.auth.source.code


class SourceKeyRateThrottle(SimpleRateThrottle):
    """Bots' requests per source (`API_BOT_THROTTLE_RATE`); staff are not throttled."""

    scope = "source_key"

    def get_rate(self) -> str:
        # Read at request time rather than from DEFAULT_THROTTLE_RATES, which DRF
        # copies once at import, so a changed setting applies at once.
        return settings.API_BOT_THROTTLE_RATE

    def get_cache_key(self, request: Request, view: APIView) -> str | None:
        if not isinstance(request.auth, SourceApiKey):
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.auth.source_id}


class SourceKeyScheme(OpenApiAuthenticationExtension):
    """The bots' key in the OpenAPI schema, as HTTP bearer authentication."""

    target_class = SourceKeyAuthentication
    name = "sourceKey"

    def get_security_requirement(self, auto_schema: AutoSchema) -> dict | None:
        # Listed only on the operations bots may call; the others answer them 403.
        permissions = auto_schema.view.get_permissions()
        if any(isinstance(permission, IsStaffOrSourceBot) for permission in permissions):
            return {self.name: []}
        return None

    def get_security_definition(self, auto_schema: AutoSchema) -> dict:
        return build_bearer_security_scheme_object(
            header_name="Authorization", token_prefix=KEYWORD
        )
