"""What the chokepoint protects in this app, and how (registered from ``EndpointsConfig.ready``).

Projects, registered models and endpoints are granted per object; a model and an endpoint
also inherit their project's grants. Actions shared by all three: view, deploy, infer, manage
(``console/permissions.py``).

Every other model a page or an API lists has a rule of its own (``register_scope``), so
``restrict()`` — and with it the base views and viewsets — scopes it too:

- rows that belong to a protected object follow it (``through``): a model's versions and
  aliases follow the model, an endpoint's revisions and status its endpoint, a project's quotas
  its project — whoever may ``view`` the parent may view them, and so on for every action;
- the platform catalog (clusters, hardware profiles, runtimes) is read by every signed-in user
  (endpoint pages and the wizard name them), and only platform admins may do anything else;
- reconciler alerts, notifications and their delivery log are for platform admins only; notification
  channels are a catalog (names offered to Owners), subscriptions follow their project.
"""

from __future__ import annotations

from collections.abc import Callable

from console.permissions import is_platform_admin, protect, register_scope, restrict


def through(field: str, parent) -> Callable:
    """An access rule for rows that belong to a ``parent`` row (``field``: the lookup from the
    row to it, e.g. ``"model"`` or ``"window__endpoint"``): the user may ``action`` the rows of
    the parents they may ``action``."""

    def scope(queryset, user, action):
        if is_platform_admin(user):
            return queryset  # spares the subquery: admins see every parent
        return queryset.filter(**{f"{field}__in": restrict(parent._default_manager.all(), user, action)})

    return scope


def catalog(queryset, user, action):
    """Readable by every signed-in user; any other action is for platform admins."""
    if action == "view" or is_platform_admin(user):
        return queryset
    return queryset.none()


def storage_connections(queryset, user, action):
    """A project's connections follow the project (view: see them; deploy: use them in the
    project's versions; manage: change, rotate, delete). Platform-wide connections are listed
    to every signed-in user (so Owners can opt in), used by those who may deploy in a project
    that opted in, and managed by platform admins only."""
    from django.db.models import Q

    from endpoints.models import Project

    if is_platform_admin(user):
        return queryset
    projects = restrict(Project.objects.all(), user, action)
    own = Q(project__in=projects)
    if action == "view":
        return queryset.filter(own | Q(project__isnull=True))
    if action == "deploy":
        return queryset.filter(own | Q(project__isnull=True, opt_ins__project__in=projects)).distinct()
    return queryset.filter(own)


def platform_admins_only(queryset, user, action):
    return queryset if is_platform_admin(user) else queryset.none()


def register() -> None:
    from endpoints import models as m

    protect(m.Project, user_perms=m.ProjectUserObjectPermission, group_perms=m.ProjectGroupObjectPermission)
    protect(
        m.RegisteredModel,
        user_perms=m.RegisteredModelUserObjectPermission,
        group_perms=m.RegisteredModelGroupObjectPermission,
        parent_field="project",
    )
    protect(
        m.Endpoint,
        user_perms=m.EndpointUserObjectPermission,
        group_perms=m.EndpointGroupObjectPermission,
        parent_field="project",
    )
    register_scope(m.ModelVersion, through("model", m.RegisteredModel))
    register_scope(m.ModelAlias, through("model", m.RegisteredModel))
    register_scope(m.Revision, through("endpoint", m.Endpoint))
    register_scope(m.EndpointStatus, through("endpoint", m.Endpoint))
    register_scope(m.ProjectQuota, through("project", m.Project))
    for model in (m.Cluster, m.HardwareProfile, m.ServingRuntime, m.NimCatalogEntry):
        register_scope(model, catalog)
    register_scope(m.ReconcileAlert, platform_admins_only)
    # Channel names are offered to a project's Owners (targets are shown to admins only);
    # subscriptions follow their project; notifications and their delivery log are admins'.
    register_scope(m.NotificationChannel, catalog)
    register_scope(m.NotificationSubscription, through("project", m.Project))
    register_scope(m.Notification, platform_admins_only)
    register_scope(m.NotificationDelivery, platform_admins_only)
    register_scope(m.StorageConnection, storage_connections)
    register_scope(m.ConnectionOptIn, through("project", m.Project))
