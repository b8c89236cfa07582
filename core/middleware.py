"""Request logs: one JSON line per request on the `crm.requests` logger.

Only the request's shape, its outcome and ids, never personal data or credentials: no
query string (a lead search may be a phone number), no headers (Authorization carries
tokens and keys), no bodies.
"""

import json
import logging
import time
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.utils.translation import gettext as _

logger = logging.getLogger("crm.requests")


def log_ids(request: HttpRequest, **ids: int | str) -> None:
    """Add ids to this request's log line (`contact=...`, `source=...`); views call it."""
    # DRF's Request wraps Django's; the middleware sees only Django's.
    http_request = getattr(request, "_request", request)
    http_request.log_ids = {**getattr(http_request, "log_ids", {}), **ids}


class RequestLogMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        if logger.isEnabledFor(logging.INFO):
            duration_ms = (time.perf_counter() - started) * 1000
            logger.info(json.dumps(request_line(request, response, duration_ms)))
        return response


def request_line(request: HttpRequest, response: HttpResponse, duration_ms: float) -> dict:
    line = {
        "method": request.method,
        "path": request.path,
        "status": response.status_code,
        "duration_ms": round(duration_ms, 1),
        "source": None,
        "contact": None,
    }
    # Authentication adds a bot's source as soon as it knows it, so the line names it
    # even when the request then fails validation.
    line.update(getattr(request, "log_ids", {}))
    return line


class StaffOnlyAdminMiddleware:
    """The admin is staff's: a signed-in user who is not staff (an operator's login) gets
    403 there, not the admin's login form; signing out stays open to everyone."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = request.user
        if (
            request.path.startswith("/admin/")
            and not request.path.startswith("/admin/logout/")
            and user.is_authenticated
            and not user.is_staff
        ):
            return HttpResponseForbidden(_("The admin is for staff."))
        return self.get_response(request)
