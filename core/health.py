"""`/health/` for load balancers and orchestrators: is this process able to serve, and
when did the background worker last finish a pass?"""

import logging
from datetime import datetime, timedelta

from django.db import DatabaseError
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from core.models import Heartbeat

logger = logging.getLogger(__name__)

WORKER = "worker"  # the Heartbeat the background worker keeps
# `?worker=1` answers 503 when the worker's last pass is older than this.
WORKER_STALE_AFTER = timedelta(minutes=1)


def beat(name: str, at: datetime) -> None:
    """Record that the process `name` finished a pass at `at`."""
    Heartbeat.objects.update_or_create(name=name, defaults={"beat_at": at})


@never_cache
@require_GET
def health(request: HttpRequest) -> JsonResponse:
    """200 when the database answers, 503 when it does not. With `?worker=1`, also 503
    when the worker has not finished a pass for a minute. No login needed."""
    try:
        last_pass = Heartbeat.objects.filter(name=WORKER).values_list("beat_at", flat=True).first()
    except DatabaseError:
        logger.exception("Health check: the database is unreachable.")
        return JsonResponse({"status": "unavailable", "database": "unreachable"}, status=503)
    age = timezone.now() - last_pass if last_pass else None
    body = {
        "status": "ok",
        "database": "ok",
        "worker": {
            "last_pass_at": last_pass.isoformat() if last_pass else None,
            "seconds_ago": round(age.total_seconds(), 1) if age is not None else None,
        },
    }
    if request.GET.get("worker") == "1" and (age is None or age > WORKER_STALE_AFTER):
        return JsonResponse({**body, "status": "worker stale"}, status=503)
    return JsonResponse(body)
