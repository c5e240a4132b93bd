"""Safe retries of API writes: the ``Idempotency-Key`` request header.

A client that sends ``POST``/``PUT``/``PATCH``/``DELETE`` to ``/api/`` with an
``Idempotency-Key`` (1–255 printable ASCII characters it chose, a UUID say) may send the same
request again — after a timeout, a dropped connection, a crash of its own — without making the
change twice:

- the first request with a key is answered as usual, and its answer (status, body, content
  type) is kept for ``IDEMPOTENCY_KEY_TTL_SECONDS`` (24 h), per user and key;
- the same key and the same request (method, path, query string, body) from the same user gets
  that answer again, with ``Idempotent-Replayed: true``, and nothing runs a second time;
- the same key with another request: 422, nothing runs;
- the same key while the first request is still being answered (a concurrent duplicate): 409,
  nothing runs. A first request that never finished (its process was killed) stops counting as
  "being answered" after ``IDEMPOTENCY_PENDING_SECONDS``; the next retry then runs.

Answers a retry could change are not kept and free the key: 401, 403, 408, 429 and server errors
(5xx). Requests without the header, reads, and paths outside ``/api/`` are untouched. The user is
the one the API authenticates (API token or session, the API's own authenticators); a request the
API would refuse as anonymous is passed on unchanged and refused there.

The kept answers are bookkeeping of the HTTP exchange, not a change to the console: the change
itself is audited by the service that made it, once.
"""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import IntegrityError, transaction
from django.http import HttpResponse, JsonResponse
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.settings import api_settings

from console.models import IdempotencyKey

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
KEY_PATTERN = re.compile(r"[\x21-\x7e]{1,255}")
# Answers a retry could change: not kept, the key is freed.
NOT_KEPT = frozenset({401, 403, 408, 429})


def _error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"detail": f"{HEADER}: {message}", "errors": {HEADER: [message]}}, status=status)


def _api_user(request):
    """The user the API will see (its own authenticators, CSRF check included), or None."""
    drf_request = Request(request, authenticators=[cls() for cls in api_settings.DEFAULT_AUTHENTICATION_CLASSES])
    try:
        user = drf_request.user
    except exceptions.APIException:
        return None
    return user if user is not None and user.is_authenticated else None


def _fingerprint(request, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (request.method, request.path, request.META.get("QUERY_STRING", "")):
        digest.update(part.encode("utf-8", "surrogateescape"))
        digest.update(b"\0")
    digest.update(body)
    return digest.hexdigest()


def _claim(*, user, key: str, fingerprint: str, request) -> IdempotencyKey | None:
    """Insert the pending row for (user, key) and return None, or return the row already there.

    The insert commits at once (outside any request transaction), so a concurrent duplicate
    finds it; an expired row, or a pending one whose request was abandoned, is replaced."""
    now = timezone.now()
    for _ in range(3):
        try:
            with transaction.atomic():
                IdempotencyKey.objects.create(user=user, key=key, fingerprint=fingerprint, method=request.method,
                                              path=request.path[:2048], created_at=now)
            return None
        except IntegrityError:
            existing = IdempotencyKey.objects.filter(user=user, key=key).first()
            if existing is None:
                continue  # pruned in between: insert again
            expired = existing.created_at <= now - timedelta(seconds=settings.IDEMPOTENCY_KEY_TTL_SECONDS)
            abandoned = existing.status_code is None and existing.created_at <= now - timedelta(
                seconds=settings.IDEMPOTENCY_PENDING_SECONDS)
            if not (expired or abandoned):
                return existing
            IdempotencyKey.objects.filter(pk=existing.pk, created_at=existing.created_at).delete()
    raise RuntimeError("could not claim an idempotency key")  # pragma: no cover - three races in a row


class IdempotencyMiddleware:
    """Keeps and replays the answers to API writes that carry an ``Idempotency-Key``."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        key = request.headers.get(HEADER)
        if key is None or request.method not in MUTATING_METHODS or not request.path.startswith("/api/"):
            return self.get_response(request)
        if not KEY_PATTERN.fullmatch(key):
            return _error(400, "Use 1 to 255 printable ASCII characters, without spaces.")
        try:
            body = request.body
        except RequestDataTooBig:
            return _error(400, "The request body is too large to be kept for a retry; send it without "
                               "an Idempotency-Key.")
        user = _api_user(request)
        if user is None:
            return self.get_response(request)

        fingerprint = _fingerprint(request, body)
        existing = _claim(user=user, key=key, fingerprint=fingerprint, request=request)
        if existing is not None:
            if existing.fingerprint != fingerprint:
                return _error(422, "This key was already used with another request; use a new key for a "
                                   "new request.")
            if existing.status_code is None:
                return _error(409, "A request with this key is still being answered; retry once it is done.")
            replay = HttpResponse(bytes(existing.body), status=existing.status_code,
                                  content_type=existing.content_type or None)
            replay[REPLAYED_HEADER] = "true"
            return replay

        response = self.get_response(request)
        rows = IdempotencyKey.objects.filter(user=user, key=key, fingerprint=fingerprint, status_code=None)
        if response.status_code >= 500 or response.status_code in NOT_KEPT or response.streaming:
            rows.delete()
        else:
            rows.update(status_code=response.status_code, body=response.content,
                        content_type=response.get("Content-Type", ""))
        return response


def idempotency_keys_prune(*, now=None) -> int:
    """Delete the keys older than ``IDEMPOTENCY_KEY_TTL_SECONDS``; returns how many."""
    cutoff = (now or timezone.now()) - timedelta(seconds=settings.IDEMPOTENCY_KEY_TTL_SECONDS)
    deleted, _ = IdempotencyKey.objects.filter(created_at__lt=cutoff).delete()
    return deleted
