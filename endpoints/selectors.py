"""Reads of the endpoints app. Those that take the viewing user start from the permission
chokepoint; the unscoped bases (``endpoint_queryset``, ``versions_with_deployments``' versions)
are for views whose base class scopes them."""

from __future__ import annotations

from django.db.models import Count, F, Prefetch, Q, Sum
from django.utils import timezone

from console.permissions import get_visible_or_404, restrict, visible
from endpoints.models import (
    Cluster,
    Endpoint,
    EndpointStatus,
    HardwareProfile,
    ModelAlias,
    ModelVersion,
    Project,
    ProjectGroupObjectPermission,
    ProjectUserObjectPermission,
    ReconcileAlert,
    RegisteredModel,
    Revision,
    ServingRuntime,
    StorageConnection,
)


def project_list_visible_to(*, user, action: str = "view"):
    return visible(Project.objects.select_related("cluster"), user, action)


def project_get(*, user, name: str, action: str = "view") -> Project:
    return get_visible_or_404(Project.objects.select_related("cluster"), user, action, name=name)


def project_accelerator_usage(*, user, project: Project) -> dict[int, int]:
    """Accelerators requested at max replicas per hardware profile by the project's endpoints
    the user may see (every one, for the platform admins who read it)."""
    endpoints = restrict(Endpoint.objects.filter(project=project, hardware_profile__isnull=False), user, "view")
    rows = (endpoints.exclude(state=Endpoint.State.DELETING).values("hardware_profile_id")
            .annotate(total=Sum(F("accelerator_count") * F("max_replicas"))))
    return {row["hardware_profile_id"]: row["total"] or 0 for row in rows}


def model_list_visible_to(*, user, project: Project | None = None):
    """Registered models the user may see (of ``project``, when given), with their version count."""
    qs = RegisteredModel.objects.select_related("project", "owner").annotate(version_count=Count("versions"))
    if project is not None:
        qs = qs.filter(project=project)
    return visible(qs, user, "view")


def model_get(*, user, pk: int, action: str = "view") -> RegisteredModel:
    return get_visible_or_404(RegisteredModel.objects.select_related("project", "owner"), user, action, pk=pk)


def versions_with_deployments(*, user):
    """Model versions with their aliases and the endpoints visible to ``user`` that serve each
    one as primary or canary, in a fixed number of queries whatever the counts. The versions
    themselves are not scoped: the caller's base view (or an already visible model) does it."""
    endpoints = restrict(Endpoint.objects.select_related("project").order_by("project__name", "name"), user, "view")
    return (
        ModelVersion.objects.select_related("model", "created_by", "connection")
        .prefetch_related(
            Prefetch("aliases", queryset=ModelAlias.objects.order_by("name")),
            Prefetch("endpoints", queryset=endpoints, to_attr="visible_endpoints"),
            Prefetch("canary_endpoints", queryset=endpoints, to_attr="visible_canary_endpoints"),
        )
    )


def version_choices_for(*, user, action: str = "deploy", project=None, offered_to=None):
    """Model versions a user may deploy (their model is visible to them with ``action``);
    with ``project``, only those registered in it (an endpoint serves its own project's models).

    ``offered_to`` (an endpoint, or ``False`` for a new one) narrows the list to what a picker
    offers: archived versions are left out except those that endpoint already serves, so an
    endpoint on an archived version can still be edited without moving off it. Without it every
    version is returned and the service explains a refused archived one."""
    models = visible(RegisteredModel.objects.all(), user, action)
    if project is not None:
        models = models.filter(project=project)
    versions = ModelVersion.objects.filter(model__in=models).select_related("model", "model__project")
    if offered_to is not None:
        offered = Q(archived_at__isnull=True)
        if offered_to:
            offered |= Q(pk__in=[pk for pk in (offered_to.model_version_id, offered_to.canary_version_id) if pk])
        versions = versions.filter(offered)
    return versions


ENDPOINT_RELATED = (
    "project", "project__cluster", "model_version", "model_version__model", "runtime", "hardware_profile",
    "status", "canary_version", "canary_version__model",
)


def endpoint_queryset():
    """Endpoints with everything their pages, plans and API answers read of them, before any
    scoping: views pass it through the chokepoint (the base views, ``get_visible_or_404``)."""
    return Endpoint.objects.select_related(*ENDPOINT_RELATED)


def endpoint_list_visible_to(*, user, project: str = ""):
    """Endpoints the user may see (those of the project named ``project``, when given)."""
    qs = Endpoint.objects.select_related(
        "project", "project__cluster", "model_version", "model_version__model", "runtime", "hardware_profile",
        "status", "canary_version",
    )
    if project:
        qs = qs.filter(project__name=project)
    return visible(qs, user, "view")


def endpoint_status(endpoint: Endpoint) -> EndpointStatus | None:
    """The endpoint's observed status row, or None when it has none yet (loaded with the
    endpoint by ``select_related("status")``: no query then)."""
    try:
        return endpoint.status
    except EndpointStatus.DoesNotExist:
        return None


def endpoint_revisions(*, endpoint: Endpoint):
    return Revision.objects.filter(endpoint=endpoint).order_by("-generation")


def runtime_choices(endpoint: Endpoint | None = None):
    """Runtimes an endpoint may choose: enabled single-model runtimes, plus the edited endpoint's own (a runtime an admin
    disabled meanwhile then gets the validation rule's explanation, not "invalid choice")."""
    qs = ServingRuntime.objects.filter(disabled=False, multi_model=False)
    if endpoint is not None and endpoint.runtime_id:
        qs = qs | ServingRuntime.objects.filter(pk=endpoint.runtime_id)
    return qs.select_related("installed_on").order_by("name")


def nim_runtimes_visible_to(*, user):
    """NIM runtimes a user sees: the platform-wide ones, and those installed for a project the
    user sees (docs/nim.md)."""
    projects = restrict(Project.objects.all(), user, "view").values("pk")
    return ServingRuntime.objects.filter(Q(project__isnull=True) | Q(project__in=projects),
                                         nim__isnull=False).select_related("project").order_by("name")


def hardware_choices(endpoint: Endpoint | None = None):
    """Hardware profiles an endpoint may choose: enabled ones, plus the edited endpoint's own (so an edit does not silently drop a
    profile an admin disabled meanwhile)."""
    qs = HardwareProfile.objects.filter(enabled=True)
    if endpoint is not None and endpoint.hardware_profile_id:
        qs = qs | HardwareProfile.objects.filter(pk=endpoint.hardware_profile_id)
    return qs.order_by("name")


def runtime_list():
    return ServingRuntime.objects.all()


def hardware_profile_list(*, enabled_only: bool = False):
    qs = HardwareProfile.objects.all()
    return qs.filter(enabled=True) if enabled_only else qs


def cluster_list():
    return Cluster.objects.annotate(project_count=Count("projects"))


def alerts_active():
    """Reconciler alerts no one has resolved yet (platform-admin pages only)."""
    return ReconcileAlert.objects.filter(resolved_at__isnull=True).select_related("cluster")


def platform_counts() -> dict:
    return {
        "clusters": Cluster.objects.count(),
        "projects": Project.objects.count(),
        "hardware_profiles": HardwareProfile.objects.count(),
        "runtimes": ServingRuntime.objects.count(),
    }


# --- storage connections ---------------------------------------------------------------------------

def connection_get(*, user, pk: int, action: str = "view") -> StorageConnection:
    """One connection the user can see (404 otherwise); 403 when they may not ``action`` it."""
    return get_visible_or_404(StorageConnection.objects.select_related("project", "created_by"), user, action, pk=pk)


def connection_usage(*, user, connection: StorageConnection) -> dict:
    """What uses a connection, as far as ``user`` may see: endpoints (primary or canary), model
    versions and, for a platform-wide connection, the projects that opted in. Rows of projects
    the user cannot see are left out (a platform-wide connection is visible to everyone)."""
    from endpoints.services.connections import endpoints_using

    versions = restrict(ModelVersion.objects.filter(connection=connection)
                        .select_related("model", "model__project").order_by("model__project__name", "model__name",
                                                                            "version"), user, "view")
    opt_ins = restrict(connection.opt_ins.select_related("project", "created_by").order_by("project__name"),
                       user, "view")
    return {"endpoints": list(restrict(endpoints_using(connection), user, "view")),
            "versions": list(versions), "opt_ins": list(opt_ins)}


def connection_check(*, uri: str, connection: StorageConnection):
    """The storage check of ``uri`` with the connection's credentials, as pages and the API show
    it (``services.connections.preflight``: redacted there; a check that breaks is reported as
    ``unreachable`` with the exception's type only)."""
    from endpoints.services.connections import preflight

    return preflight(uri, connection).check


def alert_metric_families():
    """``console_reconcile_alerts{cluster,kind,state}``: unresolved reconciler alerts (/metrics)."""
    from prometheus_client.core import GaugeMetricFamily

    family = GaugeMetricFamily("console_reconcile_alerts", "Unresolved reconciler alerts.",
                               labels=["cluster", "kind", "state"])
    rows = (ReconcileAlert.objects.exclude(state=ReconcileAlert.State.RESOLVED)
            .values("cluster__name", "kind", "state").annotate(n=Count("pk")).order_by())
    for row in rows:
        family.add_metric([row["cluster__name"], row["kind"], row["state"]], row["n"])
    yield family


PROJECT_ACTIONS = ("view", "deploy", "infer", "manage")


def project_members(*, project: Project) -> list[dict]:
    """Who holds live permissions on the project itself (users and teams), with the actions
    they may take there — read from the grant index (guardian's direct-FK tables), so it agrees
    with what the chokepoint lets each of them do. The caller must be allowed to see the project."""
    live = Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now())
    members: dict[tuple[str, int], dict] = {}
    for row in (ProjectUserObjectPermission.objects.filter(live, content_object=project)
                .select_related("user", "permission")):
        entry = members.setdefault(("user", row.user_id), {"kind": "user", "name": row.user.get_username(),
                                                           "actions": set()})
        entry["actions"].add(row.permission.codename.removesuffix("_project"))
    for row in (ProjectGroupObjectPermission.objects.filter(live, content_object=project)
                .select_related("group", "permission")):
        entry = members.setdefault(("team", row.group_id), {"kind": "team", "name": row.group.name, "actions": set()})
        entry["actions"].add(row.permission.codename.removesuffix("_project"))
    rows = []
    for entry in members.values():
        entry["actions"] = [a for a in PROJECT_ACTIONS if a in entry["actions"]]
        rows.append(entry)
    return sorted(rows, key=lambda e: (e["kind"], e["name"]))
