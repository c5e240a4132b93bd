"""The access version and the decision cache: every change that can alter an access
decision bumps the version in the same transaction, so cached decisions die at once in every
process (see the package docstring)."""

from __future__ import annotations

import logging
import os
import threading
import time

from django.apps import apps
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import caches
from django.db import connection, transaction
from django.db.models import F
from django.db.models.signals import m2m_changed, post_delete, post_save
from django.test.signals import setting_changed
from guardian.models import GroupObjectPermissionBase, UserObjectPermissionBase

from console.access.models import AccessVersion, ApiToken, Grant

logger = logging.getLogger(__name__)

VERSION_KEY = "access:access-version"


_process_cache = None


def decision_cache():
    """The decision cache: ONE instance per process, shared by its threads (Django's Redis and
    LocMem backends are thread-safe). Not ``caches[alias]``: that instance lives in a context
    variable, and grpcio runs every call in a fresh copy of the context, so each check built a
    new cache, a new Redis connection pool and a new connection (measured: one TCP connection
    and handshake per check)."""
    global _process_cache
    if _process_cache is None:
        _process_cache = caches.create_connection(getattr(settings, "AUTHZ_CACHE_ALIAS", "default"))
    return _process_cache


def _forget_cache(*, setting, **kwargs) -> None:
    global _process_cache
    if setting in ("CACHES", "AUTHZ_CACHE_ALIAS"):
        _process_cache = None


setting_changed.connect(_forget_cache, dispatch_uid="authz-decision-cache")


def cache_is_shared() -> bool:
    """True when every web process sees the same cache (Redis), False for LocMem."""
    backend = type(decision_cache()).__module__
    return not (backend.endswith("locmem") or backend.endswith("dummy"))


def invalidate_decisions() -> None:
    """Drop every cached authorization decision, in every process.

    The database counter moves in the caller's transaction (it commits with the change, so a
    process never caches an old decision under the new version). With a shared cache the
    cached counter moves now and again after commit, for the same reason.
    """
    if not AccessVersion.objects.filter(pk=1).update(version=F("version") + 1):
        AccessVersion.objects.get_or_create(pk=1, defaults={"version": 1})
    watcher.mark_stale()
    transaction.on_commit(watcher.mark_stale)
    if cache_is_shared():
        _bump_cached_version()
        transaction.on_commit(_bump_cached_version)


def _bump_cached_version() -> None:
    cache = decision_cache()
    try:
        cache.incr(VERSION_KEY)
    except ValueError:
        cache.add(VERSION_KEY, time.time_ns(), timeout=None)


def shared_version() -> int:
    """The access version from the shared cache: one GET on a Redis client this cache instance
    keeps (Django's Redis backend builds a new client, with its table of ~80 response
    callbacks, for every operation: a third of a warm check's CPU, profiled). The value is the
    integer Django's Redis serializer stores as plain digits."""
    cache = decision_cache()
    reader = cache.__dict__.get("_authz_version_reader")
    if reader is None:
        client = cache._cache.get_client(write=False)  # noqa: SLF001 - see above
        reader = cache.__dict__["_authz_version_reader"] = (client, cache.make_and_validate_key(VERSION_KEY))
    client, key = reader
    raw = client.get(key)
    if raw is None:
        cache.add(VERSION_KEY, time.time_ns(), timeout=None)
        raw = client.get(key)
    return int(raw)


def _db_version() -> int:
    # A plain cursor: this runs on every cached decision (LocMem), the ORM would double its cost.
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT version FROM {AccessVersion._meta.db_table} WHERE id = 1")  # noqa: S608
        row = cursor.fetchone()
    return row[0] if row else 0


def read_version() -> int:
    return shared_version() if cache_is_shared() else _db_version()


class VersionWatcher:
    """The access version as this process last read it, kept fresh by a thread that re-reads it
    every ``AUTHZ_VERSION_POLL_MS``, so a warm check reads no database and no cache at all.

    A change made in this process marks the copy stale at once (and again when it commits):
    the next check reads the version itself, as every check does with the poll off (0). A
    change made in another process reaches this one within one poll interval; if the thread
    falls behind (three intervals without a read) checks read the version themselves again."""

    def __init__(self):
        self.value = 0
        self.read_at = 0.0
        self.stale = True
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = 0

    @staticmethod
    def interval() -> float:
        return getattr(settings, "AUTHZ_VERSION_POLL_MS", 0) / 1000

    def mark_stale(self) -> None:
        self.stale = True

    def current(self) -> int:
        interval = self.interval()
        if interval <= 0:
            return read_version()
        if self._pid != os.getpid():
            self._start()
        if self.stale or time.monotonic() - self.read_at > 3 * interval:
            return self.refresh()
        return self.value

    def refresh(self) -> int:
        # Cleared before reading: an invalidation that lands during the read marks it again.
        self.stale = False
        value = read_version()
        self.value, self.read_at = value, time.monotonic()
        return value

    def _start(self) -> None:
        with self._lock:
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()
            self.stale = True
            self._thread = threading.Thread(target=self._run, name="authz-version-watcher", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(max(self.interval(), 0.01))
            try:
                self.refresh()
            except Exception:  # noqa: BLE001 - the checks read the version themselves meanwhile
                logger.warning("reading the access version failed", exc_info=True)
                self.stale = True
                connection.close()


watcher = VersionWatcher()


def _invalidate_on_change(sender, **kwargs) -> None:
    invalidate_decisions()


def _invalidate_on_user_save(sender, instance, update_fields=None, **kwargs) -> None:
    # Logins touch last_login and password changes the hash: neither alters a decision.
    if update_fields is not None and set(update_fields) <= {"last_login", "password"}:
        return
    invalidate_decisions()


def _invalidate_on_membership(sender, action, **kwargs) -> None:
    if action in ("post_add", "post_remove", "post_clear"):
        invalidate_decisions()


def connect_signals() -> None:
    """Changes made outside the console's services (the Django admin, a shell, guardian's
    shortcuts) must drop cached decisions too; these receivers only invalidate, they audit
    nothing (the services do that explicitly)."""
    User = get_user_model()
    post_save.connect(_invalidate_on_user_save, sender=User, dispatch_uid="authz-user-save")
    post_delete.connect(_invalidate_on_change, sender=User, dispatch_uid="authz-user-delete")
    m2m_changed.connect(_invalidate_on_membership, sender=User.groups.through, dispatch_uid="authz-membership")
    for model in (ApiToken, Grant):
        post_delete.connect(_invalidate_on_change, sender=model, dispatch_uid=f"authz-{model.__name__}-delete")
    # Every object-permission table (guardian's direct-FK ones and its generic ones).
    for table in apps.get_models():
        if issubclass(table, UserObjectPermissionBase | GroupObjectPermissionBase):
            post_save.connect(_invalidate_on_change, sender=table, dispatch_uid=f"authz-{table.__name__}-save")
            post_delete.connect(_invalidate_on_change, sender=table, dispatch_uid=f"authz-{table.__name__}-del")
