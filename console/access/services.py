"""Writes of access control: users, service accounts and teams. Each service runs in one
transaction with its audit event."""

from __future__ import annotations

from axes.helpers import get_cool_off
from axes.models import AccessAttempt
from axes.utils import reset
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.auth.tokens import default_token_generator
from django.contrib.sessions.models import Session
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Max, Sum
from django.urls import reverse
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from audit import services as audit
from console.access import grants as grant_services
from console.access.authz.cache import invalidate_decisions
from console.access.roles import GLOBAL_ROLES
from console.access.tokens import tokens_revoke_all_for
from console.permissions import is_platform_admin


@transaction.atomic
def user_create(
    *,
    actor,
    username: str,
    password: str | None = None,
    email: str = "",
    first_name: str = "",
    last_name: str = "",
    is_service_account: bool = False,
    is_superuser: bool = False,
    global_roles: list[str] | tuple[str, ...] = (),
    description: str = "",
):
    """Create a person (with a password) or a service account (never a usable password)."""
    User = get_user_model()
    user = User(
        username=username,
        email=email,
        first_name=first_name,
        last_name=last_name,
        is_service_account=is_service_account,
        is_superuser=is_superuser,
        is_staff=is_superuser,
        description=description,
    )
    if password and not is_service_account:
        user.set_password(password)
    else:
        user.set_unusable_password()
    user.full_clean(exclude=["password"])
    user.save()
    groups = list(Group.objects.filter(name__in=global_roles))
    user.groups.set(groups)
    audit.record(
        action="serviceaccount.create" if is_service_account else "user.create",
        actor=actor,
        actor_name=None if actor is not None else "system",
        target=user,
        details={"new": {"username": username, "email": email, "global_roles": sorted(g.name for g in groups),
                         "is_superuser": is_superuser}},
    )
    return user


@transaction.atomic
def user_set_password(*, actor, user, password: str) -> None:
    user.set_password(password)
    user.save(update_fields=["password"])
    audit.record(action="user.password_set", actor=actor, actor_name=None if actor is not None else "system",
                 target=user)


# --- people, service accounts and teams (access control) -----------------------------------------

def _invalidate_decisions() -> None:
    invalidate_decisions()


def _require_admin(actor) -> None:
    if actor is not None and not is_platform_admin(actor):
        raise PermissionDenied("Only platform admins may manage users and teams.")


def live_sessions_of(user):
    """The unexpired database sessions signed in as ``user`` (the user id is inside the
    encoded data, so every live session is decoded)."""
    for session in Session.objects.filter(expire_date__gt=timezone.now()).iterator():
        if str(session.get_decoded().get("_auth_user_id")) == str(user.pk):
            yield session


def _end_sessions(user) -> int:
    """Delete every session signed in as ``user`` (database sessions)."""
    ended = 0
    for session in live_sessions_of(user):
        session.delete()
        ended += 1
    return ended


@transaction.atomic
def user_deactivate(*, actor, user, reason: str = ""):
    """Switch an account off: it can no longer sign in, its sessions end now and all its API
    tokens are revoked (each revocation audited). Cached authorization decisions drop."""
    _require_admin(actor)
    if actor is not None and actor.pk == user.pk:
        raise ValidationError("You cannot deactivate your own account.")
    if not user.is_active:
        return user
    user.is_active = False
    user.save(update_fields=["is_active"])
    sessions = _end_sessions(user)
    tokens = tokens_revoke_all_for(actor=actor, user=user, reason="account deactivated")
    audit.record(action="user.deactivate", actor=actor, actor_name=None if actor is not None else "system",
                 target=user, details={"reason": reason, "sessions_ended": sessions, "tokens_revoked": tokens})
    _invalidate_decisions()
    return user


@transaction.atomic
def user_reactivate(*, actor, user):
    """Let a deactivated account sign in again (its old tokens stay revoked)."""
    _require_admin(actor)
    if user.is_active:
        return user
    user.is_active = True
    user.save(update_fields=["is_active"])
    audit.record(action="user.reactivate", actor=actor, actor_name=None if actor is not None else "system",
                 target=user)
    _invalidate_decisions()
    return user


@transaction.atomic
def user_set_global_roles(*, actor, user, roles):
    """Give ``user`` exactly the global roles named (Platform admin, Auditor, Ingester)."""
    _require_admin(actor)
    roles = sorted(set(roles))
    unknown = [r for r in roles if r not in GLOBAL_ROLES]
    if unknown:
        raise ValidationError({"global_roles": [f"Unknown role: {', '.join(unknown)}."]})
    if actor is not None and actor.pk == user.pk and "Platform admin" not in roles and not user.is_superuser:
        raise ValidationError({"global_roles": ["You cannot remove your own Platform admin role."]})
    old = sorted(g.name for g in user.groups.filter(name__in=list(GLOBAL_ROLES)))
    if old == roles:
        return user
    user.groups.remove(*Group.objects.filter(name__in=[r for r in old if r not in roles]))
    user.groups.add(*Group.objects.filter(name__in=[r for r in roles if r not in old]))
    audit.record(action="user.roles_set", actor=actor, actor_name=None if actor is not None else "system",
                 target=user, details={"old": old, "new": roles})
    _invalidate_decisions()
    return user


def site_root(request) -> str:
    """The console's own address as the browser reached it, for links in one-time invites."""
    return request.build_absolute_uri("/").rstrip("/")


def user_invite_link(*, user, base_url: str = "") -> str:
    """A one-time link where an invited person sets their password (valid until they sign in
    or for PASSWORD_RESET_TIMEOUT). The admin passes it on; the console sends no mail."""
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    path = reverse("access:invite-accept", kwargs={"uidb64": uid, "token": default_token_generator.make_token(user)})
    return f"{base_url}{path}"


def _check_team_name(name: str, *, team=None) -> str:
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": ["Give the team a name."]})
    if len(name) > 150:
        raise ValidationError({"name": ["At most 150 characters."]})
    if name in GLOBAL_ROLES:
        raise ValidationError({"name": ["That is the name of a global role."]})
    if Group.objects.filter(name__iexact=name).exclude(pk=getattr(team, "pk", None)).exists():
        raise ValidationError({"name": ["A team or role with this name exists."]})
    return name


@transaction.atomic
def team_create(*, actor, name: str, members=()) -> Group:
    """A team (a Django group): grant roles to it rather than to each member."""
    _require_admin(actor)
    group = Group.objects.create(name=_check_team_name(name))
    members = list(members)
    if members:
        group.user_set.add(*members)
    audit.record(action="team.create", actor=actor, actor_name=None if actor is not None else "system",
                 target=group, target_type="team", details={"name": group.name,
                                                            "members": sorted(m.username for m in members)})
    if members:
        _invalidate_decisions()
    return group


def _check_team(group) -> None:
    if group.name in GLOBAL_ROLES:
        raise ValidationError("Global roles are given on the user's page, not as team membership.")


@transaction.atomic
def team_add_member(*, actor, team: Group, user) -> None:
    """Add ``user`` to ``team``: they gain its grants at once."""
    _require_admin(actor)
    _check_team(team)
    if team.user_set.filter(pk=user.pk).exists():
        return
    team.user_set.add(user)
    audit.record(action="team.member_add", actor=actor, actor_name=None if actor is not None else "system",
                 target=team, target_type="team", details={"team": team.name, "user": user.username,
                                                           "user_id": user.pk})
    _invalidate_decisions()


@transaction.atomic
def team_remove_member(*, actor, team: Group, user) -> None:
    """Remove ``user`` from ``team``: they lose its grants at once."""
    _require_admin(actor)
    _check_team(team)
    if not team.user_set.filter(pk=user.pk).exists():
        return
    team.user_set.remove(user)
    audit.record(action="team.member_remove", actor=actor, actor_name=None if actor is not None else "system",
                 target=team, target_type="team", details={"team": team.name, "user": user.username,
                                                           "user_id": user.pk})
    _invalidate_decisions()


@transaction.atomic
def team_rename(*, actor, team: Group, name: str) -> Group:
    """Give a team another name (its members and grants stay)."""
    _require_admin(actor)
    _check_team(team)
    old = team.name
    name = _check_team_name(name, team=team)
    if name == old:
        return team
    team.name = name
    team.save(update_fields=["name"])
    audit.record(action="team.update", actor=actor, actor_name=None if actor is not None else "system",
                 target=team, target_type="team", details={"old": {"name": old}, "new": {"name": name}})
    return team


@transaction.atomic
def team_delete(*, actor, team: Group) -> dict:
    """Delete a team. Its live grants are revoked first, each audited as a revocation (so the
    trail says who lost which access, and when); then the team and its memberships go. Returns
    what was removed (names of members, number of grants revoked)."""
    _require_admin(actor)
    _check_team(team)
    team = Group.objects.select_for_update().get(pk=team.pk)
    live = list(team.grants.filter(grant_services.live_q()))
    for grant in live:
        grant_services.grant_revoke(actor=actor, grant=grant, reason=f"team {team.name} deleted")
    members = sorted(team.user_set.values_list("username", flat=True))
    removed = {"members": members, "grants_revoked": len(live),
               "grant_records_removed": team.grants.count()}
    audit.record(action="team.delete", actor=actor, actor_name=None if actor is not None else "system",
                 target=team, target_type="team", details={"old": {"name": team.name}, **removed})
    team.delete()
    _invalidate_decisions()
    return removed


# --- sign-in help: reset and unlock (people only) --------------------------------------------------

def sign_in_lockout(user) -> dict | None:
    """The live django-axes lockout of ``user``'s username, or None.

    Axes counts failures per (username, address) (``AXES_LOCKOUT_PARAMETERS``), within the
    cool-off window: an address is locked once its failures reach ``AXES_FAILURE_LIMIT``, until
    its latest failure plus ``AXES_COOLOFF_TIME`` (for ever when that is None). Returns the
    worst address's failure count, how many addresses are locked and when the last lock lifts.
    """
    if not settings.AXES_ENABLED:
        return None
    cool_off = get_cool_off()
    attempts = AccessAttempt.objects.filter(username=user.get_username())
    if cool_off is not None:
        attempts = attempts.filter(attempt_time__gte=timezone.now() - cool_off)
    per_address = attempts.values("ip_address").annotate(failures=Sum("failures_since_start"),
                                                         last=Max("attempt_time"))
    locked = [row for row in per_address if row["failures"] >= settings.AXES_FAILURE_LIMIT]
    if not locked:
        return None
    return {
        "failures": max(row["failures"] for row in locked),
        "addresses": len(locked),
        "until": None if cool_off is None else max(row["last"] for row in locked) + cool_off,
    }


def _clear_sign_in_attempts(user) -> int:
    """Delete every django-axes attempt record of ``user``'s username, from every address
    (the permanent failure log stays)."""
    username = user.get_username()
    if not username:  # axes would read "no filter" as "every record"
        return 0
    return reset(username=username)


def sign_in_reset_refusal(*, actor, user) -> str | None:
    """Why ``actor`` may not reset ``user``'s sign-in, or None when they may."""
    if user.is_service_account:
        return "Service accounts never sign in; they use API tokens."
    if not user.is_active:
        return "This account is deactivated: reactivate it first, then reset its sign-in."
    if actor is not None and actor.pk == user.pk:
        return ("You cannot reset your own sign-in (you would lose your session and password); "
                "ask another platform admin.")
    if user.is_superuser and actor is not None and not actor.is_superuser:
        return "Only a superuser may reset a superuser's sign-in."
    return None


def user_password_set_recorded(*, user, via: str) -> None:
    """Audit that ``user`` chose a password (through an invite or sign-in reset link); the
    caller commits it together with the password."""
    audit.record(action="user.password_set", actor=user, target=user, details={"via": via})


@transaction.atomic
def user_sign_in_reset(*, actor, user, reason: str = ""):
    """Help a person who cannot sign in: their password becomes unusable, their sessions end,
    every earlier invite link stops working (the links are bound to the password hash) and
    their django-axes lockout is lifted. The caller then hands them a new one-time link
    (``user_invite_link``). API tokens are left alone."""
    _require_admin(actor)
    refusal = sign_in_reset_refusal(actor=actor, user=user)
    if refusal:
        raise ValidationError(refusal)
    lockout = sign_in_lockout(user)
    had_password = user.has_usable_password()
    user.set_unusable_password()
    user.save(update_fields=["password"])
    sessions = _end_sessions(user)
    attempts = _clear_sign_in_attempts(user)
    audit.record(action="user.sign_in_reset", actor=actor, actor_name=None if actor is not None else "system",
                 target=user, details={"reason": reason, "had_usable_password": had_password,
                                       "sessions_ended": sessions, "lockout_attempts_cleared": attempts,
                                       "was_locked_out": lockout is not None})
    return user


@transaction.atomic
def user_unlock(*, actor, user) -> int:
    """Lift ``user``'s django-axes lockout: their attempt records are deleted (from every
    address) and they may sign in again with their password, which is untouched. Returns how
    many records went; nothing to clear is not audited."""
    _require_admin(actor)
    lockout = sign_in_lockout(user)
    cleared = _clear_sign_in_attempts(user)
    if cleared:
        audit.record(action="user.unlock", actor=actor, actor_name=None if actor is not None else "system",
                     target=user, details={"attempts_cleared": cleared, "was_locked_out": lockout is not None,
                                           "failures": lockout["failures"] if lockout else None})
    return cleared
