"""One error body for the whole API: ``{"detail": str, "errors": {field: [messages]}}``.

Services raise Django's ``ValidationError`` (shared with forms); the API turns it into a 400
with the same field messages the form would show.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, JsonResponse
from rest_framework import exceptions
from rest_framework.views import exception_handler as drf_exception_handler


def _flatten(value) -> list[str]:
    if isinstance(value, list | tuple):
        out: list[str] = []
        for item in value:
            out.extend(_flatten(item))
        return out
    if isinstance(value, dict):
        return [f"{key}: {msg}" for key, item in value.items() for msg in _flatten(item)]
    return [str(value)]


def _field_errors(data) -> dict[str, list[str]]:
    if isinstance(data, dict):
        return {str(field): _flatten(messages) for field, messages in data.items()}
    return {"non_field_errors": _flatten(data)}


def exception_handler(exc, context):
    if isinstance(exc, DjangoValidationError):
        data = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        exc = exceptions.ValidationError(data)
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()

    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        errors = _field_errors(response.data)
        first_field, first_messages = next(iter(errors.items()), ("", ["Invalid input."]))
        prefix = "" if first_field == "non_field_errors" else f"{first_field}: "
        response.data = {"detail": f"{prefix}{first_messages[0]}", "errors": errors}
    else:
        detail = response.data.get("detail") if isinstance(response.data, dict) else response.data
        response.data = {"detail": str(detail), "errors": {}}
    return response


class ApiErrorBodyMiddleware:
    """The last word on error bodies under ``/api/``: whatever answered (a DRF view with another
    renderer — the schema's YAML —, a plain Django view such as the API docs pages, Django's own
    405), an error that is not JSON leaves as the one error body, with its status and its
    ``Allow``/``Retry-After``/``WWW-Authenticate`` headers. Pages outside /api/ are untouched."""

    KEPT_HEADERS = ("Allow", "Retry-After", "WWW-Authenticate")

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if (response.status_code < 400 or not request.path.startswith("/api/") or response.streaming
                or response.get("Content-Type", "").startswith("application/json")):
            return response
        body = JsonResponse({"detail": f"{response.reason_phrase}.", "errors": {}}, status=response.status_code)
        for header in self.KEPT_HEADERS:
            if header in response:
                body[header] = response[header]
        return body
