"""Edit and delete for the registry (models, versions), projects and the platform catalog
(clusters, hardware profiles, runtimes), with the rules that keep history whole.

What may be deleted, and why (docs/architecture.md, "Lifecycle"):

- a **model version** only while no endpoint serves it (primary or canary) and no existing
  endpoint's revision history names it — rollback would otherwise point at nothing — and no
  monitoring row (bin counts, drift windows) would go with it; otherwise it can be *archived*:
  kept, marked, and refused as the version of a new endpoint or a change (endpoints already on
  it keep it, rollback to a revision naming it still works);
- a **registered model** only when each of its versions may be deleted;
- a **project** only once it has no endpoint, no storage connection of its own and no
  connection Secrets left in its namespace (the reconciler removes them); its models,
  quotas, subscriptions and grants go with it (the namespace stays on the cluster);
- a **cluster** only without projects; its capability reading, alerts and the runtimes
  discovered on it go with it;
- a **hardware profile** or a **custom runtime** only while no endpoint uses it or names it in
  its revision history; otherwise it is *disabled* instead (existing endpoints keep it, new
  ones cannot choose it). Built-in and discovered runtimes are never deleted here.

A refusal raises ``InUse`` (a ``ValidationError``: the page shows it, the API answers 409)
naming what still uses the object. Every change writes its audit event in the same
transaction; a delete records what went with the object (``deleted_with_it``: rows per kind,
counted by Django's deletion collector, so rows of apps above this one — grants, monitoring —
are counted without importing them).
"""

from __future__ import annotations

from collections import Counter

from django.core.exceptions import ValidationError
from django.db import router, transaction
from django.db.models import ProtectedError, Q, RestrictedError
from django.db.models.deletion import Collector
from django.utils import timezone

from audit import services as audit
from endpoints.models import (
    Cluster,
    Endpoint,
    HardwareProfile,
    ModelVersion,
    Project,
    RegisteredModel,
    Revision,
    ServingRuntime,
)

# Rows that may go with an object without being "history": its own parts and the permission
# index (``*objectpermission``). Anything else the collector finds (monitoring rows) refuses.
_PARTS = {
    ModelVersion: {"endpoints.modelalias"},
    RegisteredModel: {"endpoints.modelversion", "endpoints.modelalias", "access.grant"},
}
NAMES_SHOWN = 5


class InUse(ValidationError):
    """A delete refused because something still uses or refers to the object."""


def _names(items) -> str:
    items = sorted(set(items))
    shown = ", ".join(items[:NAMES_SHOWN])
    return shown + (f" and {len(items) - NAMES_SHOWN} more" if len(items) > NAMES_SHOWN else "")


def _endpoint_names(queryset) -> str:
    return _names(f"{project}/{name}" for project, name in queryset.values_list("project__name", "name"))


def cascade_counts(obj) -> dict[str, int]:
    """What deleting ``obj`` would remove with it: rows per model label (``app.model``),
    ``obj`` itself excluded. ``InUse`` when a protected reference would stop the delete."""
    collector = Collector(using=router.db_for_write(type(obj)))
    try:
        collector.collect([obj])
    except (ProtectedError, RestrictedError) as exc:
        kinds = _names(o._meta.verbose_name for o in exc.protected_objects if hasattr(o, "_meta")) \
            if isinstance(exc, ProtectedError) else _names(o._meta.verbose_name for o in exc.restricted_objects)
        raise InUse(f"{obj} is still referred to by: {kinds}.") from exc
    counts: Counter = Counter()
    for model, instances in collector.data.items():
        counts[model._meta.label_lower] += len(instances)
    for queryset in collector.fast_deletes:
        counts[queryset.model._meta.label_lower] += queryset.count()
    counts[type(obj)._meta.label_lower] -= 1
    return {label: n for label, n in sorted(counts.items()) if n > 0}


def _history_rows(obj, counts: dict[str, int]) -> list[str]:
    """Labels of rows that would go with ``obj`` and are neither its parts nor permission rows."""
    allowed = _PARTS.get(type(obj), set())
    return [label for label in counts if label not in allowed and not label.endswith("objectpermission")]


def _delete(obj) -> None:
    """Delete ``obj``; a reference that appeared since the checks (a concurrent deploy) refuses
    it like the checks would have."""
    try:
        obj.delete()
    except (ProtectedError, RestrictedError) as exc:
        raise InUse(f"{obj} came into use meanwhile; nothing was deleted.") from exc


def _snapshot(obj, fields) -> dict:
    return {name: getattr(obj, name) for name in fields}


def _update(obj, fields: tuple[str, ...], changes: dict) -> dict:
    """Apply ``changes`` (only ``fields`` may change), validate, save; return the audit diff."""
    unknown = set(changes) - set(fields)
    if unknown:
        raise ValidationError({name: ["This field cannot be changed."] for name in sorted(unknown)})
    before = _snapshot(obj, fields)
    for name, value in changes.items():
        setattr(obj, name, value)
    obj.full_clean()
    obj.save()
    after = _snapshot(obj, fields)
    return {"old": {k: v for k, v in before.items() if after[k] != v},
            "new": {k: v for k, v in after.items() if before[k] != v}}


# --- model versions ------------------------------------------------------------------------------

VERSION_EDITABLE = ("description",)


def version_delete_blockers(version: ModelVersion) -> list[str]:
    """Why ``version`` cannot be deleted now (empty: it can)."""
    reasons = []
    serving = Endpoint.objects.filter(Q(model_version=version) | Q(canary_version=version))
    primary, canary = serving.filter(model_version=version), serving.filter(canary_version=version)
    for role, endpoints in (("", primary), (" as canary", canary)):
        if endpoints.exists():
            reasons.append(f"Version {version.version} of {version.model.name} is served{role} by endpoint "
                           f"{_endpoint_names(endpoints)}. Move those endpoints to another version or delete them "
                           "first.")
    history = (Revision.objects.filter(Q(spec__model__version_id=version.pk) | Q(spec__canary__version_id=version.pk))
               .exclude(endpoint__in=serving))
    if history.exists():
        names = _names(f"{p}/{n}" for p, n in history.values_list("endpoint__project__name", "endpoint__name"))
        reasons.append(f"Version {version.version} of {version.model.name} was deployed on endpoint {names}: "
                       "their revision history (and rollback) refers to it. It is kept while those endpoints exist; "
                       "archive it so it can no longer be deployed.")
    if not reasons:
        try:
            rows = _history_rows(version, cascade_counts(version))
        except InUse as exc:
            return [exc.messages[0]]
        if rows:
            reasons.append(f"Version {version.version} of {version.model.name} has monitoring history "
                           f"({_names(rows)}); deleting it would delete that history. Archive it instead.")
    return reasons


@transaction.atomic
def model_version_update(*, actor, version: ModelVersion, **changes) -> ModelVersion:
    """Change what describes a version (its artifact, format and number are immutable)."""
    diff = _update(version, VERSION_EDITABLE, changes)
    if diff["new"]:
        audit.record(action="modelversion.update", actor=actor, target=version, project=version.model.project,
                     details={"model": version.model.name, "version": version.version, **diff})
    return version


@transaction.atomic
def model_version_delete(*, actor, version: ModelVersion) -> None:
    """Delete a version nothing serves or refers to (``InUse`` otherwise)."""
    version = ModelVersion.objects.select_for_update().select_related("model__project").get(pk=version.pk)
    reasons = version_delete_blockers(version)
    if reasons:
        raise InUse(reasons)
    counts = cascade_counts(version)
    model = version.model
    audit.record(action="modelversion.delete", actor=actor, target=version, project=model.project,
                 details={"old": {"model": model.name, "version": version.version,
                                  "storage_uri": version.storage_uri, "format": version.model_format,
                                  "aliases": list(version.aliases.values_list("name", flat=True))},
                          "deleted_with_it": counts})
    _delete(version)


@transaction.atomic
def model_version_archive(*, actor, version: ModelVersion, archived: bool = True) -> ModelVersion:
    """Archive a version (or bring it back): it stays, with everything that refers to it, but
    cannot be chosen for an endpoint any more. Archiving twice changes nothing."""
    version = ModelVersion.objects.select_for_update().select_related("model__project").get(pk=version.pk)
    if archived == (version.archived_at is not None):
        return version
    version.archived_at = timezone.now() if archived else None
    version.save(update_fields=["archived_at"])
    serving = Endpoint.objects.filter(Q(model_version=version) | Q(canary_version=version))
    audit.record(action="modelversion.archive" if archived else "modelversion.unarchive", actor=actor,
                 target=version, project=version.model.project,
                 details={"model": version.model.name, "version": version.version,
                          "serving_endpoints": sorted(serving.values_list("name", flat=True))})
    return version


def refuse_archived_versions(endpoint: Endpoint, *, previous_version_id=None, previous_canary_id=None) -> None:
    """An endpoint may keep an archived version it already has (as primary or canary, so a
    promotion still works), never newly choose one."""
    errors = {}
    kept = {previous_version_id, previous_canary_id} - {None}
    for field in ("model_version", "canary_version"):
        version = getattr(endpoint, field)
        if version is not None and version.archived_at is not None and version.pk not in kept:
            errors[field] = [f"Version {version.version} of {version.model.name} is archived: it can no longer be "
                             "deployed. Choose another version, or ask a project Owner to unarchive it."]
    if errors:
        raise ValidationError(errors)


# --- registered models ---------------------------------------------------------------------------

MODEL_EDITABLE = ("task", "description")


def model_delete_blockers(model: RegisteredModel) -> list[str]:
    reasons = []
    for version in model.versions.select_related("model").order_by("version"):
        reasons += version_delete_blockers(version)
    if not reasons:
        try:
            rows = _history_rows(model, cascade_counts(model))
        except InUse as exc:
            return [exc.messages[0]]
        if rows:
            reasons.append(f"Model {model.name} has history that would go with it ({_names(rows)}).")
    return reasons


@transaction.atomic
def model_update(*, actor, model: RegisteredModel, **changes) -> RegisteredModel:
    """Change a model's task or description (its name and project are fixed: revisions and
    monitoring refer to them)."""
    diff = _update(model, MODEL_EDITABLE, changes)
    if diff["new"]:
        audit.record(action="model.update", actor=actor, target=model, project=model.project, details=diff)
    return model


@transaction.atomic
def model_delete(*, actor, model: RegisteredModel) -> None:
    """Delete a model with its versions and aliases, when no version is in use (``InUse``
    otherwise); grants on it go with it (counted in the audit event)."""
    model = RegisteredModel.objects.select_for_update().select_related("project").get(pk=model.pk)
    reasons = model_delete_blockers(model)
    if reasons:
        raise InUse(reasons)
    counts = cascade_counts(model)
    audit.record(action="model.delete", actor=actor, target=model, project=model.project,
                 details={"old": {"name": model.name, "task": model.task,
                                  "versions": list(model.versions.order_by("version").values_list("version", flat=True))},
                          "deleted_with_it": counts})
    _delete(model)


# --- projects --------------------------------------------------------------------------------------

PROJECT_EDITABLE = ("display_name", "description")


def project_delete_blockers(project: Project) -> list[str]:
    reasons = []
    endpoints = project.endpoints.all()
    if endpoints.exists():
        reasons.append(f"Project {project.name} still has endpoint {_endpoint_names(endpoints)}. Delete its "
                       "endpoints first (and wait until they are gone from the cluster).")
    connections = list(project.connections.values_list("name", flat=True))
    if connections:
        reasons.append(f"Project {project.name} still has storage connection {_names(connections)}. Delete them "
                       "first, so their Secrets are removed from the namespace.")
    elif project.has_connection_objects:
        # The namespace is not visited once the project is gone: credentials left there would stay.
        reasons.append(f"Namespace {project.namespace} still holds storage credentials (Secrets, ServiceAccounts) the "
                       "console applied. The reconciler removes them on its next pass now that no endpoint needs "
                       "them; try again after it.")
    return reasons


@transaction.atomic
def project_update(*, actor, project: Project, **changes) -> Project:
    """Change a project's display name or description (its name, cluster and namespace are
    fixed: the namespace holds its endpoints and the audit trail is keyed by them)."""
    diff = _update(project, PROJECT_EDITABLE, changes)
    if diff["new"]:
        audit.record(action="project.update", actor=actor, target=project, project=project, details=diff)
    return project


@transaction.atomic
def project_delete(*, actor, project: Project) -> None:
    """Delete a project without endpoints or storage connections (``InUse`` otherwise), with
    its models, quotas, subscriptions and grants. The namespace stays on the cluster: the
    console never deletes a namespace (it may hold objects the console does not own)."""
    project = Project.objects.select_for_update().select_related("cluster").get(pk=project.pk)
    reasons = project_delete_blockers(project)
    if reasons:
        raise InUse(reasons)
    counts: Counter = Counter()
    models = list(project.models.all())
    for model in models:
        reasons += model_delete_blockers(model)
    if reasons:
        raise InUse(reasons)
    for model in models:
        counts.update(cascade_counts(model))
        counts["endpoints.registeredmodel"] += 1
    project.models.all().delete()
    counts.update(cascade_counts(project))
    audit.record(action="project.delete", actor=actor, target=project, project=project,
                 details={"old": {"name": project.name, "cluster": project.cluster.name,
                                  "namespace": project.namespace, "models": sorted(m.name for m in models)},
                          "deleted_with_it": dict(sorted(counts.items())),
                          "namespace_kept": True})
    _delete(project)


# --- clusters, hardware profiles, runtimes -------------------------------------------------------------

def cluster_delete_blockers(cluster: Cluster) -> list[str]:
    projects = list(cluster.projects.values_list("name", flat=True))
    if projects:
        return [f"Cluster {cluster.name} still has project {_names(projects)}. Delete or move them first; "
                "to stop using the cluster meanwhile, disable it."]
    used = Endpoint.objects.filter(runtime__installed_on=cluster)
    if used.exists():
        return [f"Runtimes discovered on cluster {cluster.name} are used by endpoint {_endpoint_names(used)}."]
    return []


@transaction.atomic
def cluster_delete(*, actor, cluster: Cluster) -> None:
    """Delete a cluster without projects (``InUse`` otherwise). Its capability reading, its
    reconciler alerts and the runtimes discovered on it (which would otherwise turn into
    console-installed ones) go with it; the cluster itself is not touched."""
    cluster = Cluster.objects.select_for_update().get(pk=cluster.pk)
    reasons = cluster_delete_blockers(cluster)
    if reasons:
        raise InUse(reasons)
    discovered = list(cluster.discovered_runtimes.order_by("name").values_list("name", flat=True))
    cluster.discovered_runtimes.all().delete()
    counts = cascade_counts(cluster)
    audit.record(action="cluster.delete", actor=actor, target=cluster,
                 details={"old": _snapshot(cluster, ("name", "kind", "connection", "api_url", "ingress_domain",
                                                     "gateway_address", "enabled")),
                          "discovered_runtimes_removed": discovered, "deleted_with_it": counts})
    _delete(cluster)


def _catalog_blockers(obj, *, kind: str, endpoints, revisions, disable: str) -> list[str]:
    if endpoints.exists():
        return [f"{kind} {obj.name} is used by endpoint {_endpoint_names(endpoints)}. {disable}"]
    if revisions.exists():
        names = _names(f"{p}/{n}" for p, n in revisions.values_list("endpoint__project__name", "endpoint__name"))
        return [f"{kind} {obj.name} is named in the revision history of endpoint {names} (rollback would need it). "
                f"{disable}"]
    return []


def hardware_profile_delete_blockers(profile: HardwareProfile) -> list[str]:
    return _catalog_blockers(
        profile, kind="Hardware profile", endpoints=profile.endpoints.all(),
        revisions=Revision.objects.filter(spec__hardware__profile_id=profile.pk),
        disable="Disable it instead (untick Enabled): endpoints that use it keep it, new endpoints cannot choose it.")


@transaction.atomic
def hardware_profile_delete(*, actor, profile: HardwareProfile) -> None:
    """Delete a profile no endpoint uses or used (``InUse`` otherwise: disable it instead).
    Project quotas for it go with it (recorded)."""
    profile = HardwareProfile.objects.select_for_update().get(pk=profile.pk)
    reasons = hardware_profile_delete_blockers(profile)
    if reasons:
        raise InUse(reasons)
    quotas = {q.project.name: q.max_accelerators for q in profile.quotas.select_related("project")}
    counts = cascade_counts(profile)
    audit.record(action="hardware_profile.delete", actor=actor, target=profile,
                 details={"old": _snapshot(profile, ("name", "display_name", "accelerator_resource",
                                                     "accelerator_product", "max_accelerators_per_replica",
                                                     "capacity", "enabled")),
                          "quotas_removed": quotas, "deleted_with_it": counts})
    _delete(profile)


def runtime_delete_blockers(runtime: ServingRuntime) -> list[str]:
    if runtime.built_in:
        return [f"Runtime {runtime.name} is built in (it mirrors one of KServe's default runtimes and would come "
                "back at the next catalog sync). Disable it instead: new endpoints cannot choose it."]
    if runtime.discovered:
        return [f"Runtime {runtime.name} was discovered on cluster {runtime.installed_on.name}, where it was "
                "installed outside the console. Remove it there, or disable it here."]
    return _catalog_blockers(
        runtime, kind="Runtime", endpoints=runtime.endpoints.all(),
        revisions=Revision.objects.filter(spec__runtime__id=runtime.pk),
        disable="Disable it instead: endpoints that use it keep it, new endpoints cannot choose it.")


@transaction.atomic
def runtime_delete(*, actor, runtime: ServingRuntime) -> None:
    """Delete a custom runtime no endpoint uses or used (``InUse`` otherwise)."""
    runtime = ServingRuntime.objects.select_for_update(of=("self",)).select_related("installed_on").get(pk=runtime.pk)
    reasons = runtime_delete_blockers(runtime)
    if reasons:
        raise InUse(reasons)
    counts = cascade_counts(runtime)
    audit.record(action="runtime.delete", actor=actor, target=runtime,
                 details={"old": _snapshot(runtime, ("name", "display_name", "container_image", "protocols",
                                                     "disabled")),
                          "deleted_with_it": counts})
    _delete(runtime)
