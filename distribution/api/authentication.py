"""Bots' credentials: a source's API key sent as `Authorization: Bearer <key>`.

A bot is not a Django user. It authenticates as a `SourceBot` (never staff), with the
key row as `request.auth`; views admit it only where `IsStaffOrSourceBot` says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.db.models import Q
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
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
            raise AuthenticationFailed(_("Invalid Bearer header: give exactly one API key."))
        try:
            key = parts[1].decode()
        except UnicodeDecodeError:
            raise AuthenticationFailed(_("Invalid API key.")) from None
        api_key = find_source_key(key)
        if api_key is None:
            raise AuthenticationFailed(_("Invalid or revoked API key."))
        note_key_use(api_key.pk, now=timezone.now())
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


# A key's last use is stored to the minute, so an intake at hundreds a second writes the
# key's row once a minute rather than on every request.
KEY_USE_PRECISION = timedelta(minutes=1)
# When this process last stored (or found stored) each key's use: within the minute it
# sends not even the conditional UPDATE.
_key_use_noted: dict[int, datetime] = {}


def note_key_use(api_key_id: int, *, now: datetime) -> None:
    """Store `now` as the key's last use, unless it was stored less than a minute ago.

    This process remembers when it last did, and skips the round trip within the minute;
    the UPDATE's condition keeps other processes and hosts from writing within it too.
    """
    noted = _key_use_noted.get(api_key_id)
    if noted is not None and now - noted < KEY_USE_PRECISION:
        return
    stale = Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - KEY_USE_PRECISION)
    SourceApiKey.objects.filter(stale, pk=api_key_id).update(last_used_at=now)
    _key_use_noted[api_key_id] = now


def signed_in_operator(request: Request | HttpRequest) -> Operator | None:
    """The operator whose login made the request; None for staff without one, bots and
    anonymous requests."""
    user = request.user
    if isinstance(user, SourceBot) or not user.is_authenticated:
        return None
    return Operator.objects.filter(user=user).first()


class IsOperator(BasePermission):
    """A signed-in operator (its own login): the desk's API."""

    message = gettext_lazy("Only an operator's login may do this.")

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

    message = gettext_lazy("This API key may only act for its own source.")

    def has_permission(self, request: Request, view: APIView) -> bool:
        if not isinstance(request.auth, SourceApiKey):
            return True
        data = request.data
        named = data.get("source") if isinstance(data, Mapping) else None
        return named is None or named == request.auth.source.code


class SourceKeyRateThrottle(SimpleRateThrottle):
    """Bots' requests per source (`API_BOT_THROTTLE_RATE`); staff are not throttled.

    Counted in the default cache, which every process and host share (settings.CACHES),
    as a window that opens with a source's first request and the number of requests in
    it: a read and a write of that pair per request let through (about 1 ms in the
    database cache on PostgreSQL, 0.2 ms in Redis), only the read for one refused. DRF's
    own throttle keeps the time of every request in the window and writes the whole list
    back each time, which costs more the busier the source: 2-3 ms at 5,000 requests in
    the window, 5 ms at 20,000 (the benchmark's rate allows that many).
    """

    scope = "source_key"

    def allow_request(self, request: Request, view: APIView) -> bool:
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        self.now = self.timer()
        opened, count = self.cache.get(self.key, (self.now, 0))
        if self.now - opened >= self.duration:
            opened, count = self.now, 0
        self.opened = opened
        if count >= self.num_requests:
            return False
        self.cache.set(self.key, (opened, count + 1), opened + self.duration - self.now)
        return True

    def wait(self) -> float:
        """Seconds until the source's window closes (the answer's Retry-After)."""
        return self.opened + self.duration - self.now

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
