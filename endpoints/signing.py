"""Webhook signatures: HMAC-SHA256 over ``<timestamp>.<body>``, sent as
``X-Console-Signature: t=<unix seconds>,v1=<hex digest>`` (the shape Stripe popularised). A
receiver recomputes the digest with the channel's secret, compares in constant time and refuses
a timestamp too far from its clock, so a captured delivery cannot be replayed later.

Pure functions without Django, shared by the sender and by anyone who wants to verify
(``docs/signals.md`` shows the same check in a few lines of plain Python)."""

from __future__ import annotations

import hashlib
import hmac
import time

HEADER = "X-Console-Signature"
DEFAULT_TOLERANCE_SECONDS = 300


def signature(secret: str, timestamp: int, body: bytes) -> str:
    message = str(timestamp).encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def signature_header(secret: str, body: bytes, *, timestamp: int | None = None) -> str:
    timestamp = int(time.time()) if timestamp is None else timestamp
    return f"t={timestamp},v1={signature(secret, timestamp, body)}"


def verify(secret: str, header: str, body: bytes, *, tolerance: int = DEFAULT_TOLERANCE_SECONDS,
           now: float | None = None) -> bool:
    """Whether ``header`` signs ``body`` with ``secret`` within ``tolerance`` seconds of now."""
    parts = dict(item.split("=", 1) for item in header.split(",") if "=" in item)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    now = time.time() if now is None else now
    if abs(now - timestamp) > tolerance:
        return False
    return hmac.compare_digest(parts.get("v1", ""), signature(secret, timestamp, body))
