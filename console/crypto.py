"""Encryption at rest for secret values the console must give back to a machine but never to a
person (storage-connection credentials).

Keys: ``CONSOLE_ENCRYPTION_KEYS`` (or ``CONSOLE_ENCRYPTION_KEYS_FILE``), Fernet keys separated by
commas or newlines. The FIRST key encrypts; every key decrypts (``MultiFernet``), so a rotation
needs no downtime: put the new key first, restart, run ``manage.py rotate_encryption_keys`` (it
re-encrypts every registered column and the check value with the first key), then drop the old
key. ``make run`` generates a key file under ``var/``.

A wrong key must stop the console, never hand out garbage or fail one request at a time later:
``EncryptionCheck`` holds one value encrypted when the console first started; ``verify_keys``
decrypts it at start-up (web, worker, and Django's system checks before ``migrate``) and raises
``ImproperlyConfigured`` naming the variable when no configured key can.

Columns holding ciphertext register with ``register_encrypted_column`` (the domain registers its
own at start-up: the framework imports no domain code), so the rotation command finds them all.
"""

from __future__ import annotations

import threading

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError, connection, transaction

from console.env import ENCRYPTION_KEYS_VARIABLE as KEYS_VARIABLE

CHECK_PLAINTEXT = "inference-console encryption check v1"


class DecryptionError(Exception):
    """A stored value that none of the configured keys can decrypt."""


_lock = threading.Lock()
_cache: dict[tuple[str, ...], MultiFernet] = {}


def _fernet() -> MultiFernet:
    keys = tuple(settings.CONSOLE_ENCRYPTION_KEYS)
    if not keys:
        raise ImproperlyConfigured(f"{KEYS_VARIABLE} is empty: set it (or {KEYS_VARIABLE}_FILE) to one or more Fernet keys.")
    with _lock:
        fernet = _cache.get(keys)
        if fernet is None:
            fernet = _cache[keys] = MultiFernet([Fernet(key.encode()) for key in keys])
        return fernet


def encrypt(plaintext: str) -> str:
    return _fernet().encrypt(plaintext.encode("utf-8")).decode("ascii")


def decrypt(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode("ascii")).decode("utf-8")
    except (InvalidToken, ValueError) as exc:
        raise DecryptionError(f"none of the keys in {KEYS_VARIABLE} decrypts this value") from exc


def rotate(token: str) -> str:
    """``token`` re-encrypted with the first key (decrypted with whichever key made it)."""
    try:
        return _fernet().rotate(token.encode("ascii")).decode("ascii")
    except (InvalidToken, ValueError) as exc:
        raise DecryptionError(f"none of the keys in {KEYS_VARIABLE} decrypts this value") from exc


# --- columns holding ciphertext ---------------------------------------------------------------

_columns: list[tuple[type, str]] = []


def register_encrypted_column(model: type, field_name: str) -> None:
    if (model, field_name) not in _columns:
        _columns.append((model, field_name))


def encrypted_columns() -> list[tuple[type, str]]:
    return list(_columns)


# --- the start-up check -----------------------------------------------------------------------


def _check_table_exists(using: str = "default") -> bool:
    from console.models import EncryptionCheck

    with connection.cursor() as cursor:
        return EncryptionCheck._meta.db_table in connection.introspection.table_names(cursor)


def verify_keys() -> str:
    """Decrypt the stored check value (storing one on first start). Returns "created", "verified"
    or "no table" (before the first migrate). Raises ImproperlyConfigured, naming the variable,
    when the configured keys cannot decrypt it."""
    from console.models import EncryptionCheck

    try:
        if not _check_table_exists():
            return "no table"
    except DatabaseError:
        return "no table"
    row = EncryptionCheck.objects.filter(pk=1).first()
    if row is None:
        with transaction.atomic():
            _row, created = EncryptionCheck.objects.get_or_create(pk=1, defaults={"token": encrypt(CHECK_PLAINTEXT)})
        if created:
            return "created"
        row = EncryptionCheck.objects.get(pk=1)
    try:
        plaintext = decrypt(row.token)
    except DecryptionError:
        raise ImproperlyConfigured(
            f"{KEYS_VARIABLE} does not hold the key the stored secrets were encrypted with: the check value "
            "written when the console first started cannot be decrypted with any configured key. Set "
            f"{KEYS_VARIABLE} (or {KEYS_VARIABLE}_FILE) to the keys in use — after a rotation, keep the old key "
            "after the new one until `manage.py rotate_encryption_keys` has run."
        ) from None
    if plaintext != CHECK_PLAINTEXT:
        raise ImproperlyConfigured(f"{KEYS_VARIABLE}: the stored check value decrypts to an unexpected text.")
    return "verified"


def rotate_all() -> dict[str, int]:
    """Re-encrypt every registered column and the check value with the first key. Returns the
    number of values rewritten per ``app_label.Model.field``."""
    from console.models import EncryptionCheck

    counts: dict[str, int] = {}
    with transaction.atomic():
        for model, field_name in [(EncryptionCheck, "token"), *encrypted_columns()]:
            label = f"{model._meta.label}.{field_name}"
            counts[label] = 0
            for pk, token in model.objects.select_for_update().exclude(**{field_name: ""}).values_list("pk", field_name):
                model.objects.filter(pk=pk).update(**{field_name: rotate(token)})
                counts[label] += 1
    return counts
