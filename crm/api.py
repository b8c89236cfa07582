"""One error shape for the whole API, and the schema that documents it.

400: an object of field errors (`{"field": ["message"], "non_field_errors": [...]}`).
Every other error: `{"detail": "message"}` with its status; 409 for state conflicts.
"""

from typing import Any

from django.core.exceptions import ObjectDoesNotExist
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.defaults import page_not_found
from drf_spectacular import openapi
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from crm.errors import Conflict


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, Conflict):
        return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
    if isinstance(exc, ObjectDoesNotExist):
        # A row deleted by someone else between the view's lookup and the service's lock.
        exc = NotFound()
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(response.data, list):
        response.data = _as_field_errors(response.data)
    return response


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """Django's 404 page, but the API's shape for a URL under /api/ that matches no route."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found."}, status=404)
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
    past the end, 400 for a request body or filters.
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
        for code, (serializer, description) in errors.items():
            operation["responses"].setdefault(code, self._error(serializer, description))
        return operation

    def _error(self, serializer: type[serializers.Serializer], description: str) -> dict:
        component = self.resolve_serializer(serializer, "response")
        return {
            "description": description,
            "content": {"application/json": {"schema": component.ref}},
        }
