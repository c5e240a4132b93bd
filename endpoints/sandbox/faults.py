"""Fault injection for the fake API server, so tests can exercise the console's error handling.

Faults are decided per request, after the request has been read and classified (RBAC verb and
path are known) and before it is handled:

* ``latency(seconds)`` delays every request;
* ``fail_next(n, status=500|429|503|..., verb=..., path=...)`` answers the next ``n`` matching
  requests with that status (a proper Status body, ``Retry-After`` for 429/503);
* ``drop_next(n, ...)`` closes the connection without any response;
* ``pause()`` blocks matching requests until ``resume()`` (or the server stops).

``verb`` is an RBAC verb (``get``, ``list``, ``watch``, ``create``, ``update``, ``patch``,
``delete``, ``deletecollection``); ``path`` is a regular expression searched in the URL path.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

from .errors import ApiError

_MESSAGES = {
    429: "Too many requests, please try again later.",
    500: "Internal error occurred: injected fault",
    502: "Bad Gateway: injected fault",
    503: "The server is currently unable to handle the request (injected fault)",
    504: "Timeout: request did not complete within requested timeout (injected fault)",
}


@dataclass
class _Rule:
    action: str  # "fail" | "drop"
    remaining: int
    status: int = 500
    verb: str | None = None
    path: re.Pattern[str] | None = None
    retry_after: int | None = None

    def matches(self, verb: str, path: str) -> bool:
        if self.verb and self.verb != verb:
            return False
        return not (self.path and not self.path.search(path))


@dataclass
class Decision:
    """What the server should do with one request."""

    delay: float = 0.0
    error: ApiError | None = None
    drop: bool = False


class FaultInjector:
    """Thread-safe registry of active faults (see module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[_Rule] = []
        self._latency = 0.0
        self._running = threading.Event()
        self._running.set()
        self._pause_verb: str | None = None
        self._pause_path: re.Pattern[str] | None = None
        self._stopping = False

    def latency(self, seconds: float) -> None:
        """Delay every request by ``seconds`` (0 turns it off)."""
        with self._lock:
            self._latency = max(0.0, float(seconds))

    def fail_next(self, count: int = 1, *, status: int = 500, verb: str | None = None, path: str | None = None,
                  retry_after: int | None = None) -> None:
        """Answer the next ``count`` matching requests with ``status``."""
        if retry_after is None and status in (429, 503):
            retry_after = 1
        with self._lock:
            self._rules.append(_Rule("fail", count, status, verb, re.compile(path) if path else None, retry_after))

    def drop_next(self, count: int = 1, *, verb: str | None = None, path: str | None = None) -> None:
        """Close the connection of the next ``count`` matching requests without answering."""
        with self._lock:
            self._rules.append(_Rule("drop", count, verb=verb, path=re.compile(path) if path else None))

    def pause(self, *, verb: str | None = None, path: str | None = None) -> None:
        """Hold matching requests (all by default) until ``resume()``."""
        with self._lock:
            self._pause_verb = verb
            self._pause_path = re.compile(path) if path else None
            self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def clear(self) -> None:
        """Remove every fault and release paused requests."""
        with self._lock:
            self._rules.clear()
            self._latency = 0.0
        self.resume()

    def stop(self) -> None:
        """Release everything for good (server shutdown)."""
        self._stopping = True
        self.clear()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def wait_if_paused(self, verb: str, path: str) -> None:
        with self._lock:
            applies = (not self._pause_verb or self._pause_verb == verb) and (
                self._pause_path is None or self._pause_path.search(path) is not None
            )
        if not applies:
            return
        while not self._running.wait(0.1):
            if self._stopping:
                return

    def decide(self, verb: str, path: str) -> Decision:
        with self._lock:
            decision = Decision(delay=self._latency)
            for rule in self._rules:
                if rule.remaining > 0 and rule.matches(verb, path):
                    rule.remaining -= 1
                    if rule.action == "drop":
                        decision.drop = True
                    else:
                        decision.error = ApiError(rule.status, _MESSAGES.get(rule.status, "injected fault"),
                                                  retry_after=rule.retry_after)
                    break
            self._rules = [r for r in self._rules if r.remaining > 0]
            return decision
