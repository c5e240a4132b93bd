"""The HTTP side Envoy's ext_authz filter talks to: the middleware that answers checks
before sessions, CSRF and host validation, and the plain view behind it."""

from __future__ import annotations

import logging

from django.http import HttpResponse
from django.views.decorators.csrf import csrf_exempt

from console.access.authz.check import WWW_AUTHENTICATE, authorize, denial_body
from console.access.authz.decision import PRINCIPAL_HEADER, Decision
from console.access.authz.routing import authz_prefix, origin_form, original_path

logger = logging.getLogger(__name__)


def raw_request_path(request) -> str | None:
    """The request's path exactly as sent (still percent-encoded, without the query), when the
    server reports it: gunicorn's ``RAW_URI``, uWSGI's and mod_wsgi's ``REQUEST_URI``, ASGI's
    ``raw_path``. None otherwise (Django's ``request.path`` is decoded: ``%2F`` reads as ``/``)."""
    raw = request.META.get("RAW_URI") or request.META.get("REQUEST_URI")
    if not raw:
        scope = getattr(request, "scope", None)
        raw_bytes = scope.get("raw_path") if isinstance(scope, dict) else None
        raw = raw_bytes.decode("latin-1") if raw_bytes else None
    if not raw:
        return None
    return origin_form(raw)


def _respond(decision: Decision) -> HttpResponse:
    if decision.status == 200:
        response = HttpResponse(status=200)
        response[PRINCIPAL_HEADER] = decision.principal
        return response
    response = HttpResponse(denial_body(decision), status=decision.status, content_type="text/plain")
    if decision.status == 401:
        response["WWW-Authenticate"] = WWW_AUTHENTICATE
    return response


def check_request(request) -> HttpResponse:
    """Decide one ext_authz check request (any method; the body is ignored)."""
    raw = raw_request_path(request)
    decision = authorize(method=request.method, host=request.META.get("HTTP_HOST", ""),
                         path=original_path(request.path), authorization=request.META.get("HTTP_AUTHORIZATION"),
                         query=request.META.get("QUERY_STRING", ""),
                         raw_path=raw if raw is not None and raw != request.path else None)
    return _respond(decision)


@csrf_exempt
def authz_view(request, path: str = ""):
    """``/authz/check/<original path>``: the URL route (the middleware below answers the same
    requests earlier, skipping sessions, CSRF and host validation)."""
    return check_request(request)


class AuthzMiddleware:
    """Answers ext_authz checks before the rest of the middleware stack: they carry the
    *inference* host (not one of ALLOWED_HOSTS, which Django would refuse with 400), no
    session and no CSRF token, and they are the console's hottest path."""

    def __init__(self, get_response):
        self.get_response = get_response
        self.prefix = authz_prefix()

    def __call__(self, request):
        path = request.path_info
        if path == self.prefix or path.startswith(self.prefix + "/"):
            return check_request(request)
        return self.get_response(request)
