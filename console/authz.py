"""Inference authorization for Envoy's HTTP ext_authz (filled in below) and the access
version that invalidates cached decisions."""

from __future__ import annotations

from django.conf import settings
from django.core.cache import caches
from django.db import transaction
from django.db.models import F

from console.models import AccessVersion

VERSION_KEY = "console:access-version"


def decision_cache():
    return caches[getattr(settings, "AUTHZ_CACHE_ALIAS", "default")]


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
    if cache_is_shared():
        _bump_cached_version()
        transaction.on_commit(_bump_cached_version)


def _bump_cached_version() -> None:
    cache = decision_cache()
    try:
        cache.incr(VERSION_KEY)
    except ValueError:
        import time

        cache.add(VERSION_KEY, time.time_ns(), timeout=None)
