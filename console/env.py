"""Strict parsers for settings read from the environment.

Every setting may also come from a file named by ``<NAME>_FILE`` (Kubernetes secrets mounted
as files, Docker secrets), which wins over the plain variable. A value that does not parse
stops start-up with a message naming the variable: a typo in production configuration must
never silently fall back to a default.
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def raw(name: str, default: str | None = None) -> str | None:
    """The variable's text, read from ``<name>_FILE`` when that is set."""
    file_name = os.environ.get(f"{name}_FILE")
    if file_name:
        try:
            return Path(file_name).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE={file_name!r} cannot be read: {exc}") from exc
    return os.environ.get(name, default)


def string(name: str, default: str = "") -> str:
    value = raw(name)
    return default if value is None else value


def boolean(name: str, default: bool) -> bool:
    value = raw(name)
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (true/false), got {value!r}")


def integer(name: str, default: int, *, minimum: int | None = None) -> int:
    value = raw(name)
    if value is None or value.strip() == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {value!r}") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {number}")
    return number


def choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = raw(name)
    if value is None or value.strip() == "":
        return default
    value = value.strip().lower()
    if value not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def string_list(name: str, default: list[str]) -> list[str]:
    value = raw(name)
    if value is None:
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]


def rate(name: str, default: str) -> str:
    """A request rate such as ``600/minute`` (second, minute, hour, day); empty means no limit."""
    value = string(name, default).strip()
    if not value:
        return ""
    number, _, period = value.partition("/")
    if not number.isdigit() or int(number) < 1 or period not in ("second", "minute", "hour", "day", "s", "m", "h", "d"):
        raise ImproperlyConfigured(f"{name} must be a rate like '600/minute' (per second, minute, hour or day), "
                                   f"got {value!r}")
    return value


ENCRYPTION_KEYS_VARIABLE = "CONSOLE_ENCRYPTION_KEYS"


def _fernet_key_bytes(key: str) -> bytes:
    """A Fernet key is 32 bytes in url-safe base64 (cryptography's own rule, checked without it)."""
    raw_key = base64.urlsafe_b64decode(key.encode("ascii"))
    if len(raw_key) != 32:
        raise ValueError("not 32 bytes")
    return raw_key


def parse_keys(text: str) -> list[str]:
    """The keys in ``text`` (commas or newlines between them), each checked to be a Fernet key."""
    keys = [part.strip() for chunk in (text or "").splitlines() for part in chunk.split(",") if part.strip()]
    for index, key in enumerate(keys, start=1):
        try:
            _fernet_key_bytes(key)
        except (ValueError, TypeError, UnicodeEncodeError):
            raise ImproperlyConfigured(
                f"{ENCRYPTION_KEYS_VARIABLE}: key {index} is not a Fernet key (32 url-safe base64-encoded bytes; "
                "make one with: python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')"
            ) from None
    return keys


def development_key(secret_key: str) -> str:
    """A deterministic key derived from SECRET_KEY: only for DEBUG runs without configured keys."""
    digest = hashlib.sha256(b"inference-console-encryption:" + secret_key.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode()
