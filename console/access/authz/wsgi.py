"""The HTTP ext_authz check on a lean path: a WSGI application of its own that answers
``/authz/check/<original path>`` (and ``/healthz``) and nothing else.

Served by gunicorn's threaded workers, which keep connections alive (Envoy pools its
connections to the authorizer; a new TCP connection per check, as with sync workers, costs
more than the decision)::

    gunicorn console.access.authz.wsgi -c python:console.gunicorn_conf \\
        --worker-class gthread --workers 2 --threads 8 --keep-alive 75

No Django request object, URL resolution, middleware, session, CSRF, template or CSP
machinery runs for a check: the environ gives the method, host, path as sent (``RAW_URI``)
and ``authorization``, ``check.authorize`` decides, audits and counts exactly as for the gRPC
service and the console's own ``/authz/check`` route, and the answer is written directly.
"""

from __future__ import annotations

import gc
import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")
django.setup()

from django.core.handlers.wsgi import get_path_info  # noqa: E402

from console.access.authz.check import (  # noqa: E402
    WWW_AUTHENTICATE,
    authorize,
    denial_body,
    recycle_connections,
)
from console.access.authz.decision import PRINCIPAL_HEADER  # noqa: E402
from console.access.authz.journal import start as start_allow_journal  # noqa: E402
from console.access.authz.routing import authz_prefix, origin_form, original_path  # noqa: E402

PREFIX = authz_prefix()
# This process's allow journal shipper, now: it also takes over journals that killed workers left.
start_allow_journal()
# What is loaded now lives as long as the worker: kept out of the garbage collector's full
# passes (each walked every loaded object with the GIL held, tens of milliseconds).
gc.freeze()
_STATUS = {200: "200 OK", 401: "401 Unauthorized", 403: "403 Forbidden", 404: "404 Not Found",
           405: "405 Method Not Allowed", 503: "503 Service Unavailable"}


def _raw_path(environ) -> str | None:
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if not raw:
        return None
    return origin_form(raw)


def _answer(start_response, status: int, headers: list[tuple[str, str]], body: str = "") -> list[bytes]:
    data = body.encode()
    start_response(_STATUS[status], [*headers, ("Content-Length", str(len(data)))])
    return [data]


def application(environ, start_response):
    path = get_path_info(environ)
    if path == "/healthz":
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            return _answer(start_response, 405, [("Allow", "GET, HEAD")])
        return _answer(start_response, 200, [("Content-Type", "text/plain")], "ok\n")
    if not (path == PREFIX or path.startswith(PREFIX + "/")):
        return _answer(start_response, 404, [("Content-Type", "text/plain")], "Not found: only ext_authz checks.\n")
    # What Django's handler does around every request (CONN_MAX_AGE, connection health checks).
    recycle_connections()
    try:
        raw = _raw_path(environ)
        decision = authorize(method=environ.get("REQUEST_METHOD", "GET"), host=environ.get("HTTP_HOST", ""),
                             path=original_path(path), authorization=environ.get("HTTP_AUTHORIZATION"),
                             query=environ.get("QUERY_STRING", ""), raw_path=raw if raw != path else None)
    finally:
        recycle_connections()
    if decision.allowed:
        return _answer(start_response, 200, [(PRINCIPAL_HEADER, decision.principal)])
    headers = [("Content-Type", "text/plain")]
    if decision.status == 401:
        headers.append(("WWW-Authenticate", WWW_AUTHENTICATE))
    return _answer(start_response, decision.status, headers, denial_body(decision))
