"""People who sign in through an identity provider: linking provider accounts to console
users, and mirroring provider groups into teams and global roles.

Every sign-in mode (OpenID Connect, LDAP, a trusted gateway header) ends in the same three
calls, so the rules are the same whichever way a person arrives:

1. ``resolve_identity`` finds the console user linked to (issuer, subject), or creates one on
   first sign-in — refusing (and auditing) a user name that already belongs to a local account
   until an admin links the two with ``identity_link``;
2. ``sync_groups`` makes the person's mapped memberships match the groups the provider reports
   now: memberships the mappings gave and the provider no longer reports go, memberships an
   admin gave by hand stay;
3. ``identity_access_ended`` ends the sessions and revokes the API tokens of a person the
   provider refuses at a re-check or sync.

Each change is an audit event naming its source (``oidc``, ``ldap``, ``header``) and what
triggered it (``sign-in``, ``re-check``, ``sync``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from audit import services as audit
from console.access.authz.cache import invalidate_decisions
from console.access.models import ExternalIdentity, GroupMapping, IdentitySource, SyncedMembership
from console.access.services import _end_sessions
from console.access.tokens import tokens_revoke_all_for
from console.permissions import is_platform_admin

User = get_user_model()

SOURCES = {choice.value for choice in IdentitySource}


class IdentityRefused(Exception):
    """The provider vouched for the person but the console will not sign them in.

    ``message`` is safe to show on the sign-in page; ``reason`` is a short code for the audit
    trail and tests."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.message = message
        self.reason = reason


@dataclass(frozen=True)
class Claims:
    """What a provider says about a person, already verified by the sign-in mode."""

    source: str
    issuer: str
    subject: str
    username: str
    email: str = ""
    first_name: str = ""
    last_name: str = ""


def _clean_username(username: str) -> str:
    username = (username or "").strip()
    field = User._meta.get_field("username")
    if not username:
        raise IdentityRefused("The identity provider sent no user name.", "no_username")
    if len(username) > field.max_length:
        raise IdentityRefused("The user name the identity provider sent is too long.", "username_too_long")
    try:
        for validator in field.validators:
            validator(username)
    except ValidationError as exc:
        raise IdentityRefused(f"The user name {username!r} is not allowed here.", "username_invalid") from exc
    return username


def _refuse(claims: Claims, message: str, reason: str, user=None) -> IdentityRefused:
    audit.record(
        action="identity.sign_in_refused", actor_name=f"{claims.username or '(blank)'} via {claims.source}"[:150],
        outcome=audit.DENIED, target=user, target_type=None if user is not None else "user",
        target_repr=None if user is not None else claims.username,
        details={"source": claims.source, "issuer": claims.issuer, "subject": claims.subject,
                 "username": claims.username, "reason": reason},
    )
    return IdentityRefused(message, reason)


def resolve_identity(claims: Claims):
    """The console user ``claims`` stand for, created on first sign-in.

    Refusals (audited, then raised as ``IdentityRefused``): a user name that belongs to a
    console account not linked to this identity, a deactivated account, a service account.
    Refusal events commit even though the caller's sign-in fails (the audit write runs in its
    own transaction when none is open)."""
    if claims.source not in SOURCES:
        raise ValueError(f"unknown identity source {claims.source!r}")
    try:
        username = _clean_username(claims.username)
    except IdentityRefused as exc:
        raise _refuse(claims, exc.message, exc.reason) from None
    now = timezone.now()
    identity = (ExternalIdentity.objects.select_related("user")
                .filter(issuer=claims.issuer, subject=claims.subject).first())
    if identity is not None:
        user = identity.user
        if user.is_service_account:
            raise _refuse(claims, "Service accounts cannot sign in.", "service_account", user)
        if not user.is_active:
            raise _refuse(claims, "Your console account is deactivated. Ask a platform admin.", "inactive", user)
        changed = [f for f in ("email", "first_name", "last_name")
                   if getattr(claims, f) and getattr(user, f) != getattr(claims, f)]
        with transaction.atomic():
            for field in changed:
                setattr(user, field, getattr(claims, field))
            if changed:
                user.save(update_fields=changed)
            identity.last_sign_in_at = now
            identity.save(update_fields=["last_sign_in_at"])
        return user
    if User.objects.filter(username__iexact=username).exists():
        existing = User.objects.get(username__iexact=username)
        raise _refuse(
            claims,
            f"A console account named {username!r} exists and is not linked to this sign-in. "
            "Ask a platform admin to link the two.",
            "username_collision", existing,
        )
    try:
        with transaction.atomic():
            user = User(username=username, email=claims.email, first_name=claims.first_name[:150],
                        last_name=claims.last_name[:150])
            user.set_unusable_password()
            user.save()
            ExternalIdentity.objects.create(user=user, source=claims.source, issuer=claims.issuer,
                                            subject=claims.subject, last_sign_in_at=now)
            audit.record(action="identity.user_created", actor=user, target=user,
                         details={"source": claims.source, "issuer": claims.issuer, "subject": claims.subject})
    except IntegrityError:
        # Two first sign-ins at once: the other created the link; use it.
        identity = ExternalIdentity.objects.select_related("user").get(issuer=claims.issuer, subject=claims.subject)
        return identity.user
    return user


def _mapped_groups(source: str, external_groups: Iterable[str]) -> dict[int, set[str]]:
    """{console group id: the external groups that put the person in it}."""
    reported = {g.strip() for g in external_groups if g and g.strip()}
    folded = {g.casefold(): g for g in reported}
    wanted: dict[int, set[str]] = {}
    for mapping in GroupMapping.objects.filter(source=source):
        # Directories compare DNs and names case-insensitively; providers' group names are
        # matched the same way so "ML-Team" and "ml-team" are one group.
        original = folded.get(mapping.external_group.strip().casefold())
        if original is not None:
            wanted.setdefault(mapping.group_id, set()).add(original)
    return wanted


@transaction.atomic
def sync_groups(*, user, source: str, external_groups: Iterable[str], via: str,
                issuer: str = "", subject: str = "") -> dict[str, list[str]]:
    """Make ``user``'s memberships given by ``source``'s mappings match ``external_groups``.

    Returns ``{"added": [...], "removed": [...]}`` (console group names). A membership the
    person already had by hand is left as it is and never removed by a sync; one another source
    also gives stays while that source still gives it."""
    if source not in SOURCES:
        raise ValueError(f"unknown identity source {source!r}")
    external_groups = sorted({g.strip() for g in external_groups if g and g.strip()})
    wanted = _mapped_groups(source, external_groups)
    synced = {m.group_id: m for m in SyncedMembership.objects.select_for_update()
              .filter(user=user, source=source).select_related("group")}
    current = set(user.groups.values_list("pk", flat=True))
    names = dict(Group.objects.filter(pk__in=set(wanted) | set(synced)).values_list("pk", "name"))
    added: list[str] = []
    removed: list[str] = []
    for group_id, via_groups in wanted.items():
        row = synced.get(group_id)
        if row is None:
            if group_id in current:
                if not SyncedMembership.objects.filter(user=user, group_id=group_id).exists():
                    continue  # given by hand: not the sync's to manage
                # Another source gives it too: record ours so it stays while either gives it.
                SyncedMembership.objects.create(user=user, group_id=group_id, source=source,
                                                external_groups=sorted(via_groups))
                continue
            SyncedMembership.objects.create(user=user, group_id=group_id, source=source,
                                            external_groups=sorted(via_groups))
            user.groups.add(group_id)
            added.append(names[group_id])
            audit.record(action="identity.group_added", actor=user, target=user,
                         details={"source": source, "via": via, "group": names[group_id],
                                  "external_groups": sorted(via_groups), "issuer": issuer, "subject": subject})
        else:
            if sorted(via_groups) != list(row.external_groups):
                row.external_groups = sorted(via_groups)
                row.save(update_fields=["external_groups"])
            if group_id not in current:
                # Taken out by hand while the mapping still gives it: the provider's groups
                # decide mapped memberships (delete the mapping to stop that).
                user.groups.add(group_id)
                added.append(names[group_id])
                audit.record(action="identity.group_added", actor=user, target=user,
                             details={"source": source, "via": via, "group": names[group_id],
                                      "external_groups": sorted(via_groups), "issuer": issuer, "subject": subject})
    for group_id, row in synced.items():
        if group_id in wanted:
            continue
        row.delete()
        still_given = SyncedMembership.objects.filter(user=user, group_id=group_id).exists()
        if not still_given and group_id in current:
            user.groups.remove(group_id)
            removed.append(names[group_id])
            audit.record(action="identity.group_removed", actor=user, target=user,
                         details={"source": source, "via": via, "group": names[group_id],
                                  "external_groups": list(row.external_groups), "issuer": issuer,
                                  "subject": subject})
    identity_filter = {"user": user, "source": source}
    if issuer and subject:
        identity_filter.update(issuer=issuer, subject=subject)
    ExternalIdentity.objects.filter(**identity_filter).update(groups=external_groups, last_checked_at=timezone.now())
    if added or removed:
        invalidate_decisions()
    return {"added": sorted(added), "removed": sorted(removed)}


@transaction.atomic
def identity_access_ended(*, user, source: str, via: str, reason: str) -> dict[str, int]:
    """The provider refused ``user`` at a re-check or sync (account disabled, locked, removed,
    refresh refused): every console session ends and every API token is revoked. The account
    itself stays, so a person reinstated at the provider signs in again."""
    sessions = _end_sessions(user)
    tokens = tokens_revoke_all_for(actor=None, user=user, reason=f"refused by the identity provider ({source})")
    audit.record(action="identity.access_ended", actor_name=f"identity provider ({source})", target=user,
                 outcome=audit.DENIED,
                 details={"source": source, "via": via, "reason": reason, "sessions_ended": sessions,
                          "tokens_revoked": tokens})
    invalidate_decisions()
    return {"sessions_ended": sessions, "tokens_revoked": tokens}


def _require_admin(actor) -> None:
    if not is_platform_admin(actor):
        raise PermissionDenied("Only platform admins may manage sign-in links and group mappings.")


@transaction.atomic
def identity_link(*, actor, user, source: str, issuer: str, subject: str) -> ExternalIdentity:
    """Link an identity-provider account to an existing console account (the way to let a
    local user sign in through the provider when the user names collide)."""
    _require_admin(actor)
    errors: dict[str, list[str]] = {}
    if source not in SOURCES:
        errors["source"] = ["Choose OpenID Connect, LDAP or the gateway header."]
    if not (issuer or "").strip():
        errors["issuer"] = ["Give the provider's issuer (OIDC), server (LDAP) or gateway name."]
    if not (subject or "").strip():
        errors["subject"] = ["Give the person's subject at the provider (OIDC sub, LDAP DN, header user)."]
    if errors:
        raise ValidationError(errors)
    if user.is_service_account:
        raise ValidationError({"user": ["Service accounts cannot sign in through a provider."]})
    issuer, subject = issuer.strip(), subject.strip()
    taken = ExternalIdentity.objects.filter(issuer=issuer, subject=subject).select_related("user").first()
    if taken is not None:
        raise ValidationError({"subject": [f"Already linked to {taken.user.username}."]})
    identity = ExternalIdentity.objects.create(user=user, source=source, issuer=issuer, subject=subject,
                                               linked_by_name=actor.username)
    audit.record(action="identity.link", actor=actor, target=user,
                 details={"source": source, "issuer": issuer, "subject": subject})
    return identity


@transaction.atomic
def identity_unlink(*, actor, identity: ExternalIdentity) -> None:
    """Remove a link: that provider account no longer signs in as this user (memberships the
    source gave stay until the next sync of another identity or an admin removes them)."""
    _require_admin(actor)
    user = identity.user
    details = {"source": identity.source, "issuer": identity.issuer, "subject": identity.subject}
    identity.delete()
    audit.record(action="identity.unlink", actor=actor, target=user, details=details)


@transaction.atomic
def group_mapping_create(*, actor, source: str, external_group: str, group: Group) -> GroupMapping:
    """Members of ``external_group`` at ``source`` join ``group`` (a team or a global role) at
    their next sign-in, re-check or sync."""
    _require_admin(actor)
    external_group = (external_group or "").strip()
    errors: dict[str, list[str]] = {}
    if source not in SOURCES:
        errors["source"] = ["Choose OpenID Connect, LDAP or the gateway header."]
    if not external_group:
        errors["external_group"] = ["Give the group's name (OIDC groups claim value, LDAP group DN, header value)."]
    elif len(external_group) > 300:
        errors["external_group"] = ["At most 300 characters."]
    if errors:
        raise ValidationError(errors)
    if GroupMapping.objects.filter(source=source, external_group__iexact=external_group, group=group).exists():
        raise ValidationError({"external_group": ["This group is already mapped to that team or role."]})
    mapping = GroupMapping.objects.create(source=source, external_group=external_group, group=group,
                                          created_by_name=actor.username)
    audit.record(action="identity.mapping_create", actor=actor, target=mapping, target_type="group_mapping",
                 details={"source": source, "external_group": external_group, "group": group.name})
    return mapping


@transaction.atomic
def group_mapping_delete(*, actor, mapping: GroupMapping) -> None:
    """Stop mapping a group. People it put in the team leave at their next sign-in, re-check or
    sync (the sync removes what no mapping gives any more)."""
    _require_admin(actor)
    details = {"source": mapping.source, "external_group": mapping.external_group, "group": mapping.group.name}
    target_id = mapping.pk
    mapping.delete()
    audit.record(action="identity.mapping_delete", actor=actor, target_type="group_mapping",
                 target_id=str(target_id), target_repr=f"{details['external_group']} → {details['group']}",
                 details=details)
