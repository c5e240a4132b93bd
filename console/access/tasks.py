"""Thin Celery tasks of access control."""

from __future__ import annotations

from console.access import grants, oidc
from console.celery import idempotent_task


@idempotent_task
def grants_expire_task() -> int:
    """Periodic (beat): remove the permission rows of expired grants and audit each expiry.
    Enforcement never waits for it: access already ended at the grant's expiry."""
    return grants.grants_expire()


@idempotent_task
def grants_expiring_notify_task() -> int:
    """Periodic (beat, hourly): notify the channels of grants about to end (once per grant and expiry)."""
    return grants.grants_expiring_notify()


@idempotent_task
def drain_allows_task() -> int:
    """Periodic (beat, every AUTHZ_ALLOW_DRAIN_SECONDS): staged allow decisions into the trail,
    after shipping the allow journals stopped processes left on this host (``make run``'s web
    process and worker share one; in Kubernetes each authorizer pod's own processes do it)."""
    from console.access.authz.allows import allows_drain
    from console.access.authz.journal import adopt_orphans

    adopt_orphans()
    return allows_drain(max_seconds=30)


@idempotent_task
def ldap_sync_task() -> dict:
    """Periodic (beat, every LDAP_SYNC_SECONDS): re-read LDAP-linked people (groups, lock, removal)."""
    from console.access.ldap import enabled, ldap_sync

    # python-ldap is only needed (and may only be installed) where LDAP sign-in is configured.
    if not enabled():
        return {}
    return ldap_sync().as_dict()


@idempotent_task
def oidc_recheck_task() -> dict[str, int]:
    """Periodic (beat): re-check at the OpenID Connect provider every identity holding a refresh
    token, so people who only use API tokens lose them too when the provider refuses them."""
    return oidc.oidc_recheck_due()
