"""One error shape for the whole API, and the schema that documents it.

400: an object of field errors (`{"field": ["message"], "non_field_errors": [...]}`).
Every other error: `{"detail": "message"}` with its status; 409 for state conflicts,
413 for a body over the size limit, 503 while the database is unreachable.
"""

import logging
from typing import Any

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist, RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.translation import gettext as _
from django.views.defaults import page_not_found
from drf_spectacular import openapi
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from core.errors import Conflict

logger = logging.getLogger(__name__)

# What a client is told to wait before retrying while the database is away.
DATABASE_RETRY_AFTER_SECONDS = 5


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, Conflict):
        return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
    if isinstance(exc, OperationalError | InterfaceError):
        return database_unavailable(exc)
    if isinstance(exc, RequestDataTooBig):
        # Django refuses to read a body over DATA_UPLOAD_MAX_MEMORY_SIZE (by its
        # Content-Length, before reading it); outside the API that is a plain 400.
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        return Response(
            {
                "detail": _("The request body is over the limit of %(limit)d bytes.")
                % {"limit": limit}
            },
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    if isinstance(exc, ObjectDoesNotExist):
        # A row deleted by someone else between the view's lookup and the service's lock.
        exc = NotFound()
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(response.data, list):
        response.data = _as_field_errors(response.data)
    return response


def database_unavailable(exc: Exception) -> Response:
    """503 for a database that refuses connections, restarts or drops one mid-request.

    The failed transaction rolled back, and Django drops the broken connection at the
    end of the request, so the next request connects afresh: the service recovers by
    itself. A bot that retries with its Idempotency-Key is safe even in the rare case
    where the connection dropped just after a commit.
    """
    logger.warning("Database unavailable: %s", str(exc).strip())
    return Response(
        {"detail": _("The database is unavailable; retry shortly.")},
        status=status.HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
    )


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """Django's 404 page, but the API's shape for a URL under /api/ that matches no route."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": _("Not found.")}, status=404)
    return page_not_found(request, exception)


def _as_field_errors(errors: list) -> dict[str, Any]:
    """DRF answers a bad list body with a list; make it an object like every other 400.

    One entry per item of the body becomes `{"<index>": {...}}` for the items at fault
    (as DRF's own ListField reports them); plain messages become non-field errors.
    """
    if errors and all(isinstance(item, dict) for item in errors):
        return {str(index): item for index, item in enumerate(errors) if item}
    return {"non_field_errors": errors}


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()


class ValidationErrorSerializer(serializers.Serializer):
    """Field errors: one list of messages per field at fault, nested for nested objects."""

    non_field_errors = serializers.ListField(child=serializers.CharField(), required=False)


def error_response(description: str) -> OpenApiResponse:
    """A `{"detail": ...}` response for `extend_schema(responses=...)` (409, 429)."""
    return OpenApiResponse(ErrorSerializer, description=description)


THROTTLED = error_response("Too many requests with this source's keys; see Retry-After.")


class AutoSchema(openapi.AutoSchema):
    """drf-spectacular's schema plus the error responses each operation can give.

    Views declare their own 409 and 429; the common ones follow from the operation:
    401/403 wherever credentials are needed, 404 for an object in the path or a page
    past the end, 400 for a request body or filters, 413 for a request body, and 503
    everywhere (every operation reads the database).
    """

    def get_operation(self, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
        operation = super().get_operation(*args, **kwargs)
        if operation is None:
            return None
        query = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
        errors = {}
        if "requestBody" in operation or query - {"page"}:
            errors["400"] = (ValidationErrorSerializer, "Invalid input: errors by field.")
        if not any(isinstance(p, AllowAny) for p in self.view.get_permissions()):
            errors["401"] = (ErrorSerializer, "No credentials, or bad ones.")
            errors["403"] = (ErrorSerializer, "These credentials may not do this.")
        if "{" in self.path or "page" in query:
            errors["404"] = (ErrorSerializer, "No such object, or no such page.")
        if "requestBody" in operation:
            errors["413"] = (ErrorSerializer, "The request body is over the size limit.")
        errors["503"] = (ErrorSerializer, "The database is unavailable; see Retry-After.")
        for code, (serializer, description) in errors.items():
            operation["responses"].setdefault(code, self._error(serializer, description))
        return operation

    def _error(self, serializer: type[serializers.Serializer], description: str) -> dict:
        component = self.resolve_serializer(serializer, "response")
        return {
            "description": description,
            "content": {"application/json": {"schema": component.ref}},
        }
