"""Reads of access control: why a principal may (or may not) do something, who can access an
object, what a user can reach, and the lists behind the access pages.

The answers are built from the same rows the chokepoint enforces (guardian's direct-FK tables,
unexpired only) and each permission is traced to the grant and the team that give it. The
yes/no of ``access_check`` *is* the chokepoint's (``console.permissions.can``), so the check
form, these pages and the inference authorization endpoint cannot disagree with enforcement.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db.models import Count, Q
from django.shortcuts import get_object_or_404
from django.utils import timezone

from console.access.grants import ROLE_ACTIONS, actions_for, live_q
from console.access.models import ApiToken, ExternalIdentity, Grant, GroupMapping
from console.access.roles import GLOBAL_ROLES
from console.permissions import ADMIN_PERMISSION, can, is_platform_admin, protection_for, visible
from endpoints.models import Endpoint, Project, RegisteredModel

ACTIONS = ("view", "deploy", "infer", "manage")
ACTION_LABELS = {
    "view": "view",
    "deploy": "deploy (change, register models)",
    "infer": "call (inference)",
    "manage": "manage access",
}


@dataclass
class Source:
    """One reason a principal holds an action on an object."""

    kind: str  # "platform_admin", "superuser", "grant" (on the object or its project), "direct"
    action: str
    obj: object = None  # the object the permission row is on (endpoint, model or its project)
    group: Group | None = None  # the team it comes through, if any
    grants: list = field(default_factory=list)
    expires_at: datetime | None = None

    def describe(self) -> str:
        if self.kind == "superuser":
            return "superuser: every permission on every object"
        if self.kind == "platform_admin":
            return "Platform admin (global role): every permission on every object"
        where = _object_label(self.obj)
        if self.grants:
            roles = ", ".join(sorted({g.get_role_display() for g in self.grants}))
            text = f"{roles} on {where}"
        else:
            text = f"{self.action} permission on {where} (assigned without a grant record)"
        if self.group is not None:
            text += f", through team {self.group.name}"
        if self.expires_at is not None:
            text += f", until {self.expires_at:%Y-%m-%d %H:%M} UTC"
        return text


@dataclass
class AccessCheck:
    """The answer of the "check access" form and of the authz endpoint's permission step."""

    allowed: bool
    action: str
    obj: object
    sources: list[Source]
    reason: str
    valid_until: datetime | None = None  # when the access lapses (None: not by itself)


def _object_label(obj) -> str:
    if isinstance(obj, Project):
        return f"project {obj.name}"
    if isinstance(obj, Endpoint):
        return f"endpoint {obj.project.name}/{obj.name}"
    if isinstance(obj, RegisteredModel):
        return f"model {obj.project.name}/{obj.name}"
    return str(obj)


def _live_rows(table, now):
    return table.objects.filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))


def _chain(obj) -> list:
    """The object and the parent whose grants also apply to it."""
    protection = protection_for(type(obj))
    chain = [obj]
    if protection.parent_field:
        chain.append(getattr(obj, protection.parent_field))
    return chain


def _matching_grants(grants, *, obj, action, user_id=None, group_id=None) -> list:
    field_name = {"project": "project_id", "registeredmodel": "registered_model_id",
                  "endpoint": "endpoint_id"}[obj._meta.model_name]
    return [g for g in grants if getattr(g, field_name) == obj.pk
            and (g.user_id == user_id if user_id else g.group_id == group_id)
            and action in actions_for(g.role, type(obj))]


def access_sources(*, user, obj, action: str, now=None) -> list[Source]:
    """Every live reason ``user`` holds ``action`` on ``obj`` (direct, team, project, global)."""
    now = now or timezone.now()
    if user is None or not user.is_authenticated or not user.is_active:
        return []
    sources: list[Source] = []
    if user.is_superuser:
        sources.append(Source("superuser", action))
    elif user.has_perm(ADMIN_PERMISSION):
        sources.append(Source("platform_admin", action))
    chain = _chain(obj)
    grants = list(Grant.objects.filter(live_q(now)).filter(
        Q(user=user) | Q(group__user=user)).filter(
        Q(project__in=[o.pk for o in chain if o._meta.model_name == "project"])
        | Q(registered_model__in=[o.pk for o in chain if o._meta.model_name == "registeredmodel"])
        | Q(endpoint__in=[o.pk for o in chain if o._meta.model_name == "endpoint"])
    ).select_related("group", "granted_by"))
    for target in chain:
        protection = protection_for(type(target))
        codename = f"{action}_{target._meta.model_name}"
        for row in _live_rows(protection.user_perms, now).filter(
                content_object=target, user=user, permission__codename=codename):
            sources.append(Source("grant", action, target, None,
                                  _matching_grants(grants, obj=target, action=action, user_id=user.pk),
                                  row.expires_at))
        for row in _live_rows(protection.group_perms, now).filter(
                content_object=target, group__user=user, permission__codename=codename).select_related("group"):
            sources.append(Source("grant", action, target, row.group,
                                  _matching_grants(grants, obj=target, action=action, group_id=row.group_id),
                                  row.expires_at))
    return sources


def access_check(*, user, obj, action: str, now=None) -> AccessCheck:
    """May ``user`` do ``action`` on ``obj``, and why (or why not)."""
    now = now or timezone.now()
    label = _object_label(obj)
    if user is None or not user.is_active:
        return AccessCheck(False, action, obj, [], "the account is deactivated")
    allowed = can(user, obj, action)
    sources = access_sources(user=user, obj=obj, action=action, now=now)
    if allowed:
        if not sources:
            reason = f"allowed to {action} {label}"
        else:
            reason = "allowed: " + "; ".join(s.describe() for s in sources)
        global_access = any(s.kind in ("superuser", "platform_admin") for s in sources)
        expiries = [s.expires_at for s in sources]
        valid_until = None if global_access or not expiries or None in expiries else max(expiries)
        return AccessCheck(True, action, obj, sources, reason, valid_until)
    chain = " or ".join(_object_label(o) for o in _chain(obj))
    return AccessCheck(False, action, obj, [], f"denied: no live grant gives '{action}' on {chain} to "
                                               f"{user.get_username()} or a team of theirs")


# --- who can access an object --------------------------------------------------------------------

class _Actions:
    """Shared by the access rows: ``actions`` maps an action to the sources that give it."""

    actions: dict[str, list[Source]]

    @property
    def action_list(self) -> list[str]:
        return [a for a in ACTIONS if a in self.actions]

    @property
    def reasons(self) -> list[str]:
        """Each distinct reason once, in action order."""
        seen, out = set(), []
        for action in self.action_list:
            for source in self.actions[action]:
                text = source.describe()
                if text not in seen:
                    seen.add(text)
                    out.append(text)
        return out


@dataclass
class PrincipalAccess(_Actions):
    """One row of "who can access this and why"."""

    principal: object  # a user or a group
    is_team: bool
    actions: dict[str, list[Source]] = field(default_factory=dict)
    members: list = field(default_factory=list)


def who_can_access(obj, *, now=None) -> dict:
    """Everyone with some access to ``obj``: users (directly or through teams), teams with
    their members, and the platform admins. A bounded number of queries whatever the size."""
    now = now or timezone.now()
    chain = _chain(obj)
    grants = list(Grant.objects.filter(live_q(now)).filter(
        Q(project__in=[o.pk for o in chain if o._meta.model_name == "project"])
        | Q(registered_model__in=[o.pk for o in chain if o._meta.model_name == "registeredmodel"])
        | Q(endpoint__in=[o.pk for o in chain if o._meta.model_name == "endpoint"])
    ).select_related("user", "group", "granted_by", "project", "registered_model__project", "endpoint__project"))
    users: dict[int, PrincipalAccess] = {}
    teams: dict[int, PrincipalAccess] = {}
    for target in chain:
        protection = protection_for(type(target))
        for row in _live_rows(protection.user_perms, now).filter(content_object=target).select_related(
                "user", "permission"):
            action = row.permission.codename.split("_", 1)[0]
            entry = users.setdefault(row.user_id, PrincipalAccess(row.user, False))
            entry.actions.setdefault(action, []).append(Source(
                "grant", action, target, None,
                _matching_grants(grants, obj=target, action=action, user_id=row.user_id), row.expires_at))
        for row in _live_rows(protection.group_perms, now).filter(content_object=target).select_related(
                "group", "permission"):
            action = row.permission.codename.split("_", 1)[0]
            source = Source("grant", action, target, row.group,
                            _matching_grants(grants, obj=target, action=action, group_id=row.group_id),
                            row.expires_at)
            teams.setdefault(row.group_id, PrincipalAccess(row.group, True)).actions.setdefault(
                action, []).append(source)
    User = get_user_model()
    if teams:
        members = User.objects.filter(groups__in=list(teams), is_active=True).prefetch_related("groups")
        for member in members.distinct():
            for group in member.groups.all():
                team = teams.get(group.pk)
                if team is None:
                    continue
                team.members.append(member)
                entry = users.setdefault(member.pk, PrincipalAccess(member, False))
                for action, sources in team.actions.items():
                    entry.actions.setdefault(action, []).extend(sources)
    admins = list(platform_admins())
    for admin in admins:
        entry = users.setdefault(admin.pk, PrincipalAccess(admin, False))
        kind = "superuser" if admin.is_superuser else "platform_admin"
        for action in ACTIONS:
            entry.actions.setdefault(action, []).insert(0, Source(kind, action))
    user_rows = sorted((u for u in users.values() if u.principal.is_active),
                       key=lambda e: e.principal.username)
    return {"users": user_rows, "teams": sorted(teams.values(), key=lambda e: e.principal.name),
            "grants": sorted(grants, key=lambda g: g.created_at, reverse=True)}


def platform_admins():
    User = get_user_model()
    perm = Permission.objects.filter(codename="administer_platform", content_type__app_label="console").first()
    condition = Q(is_superuser=True)
    if perm is not None:
        condition |= Q(groups__permissions=perm) | Q(user_permissions=perm)
    return User.objects.filter(condition, is_active=True).distinct().order_by("username")


# --- what a user can reach ----------------------------------------------------------------------

@dataclass
class Reach(_Actions):
    obj: object
    kind: str
    actions: dict[str, list[Source]] = field(default_factory=dict)
    covers: str = ""


def what_user_can_reach(user, *, now=None) -> dict:
    """Objects ``user`` has grants on (directly or through teams), each with the actions and
    their reasons; project grants say how much they cover. Global roles come first."""
    now = now or timezone.now()
    grants = list(Grant.objects.filter(live_q(now)).filter(Q(user=user) | Q(group__user=user)).select_related(
        "group", "granted_by"))
    reach: dict[tuple[str, int], Reach] = {}
    related = {Project: ("cluster",), RegisteredModel: ("project",), Endpoint: ("project",)}
    for model in (Project, RegisteredModel, Endpoint):
        protection = protection_for(model)
        rows = list(_live_rows(protection.user_perms, now).filter(user=user).select_related(
            "permission", *(f"content_object__{r}" for r in related[model]), "content_object"))
        rows += list(_live_rows(protection.group_perms, now).filter(group__user=user).select_related(
            "permission", "group", *(f"content_object__{r}" for r in related[model]), "content_object"))
        for row in rows:
            target = row.content_object
            action = row.permission.codename.split("_", 1)[0]
            group = getattr(row, "group", None)
            entry = reach.setdefault((model._meta.model_name, target.pk),
                                     Reach(target, model._meta.verbose_name))
            entry.actions.setdefault(action, []).append(Source(
                "grant", action, target, group,
                _matching_grants(grants, obj=target, action=action,
                                 user_id=None if group else user.pk, group_id=group.pk if group else None),
                row.expires_at))
    project_ids = [pk for (kind, pk) in reach if kind == "project"]
    if project_ids:
        counts = Project.objects.filter(pk__in=project_ids).annotate(
            n_endpoints=Count("endpoints", distinct=True), n_models=Count("models", distinct=True))
        for project in counts:
            reach[("project", project.pk)].covers = (
                f"covers its {project.n_endpoints} endpoint(s) and {project.n_models} model(s)")
    order = {"project": 0, "registered model": 1, "endpoint": 2}
    entries = sorted(reach.values(), key=lambda r: (order.get(r.kind, 3), _object_label(r.obj)))
    global_roles = sorted(g.name for g in user.groups.all() if g.name in GLOBAL_ROLES)
    return {"entries": entries, "global_roles": global_roles, "is_admin": is_platform_admin(user),
            "teams": sorted(g.name for g in user.groups.all() if g.name not in GLOBAL_ROLES)}


# --- lists for the access pages -----------------------------------------------------------------

def teams():
    """Teams: the groups that are not global role groups (pages, API and form choices)."""
    return Group.objects.exclude(name__in=list(GLOBAL_ROLES)).order_by("name")


def team_get(pk) -> Group:
    """One team by id, else 404 (a global role group is not a team)."""
    return get_object_or_404(teams(), pk=pk)


def user_get(pk):
    """One user or service account by id with its groups, else 404."""
    return get_object_or_404(get_user_model().objects.prefetch_related("groups"), pk=pk)


def team_list():
    """Teams with member and grant counts."""
    return (teams()
            .annotate(member_count=Count("user", distinct=True),
                      grant_count=Count("grants", filter=live_q(prefix="grants__"), distinct=True))
            .order_by("name"))


def user_list(*, search: str = "", kind: str = ""):
    qs = get_user_model().objects.prefetch_related("groups").order_by("username")
    if search:
        qs = qs.filter(Q(username__icontains=search) | Q(email__icontains=search)
                       | Q(first_name__icontains=search) | Q(last_name__icontains=search))
    if kind == "people":
        qs = qs.filter(is_service_account=False)
    elif kind == "service":
        qs = qs.filter(is_service_account=True)
    elif kind == "inactive":
        qs = qs.filter(is_active=False)
    return qs


def grants_visible_to(*, user, include_ended: bool = False):
    """Grants on objects ``user`` may manage (all of them for platform admins)."""
    qs = Grant.objects.select_related("user", "group", "project", "registered_model__project",
                                      "endpoint__project", "granted_by")
    if not include_ended:
        qs = qs.filter(live_q())
    if is_platform_admin(user):
        return qs
    return qs.filter(
        Q(project__in=visible(Project.objects.all(), user, "manage"))
        | Q(registered_model__in=visible(RegisteredModel.objects.all(), user, "manage"))
        | Q(endpoint__in=visible(Endpoint.objects.all(), user, "manage"))
    )


def tokens_of(*, user):
    return ApiToken.objects.filter(user=user).order_by("-created_at")


def access_counts() -> dict:
    User = get_user_model()
    now = timezone.now()
    return {
        "people": User.objects.filter(is_service_account=False, is_active=True).count(),
        "service_accounts": User.objects.filter(is_service_account=True, is_active=True).count(),
        "teams": Group.objects.exclude(name__in=list(GLOBAL_ROLES)).count(),
        "grants": Grant.objects.filter(live_q(now)).count(),
        "tokens": ApiToken.objects.filter(revoked_at__isnull=True).filter(
            Q(expires_at__isnull=True) | Q(expires_at__gt=now)).count(),
    }


def grants_expiring_soon(*, days: int = 7):
    now = timezone.now()
    return (Grant.objects.filter(live_q(now), expires_at__isnull=False,
                                 expires_at__lte=now + timedelta(days=days))
            .select_related("user", "group", "project", "registered_model__project", "endpoint__project")
            .order_by("expires_at"))


def projects_with_grant_counts():
    return Project.objects.annotate(
        grant_count=Count("grants", filter=live_q(prefix="grants__"), distinct=True),
        endpoint_count=Count("endpoints", distinct=True)).order_by("name")


def endpoints_of(project):
    return Endpoint.objects.filter(project=project).order_by("name").only("pk", "name", "project_id")


ROLE_TABLE = [(role, label, ROLE_ACTIONS[role]) for role, label in Grant.Role.choices]


def group_mappings():
    """Every identity-provider group mapping, with the team or role it gives."""
    return GroupMapping.objects.select_related("group").order_by("source", "external_group", "group__name")


def identities_of(*, user):
    """The identity-provider accounts linked to ``user``."""
    return ExternalIdentity.objects.filter(user=user).order_by("source", "issuer", "subject")
