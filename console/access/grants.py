"""Roles and grants: the writes of access control.

A role is a bundle of object permissions (actions of ``console.permissions``):

=========  ==============================  ===========================================
role       on a project or an endpoint     on a registered model
=========  ==============================  ===========================================
Viewer     view                            view
Deployer   view, deploy                    view, deploy
Owner      view, deploy, infer, manage     view, deploy, manage
Caller     view, infer                     (not offered: models are not called)
=========  ==============================  ===========================================

A project grant covers everything in the project (the chokepoint follows an endpoint's or a
model's project); Deployer on a project also lets its holder register models there.

A ``Grant`` row is the record; guardian's direct-FK tables are the index enforcement reads.
Each service writes both and its audit event in one transaction. The permission rows of a
(principal, object) pair are recomputed from that pair's live grants (``_sync_index``): a
row's ``expires_at`` is the latest expiry among the live grants that give the permission, so
access ends the second the last of them expires, with no task involved. The periodic
``grants_expire`` only tidies up expired rows and records the expiry in the audit trail.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import Group, Permission
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models, transaction
from django.db.models import Q
from django.utils import timezone

from audit import services as audit
from console.access.authz.cache import invalidate_decisions
from console.access.models import Grant
from console.models import User
from console.permissions import actions_of, can, is_platform_admin, protection_for
from endpoints.models import Endpoint, Notification, Project, RegisteredModel
from endpoints.services.notifications import notify

ROLE_ACTIONS: dict[str, tuple[str, ...]] = {
    Grant.Role.VIEWER: ("view",),
    Grant.Role.DEPLOYER: ("view", "deploy"),
    Grant.Role.OWNER: ("view", "deploy", "infer", "manage"),
    Grant.Role.CALLER: ("view", "infer"),
}

ROLE_DESCRIPTIONS: dict[str, str] = {
    Grant.Role.VIEWER: "Sees the object and everything in it.",
    Grant.Role.DEPLOYER: "Viewer, plus creates and changes endpoints and registers models.",
    Grant.Role.OWNER: "Deployer and Caller, plus manages who has access.",
    Grant.Role.CALLER: "Viewer, plus sends inference requests.",
}


def _target_field(target) -> str:
    if isinstance(target, Project):
        return "project"
    if isinstance(target, RegisteredModel):
        return "registered_model"
    if isinstance(target, Endpoint):
        return "endpoint"
    raise ValidationError({"object": ["Grants are given on projects, registered models and endpoints."]})


def actions_for(role: str, target_model) -> tuple[str, ...]:
    """The actions ``role`` gives on objects of ``target_model`` (those the model defines)."""
    defined = actions_of(target_model)
    return tuple(action for action in ROLE_ACTIONS[role] if action in defined)


def roles_for(target_model) -> list[tuple[str, str]]:
    """Role choices offered on objects of ``target_model`` (Caller only where objects can be
    called)."""
    callable_ = "infer" in actions_for(Grant.Role.OWNER, target_model)
    return [(value, label) for value, label in Grant.Role.choices if value != Grant.Role.CALLER or callable_]


def codename(action: str, target_model) -> str:
    return f"{action}_{target_model._meta.model_name}"


def _permissions(target_model, actions) -> dict[str, Permission]:
    codes = [codename(action, target_model) for action in actions]
    found = Permission.objects.filter(content_type__app_label=target_model._meta.app_label, codename__in=codes)
    return {perm.codename: perm for perm in found}


def live_q(now=None, prefix: str = "") -> Q:
    now = now or timezone.now()
    return Q(**{f"{prefix}revoked_at__isnull": True}) & (
        Q(**{f"{prefix}expires_at__isnull": True}) | Q(**{f"{prefix}expires_at__gt": now})
    )


def can_manage(user, target) -> bool:
    """May ``user`` give and revoke access on ``target``? Platform admins, and holders of the
    manage permission on it (Owners, directly or through the project)."""
    return is_platform_admin(user) or can(user, target, "manage")


def _sync_index(*, user: User | None, group: Group | None, target, now=None) -> None:
    """Make the guardian rows of (principal, target) match the live grants exactly."""
    now = now or timezone.now()
    field = _target_field(target)
    model = type(target)
    protection = protection_for(model)
    principal_filter = {"user": user} if user is not None else {"group": group}
    live = Grant.objects.filter(live_q(now), **principal_filter, **{field: target})
    wanted: dict[str, object] = {}  # codename -> latest expiry (None: never)
    forever = object()
    for grant in live:
        for action in actions_for(grant.role, model):
            code = codename(action, model)
            current = wanted.get(code)
            if grant.expires_at is None or current is forever:
                wanted[code] = forever
            elif current is None or grant.expires_at > current:
                wanted[code] = grant.expires_at
    table = protection.user_perms if user is not None else protection.group_perms
    existing = {row.permission.codename: row for row in
                table.objects.filter(content_object=target, **principal_filter).select_related("permission")}
    all_actions = {a for actions in ROLE_ACTIONS.values() for a in actions}
    perms = _permissions(model, all_actions)
    for code, row in existing.items():
        if code not in wanted:
            row.delete()
    for code, expiry in wanted.items():
        expires_at = None if expiry is forever else expiry
        row = existing.get(code)
        if row is None:
            table.objects.create(content_object=target, permission=perms[code], expires_at=expires_at,
                                 **principal_filter)
        elif row.expires_at != expires_at:
            row.expires_at = expires_at
            row.save(update_fields=["expires_at"])


def _details(grant: Grant, model) -> dict:
    return {
        "principal_type": "user" if grant.user_id else "group",
        "principal": grant.user.username if grant.user_id else grant.group.name,
        "principal_id": grant.user_id or grant.group_id,
        "role": grant.role,
        "object_type": grant.object_kind,
        "object": grant.object_label,
        "object_id": grant.target.pk,
        "permissions": [codename(a, model) for a in actions_for(grant.role, model)],
        "expires_at": grant.expires_at.isoformat() if grant.expires_at else None,
        "reason": grant.reason,
    }


def _project_of(target):
    return target if _target_field(target) == "project" else target.project


@transaction.atomic
def grant_create(*, actor, role: str, target, user: User | None = None, group: Group | None = None,
                 expires_at=None, reason: str = "") -> Grant:
    """Give ``role`` on ``target`` (a project, registered model or endpoint) to a user or a
    group, optionally until ``expires_at``. The actor must be able to manage the target."""
    if actor is not None and not can_manage(actor, target):
        raise PermissionDenied("You may not manage access to this object.")
    field = _target_field(target)
    if (user is None) == (group is None):
        raise ValidationError({"principal": ["Give the role to exactly one user or one team."]})
    if role not in ROLE_ACTIONS:
        raise ValidationError({"role": [f"Unknown role '{role}'."]})
    if role not in dict(roles_for(type(target))):
        raise ValidationError({"role": [f"The {Grant.Role(role).label} role does not apply to a "
                                        f"{type(target)._meta.verbose_name}."]})
    if user is not None and not user.is_active:
        raise ValidationError({"principal": ["The account is deactivated."]})
    now = timezone.now()
    if expires_at is not None and expires_at <= now:
        raise ValidationError({"expires_at": ["The expiry must be in the future."]})
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": ["Say why the access is needed (it goes into the audit trail)."]})
    principal_filter = {"user": user} if user is not None else {"group": group}
    if Grant.objects.filter(live_q(now), role=role, **principal_filter, **{field: target}).exists():
        raise ValidationError({"role": ["This principal already holds this role here; revoke it first to "
                                        "change its expiry."]})
    grant = Grant.objects.create(
        role=role, reason=reason[:300], expires_at=expires_at, granted_by=actor,
        granted_by_name=actor.get_username() if actor is not None else "system",
        **principal_filter, **{field: target},
    )
    _sync_index(user=user, group=group, target=target, now=now)
    audit.record(action="grant.create", actor=actor, actor_name=None if actor is not None else "system",
                 target=grant, target_repr=str(grant)[:512], project=_project_of(target),
                 details=_details(grant, type(target)))
    _invalidate()
    return grant


@transaction.atomic
def grant_revoke(*, actor, grant: Grant, reason: str = "") -> Grant:
    """End a grant now. Revoking a grant that already ended changes nothing."""
    grant = Grant.objects.select_for_update().get(pk=grant.pk)
    target = grant.target
    if actor is not None and not can_manage(actor, target):
        raise PermissionDenied("You may not manage access to this object.")
    if grant.revoked_at is not None:
        return grant
    now = timezone.now()
    grant.revoked_at = now
    grant.revoked_by = actor
    grant.revoked_by_name = actor.get_username() if actor is not None else "system"
    grant.revoke_reason = (reason or "").strip()[:300]
    grant.save(update_fields=["revoked_at", "revoked_by", "revoked_by_name", "revoke_reason"])
    _sync_index(user=grant.user, group=grant.group, target=target, now=now)
    details = _details(grant, type(target)) | {"revoke_reason": grant.revoke_reason}
    audit.record(action="grant.revoke", actor=actor, actor_name=None if actor is not None else "system",
                 target=grant, target_repr=str(grant)[:512], project=_project_of(target), details=details)
    _invalidate()
    return grant


def grants_expire(*, now=None) -> int:
    """Tidy up after expired grants: remove their permission rows and audit each expiry once.

    Access already ended at ``expires_at`` (enforcement filters on it); this only keeps the
    index small and the trail complete. Safe to run twice or concurrently (each grant is
    claimed with a conditional UPDATE).
    """
    now = now or timezone.now()
    done = 0
    due = Grant.objects.filter(revoked_at__isnull=True, expires_at__lte=now, expiry_recorded_at__isnull=True)
    for grant_id in list(due.values_list("pk", flat=True)):
        with transaction.atomic():
            claimed = Grant.objects.filter(pk=grant_id, expiry_recorded_at__isnull=True).update(
                expiry_recorded_at=now)
            if not claimed:
                continue
            grant = Grant.objects.select_related("user", "group").get(pk=grant_id)
            target = grant.target
            _sync_index(user=grant.user, group=grant.group, target=target, now=now)
            audit.record(action="grant.expire", actor=None, actor_name="system", target=grant,
                         target_repr=str(grant)[:512], project=_project_of(target),
                         details=_details(grant, type(target)))
            done += 1
    # Rows left expired by other means (assigned directly with an expiry) go too.
    with transaction.atomic():
        for protection in _protections():
            for table in (protection.user_perms, protection.group_perms):
                table.objects.filter(expires_at__lte=now).delete()
    return done


def _protections():
    return [protection_for(model) for model in (Project, RegisteredModel, Endpoint)]


def _invalidate() -> None:
    invalidate_decisions()


def grants_on(target, *, include_ended: bool = False) -> models.QuerySet:
    """Grants recorded on ``target`` (live ones only unless ``include_ended``)."""
    qs = Grant.objects.filter(**{_target_field(target): target}).select_related(
        "user", "group", "project", "registered_model__project", "endpoint__project")
    return qs if include_ended else qs.filter(live_q())


def grants_expiring_notify(*, now=None) -> int:
    """Notify once per grant that ends within ``GRANT_EXPIRY_NOTICE_DAYS`` (the key names the grant
    and its expiry, so an extended grant is notified again when its new end comes near). Returns
    how many notifications were recorded."""
    now = now or timezone.now()
    horizon = now + timedelta(days=settings.GRANT_EXPIRY_NOTICE_DAYS)
    sent = 0
    expiring = (Grant.objects.filter(revoked_at__isnull=True, expires_at__gt=now, expires_at__lte=horizon)
                .order_by("expires_at")
                .select_related("user", "group", "project", "registered_model__project", "endpoint__project"))
    for grant in expiring:
        target = grant.target
        project = grant.project or getattr(target, "project", None)
        left = grant.expires_at - now
        when = f"in {left.days} days" if left.days >= 1 else f"in {int(left.total_seconds() // 3600)} hours"
        if notify(key=f"grant_expiring:{grant.pk}:{grant.expires_at.isoformat()}",
                  event=Notification.Event.GRANT_EXPIRING, state="expiring", project=project,
                  subject=f"[inference-console] Grant ending {when}: {grant.get_role_display()} on {grant.object_label}",
                  body=(f"{grant.principal_label} holds {grant.get_role_display()} on {grant.object_label} until "
                        f"{grant.expires_at:%Y-%m-%d %H:%M} UTC ({when}). Extend it on the access page if it is "
                        "still needed; otherwise access ends then."),
                  payload={"grant_id": grant.pk, "role": grant.role, "principal": grant.principal_label,
                           "target": grant.object_label, "expires_at": grant.expires_at.isoformat()}) is not None:
            sent += 1
    return sent
