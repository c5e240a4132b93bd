"""Request context shared with services: request id, client address, user agent.

Services record audit events without being handed the request; they read this context.
"""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar
from dataclasses import dataclass

from django.conf import settings

_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


@dataclass(frozen=True)
class RequestContext:
    request_id: str = ""
    client_ip: str | None = None
    user_agent: str = ""


_current: ContextVar[RequestContext] = ContextVar("console_request_context", default=RequestContext())  # noqa: B039 (frozen)


def current_request_context() -> RequestContext:
    return _current.get()


def client_ip(request) -> str | None:
    """The caller's address: REMOTE_ADDR, or the address NUM_PROXIES hops back in
    X-Forwarded-For when the console sits behind that many trusted proxies. Entries further
    left are written by the client and are never trusted."""
    remote = request.META.get("REMOTE_ADDR") or None
    hops = settings.NUM_PROXIES
    if not hops:
        return remote
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
    if len(forwarded) >= hops:
        return forwarded[-hops]
    return remote


class RequestContextMiddleware:
    """Gives every request an id (kept from a well-formed ``X-Request-Id`` header, e.g. one set
    by the ingress, else generated) and echoes it in the response."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.META.get("HTTP_X_REQUEST_ID", "")
        request_id = incoming if _REQUEST_ID_RE.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id
        token = _current.set(
            RequestContext(
                request_id=request_id,
                client_ip=client_ip(request),
                user_agent=request.META.get("HTTP_USER_AGENT", "")[:512],
            )
        )
        try:
            response = self.get_response(request)
        finally:
            _current.reset(token)
        response["X-Request-Id"] = request_id
        return response


QUEUED_NOTICE = "Saved and queued; the periodic pass will apply it (the task queue cannot be reached just now)."


class QueuedWorkMiddleware:
    """A change committed while the broker is down answers success, saying so.

    ``ConsoleTask.delay_on_commit`` (console/celery.py) never lets a failed publish turn a
    committed change into a 500; it notes the task here. A page then shows ``QUEUED_NOTICE``
    as a message (on the page the form redirects to), an API response carries it in a
    ``Console-Queued`` header and, for a JSON object body, a ``queued`` field. Placed after
    MessageMiddleware, so the message is stored with the response."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        from console.celery import track_unpublished, untrack_unpublished

        token = track_unpublished()
        try:
            response = self.get_response(request)
        finally:
            unpublished = untrack_unpublished(token)
        if unpublished and response.status_code < 400:
            self._announce(request, response)
        return response

    @staticmethod
    def _announce(request, response) -> None:
        import json

        from django.contrib import messages

        response["Console-Queued"] = "periodic-pass"
        if response.get("Content-Type", "").startswith("application/json"):
            try:
                body = json.loads(response.content or b"null")
            except ValueError:
                return
            if isinstance(body, dict):
                body["queued"] = QUEUED_NOTICE
                response.content = json.dumps(body).encode()
        elif hasattr(request, "_messages"):
            messages.warning(request, QUEUED_NOTICE)
