"""Audit of authentication events. Django reports logins through its auth signals, which are
the only hook for them; everything else is audited explicitly by services."""

from __future__ import annotations

from axes.signals import user_locked_out
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from audit import services as audit


@receiver(user_logged_in)
def _audit_login(sender, request, user, **kwargs):
    audit.record(action="login.success", actor=user, target=user)


@receiver(user_logged_out)
def _audit_logout(sender, request, user, **kwargs):
    if user is not None:
        audit.record(action="logout", actor=user, target=user)


@receiver(user_login_failed)
def _audit_login_failed(sender, credentials, request=None, **kwargs):
    username = str((credentials or {}).get("username", ""))[:150]
    audit.record(
        action="login.failed",
        actor_name=username or "(blank)",
        outcome=audit.FAILURE,
        target_type="user",
        target_repr=username,
        details={"reason": "invalid credentials or inactive account"},
    )


@receiver(user_locked_out)
def _audit_lockout(sender, request=None, username=None, ip_address=None, **kwargs):
    audit.record(
        action="login.locked_out",
        actor_name=str(username or "")[:150],
        outcome=audit.DENIED,
        target_type="user",
        target_repr=str(username or ""),
        details={"ip_address": ip_address},
    )
