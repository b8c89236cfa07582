"""Times in the viewer's zone: an operator's own `time_zone`; for anyone else (staff)
the zone their browser reports in the `tz` cookie (set by desk/viewer-time-zone.js);
otherwise TIME_ZONE. Stored times stay UTC."""

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from distribution.shifts import is_time_zone

COOKIE = "tz"


class ViewerTimeZoneMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        zone = viewer_time_zone(request)
        if zone is None:
            return self.get_response(request)
        with timezone.override(zone):
            return self.get_response(request)


def viewer_time_zone(request: HttpRequest) -> str | None:
    user = getattr(request, "user", None)
    operator = getattr(user, "operator", None) if user and user.is_authenticated else None
    if operator is not None:
        return operator.time_zone
    zone = request.COOKIES.get(COOKIE, "")
    return zone if zone and is_time_zone(zone) else None
