"""API rate limits: one budget per API token and one per user (``docs/signals.md``).

A fixed-window counter in the default cache: ``cache.add`` then ``cache.incr``, both atomic in
Redis, so the budget is shared by every gunicorn worker and web pod when ``REDIS_URL`` is set
(with the per-process LocMem cache each process counts on its own: a local run only). DRF's
``SimpleRateThrottle`` keeps a list of timestamps and writes it back with ``set``, which loses
counts when two workers answer the same token at once.

Only the REST API (DRF views) is limited. The inference authorization checks
(``console.access.authz``) and the ingest receivers (``audit.views.ingest``) are plain Django
views and never pass through these classes: Envoy and KServe's payload loggers must not be
refused because a person's script is busy.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.core.cache import cache
from rest_framework.throttling import BaseThrottle

PERIODS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}


def parse_rate(rate: str | None) -> tuple[int, int] | None:
    """``"600/minute"`` → (600, 60); empty → None (no limit). Also ``s``/``m``/``h``/``d``."""
    if not rate:
        return None
    number, _, period = rate.partition("/")
    seconds = PERIODS.get(period) or {name[0]: secs for name, secs in PERIODS.items()}.get(period)
    if not number.strip().isdigit() or seconds is None or int(number) < 1:
        raise ValueError(f"{rate!r} is not a rate like '600/minute' (second, minute, hour or day)")
    return int(number), seconds


class _WindowThrottle(BaseThrottle):
    """Allow ``n`` requests per window for one identity; ``wait()`` is the rest of the window."""

    setting = ""
    scope = ""

    def identity(self, request) -> str | None:
        raise NotImplementedError

    def allow_request(self, request, view) -> bool:
        self._wait = None
        rate = parse_rate(getattr(settings, self.setting, ""))
        ident = self.identity(request)
        if rate is None or ident is None:
            return True
        limit, period = rate
        now = time.time()
        window = int(now // period)
        key = f"throttle:{self.scope}:{ident}:{period}:{window}"
        cache.add(key, 0, timeout=period + 1)
        try:
            count = cache.incr(key)
        except ValueError:  # evicted between add and incr: start the window again
            cache.set(key, 1, timeout=period + 1)
            count = 1
        if count <= limit:
            return True
        self._wait = max(1.0, (window + 1) * period - now)
        return False

    def wait(self) -> float | None:
        return self._wait


class TokenRateThrottle(_WindowThrottle):
    """``API_RATE_LIMIT_TOKEN`` per API token (requests made with a session are not counted)."""

    setting = "API_RATE_LIMIT_TOKEN"
    scope = "token"

    def identity(self, request) -> str | None:
        token = request.auth
        if token is None or getattr(token, "pk", None) is None:
            return None
        return str(token.pk)


class UserRateThrottle(_WindowThrottle):
    """``API_RATE_LIMIT_USER`` per user, over sessions and all of the user's tokens together."""

    setting = "API_RATE_LIMIT_USER"
    scope = "user"

    def identity(self, request) -> str | None:
        user = request.user
        if user is None or not user.is_authenticated:
            return None
        return str(user.pk)
