"""The HTTP side Envoy's ext_authz filter talks to: the middleware that answers checks
before sessions, CSRF and host validation, and the plain view behind it."""

from __future__ import annotations

import logging
import time

from django.http import HttpResponse
from django.views.decorators.csrf import csrf_exempt

from console import metrics
from console.access.authz.decision import PRINCIPAL_HEADER, Decision, allow_tally, audit_denial, decide
from console.access.authz.routing import authz_prefix, original_path

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
    raw = raw.split("?", 1)[0]
    if not raw.startswith("/") and "://" in raw:  # absolute form: http://host/path
        rest = raw.split("://", 1)[1]
        raw = rest[rest.index("/"):] if "/" in rest else "/"
    return raw


def _respond(decision: Decision) -> HttpResponse:
    if decision.status == 200:
        response = HttpResponse(status=200)
        response[PRINCIPAL_HEADER] = decision.principal
        return response
    body = "Unauthorized: send Authorization: Bearer <API token>.\n" if decision.status == 401 else \
        "Forbidden: this principal may not call this endpoint.\n"
    response = HttpResponse(body, status=decision.status, content_type="text/plain")
    if decision.status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="inference"'
    return response


def check_request(request) -> HttpResponse:
    """Decide one ext_authz check request (any method; the body is ignored)."""
    started = time.perf_counter()
    path = original_path(request.path)
    raw = raw_request_path(request)
    query = request.META.get("QUERY_STRING", "")
    host = request.META.get("HTTP_HOST", "")
    decision = decide(host=host, path=path, authorization=request.META.get("HTTP_AUTHORIZATION"),
                      raw_path=raw)
    full_path = f"{path}?{query}" if query else path
    if decision.allowed:
        allow_tally.add(decision, method=request.method, at=time.time())
    else:
        audit_denial(decision, method=request.method, host=host, path=full_path,
                     raw_path=raw if raw is not None and raw != request.path else None)
    metrics.AUTHZ_DECISIONS.labels(
        "allow" if decision.allowed else "unauthenticated" if decision.status == 401 else "deny").inc()
    metrics.AUTHZ_SECONDS.observe(time.perf_counter() - started)
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
