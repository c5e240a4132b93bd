"""Writes of the endpoints app. Every service is atomic and records its audit event in the
same transaction; endpoint changes bump ``generation``, write an immutable ``Revision`` and
enqueue reconciliation after commit."""

from __future__ import annotations

import logging
import re

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, Max, Sum
from django.utils import timezone

from audit import services as audit
from console.redaction import redact_ingest_keys
from endpoints import catalog, profiles, reconcile
from endpoints import spec as specs
from endpoints.models import (
    Cluster,
    Endpoint,
    EndpointStatus,
    HardwareProfile,
    ModelAlias,
    ModelVersion,
    Project,
    ProjectQuota,
    ReconcileAlert,
    RegisteredModel,
    Revision,
    ServingRuntime,
)

logger = logging.getLogger(__name__)

DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
# Names a project cannot take because its page would sit on a console route (/projects/new/).
RESERVED_PROJECT_NAMES = frozenset({"new"})
CONSOLE_NAMESPACE_LABELS = {"app.kubernetes.io/managed-by": "inference-console"}

# Endpoint fields a user may set (everything else is derived or owned by the console).
ENDPOINT_FIELDS = (
    "description", "model_version", "runtime", "protocol", "deployment_mode", "min_replicas", "max_replicas",
    "scale_metric", "scale_target", "container_concurrency", "timeout_seconds", "hardware_profile",
    "accelerator_count", "cpu_request", "cpu_limit", "memory_request", "memory_limit", "env", "args",
    "canary_version", "canary_traffic_percent", "logging_mode",
)


# --- clusters, hardware profiles, runtimes ---------------------------------------------------

def _snapshot(obj, fields) -> dict:
    return {name: getattr(obj, name) for name in fields}


def _diff(before: dict, after: dict) -> dict:
    """Audit details of an edit: the old and new value of every field that changed."""
    return {"old": {k: v for k, v in before.items() if after[k] != v},
            "new": {k: v for k, v in after.items() if before[k] != v}}


@transaction.atomic
def cluster_create(*, actor, **fields) -> Cluster:
    cluster = Cluster(**fields)
    cluster.full_clean()
    cluster.save()
    audit.record(action="cluster.create", actor=actor, target=cluster,
                 details={"new": _snapshot(cluster, ("name", "kind", "connection", "kubeconfig_context",
                                                     "api_url", "ingress_domain", "enabled"))})
    return cluster


@transaction.atomic
def cluster_update(*, actor, cluster: Cluster, **changes) -> Cluster:
    visible = ("description", "kind", "connection", "kubeconfig_path", "kubeconfig_context", "api_url",
               "ingress_domain", "enabled")
    before = _snapshot(cluster, visible)
    token_changed = "api_token" in changes and changes["api_token"] != cluster.api_token
    for name, value in changes.items():
        setattr(cluster, name, value)
    cluster.full_clean()
    cluster.save()
    details = _diff(before, _snapshot(cluster, visible))
    if token_changed:
        details["credentials"] = "replaced"  # never the token itself
    audit.record(action="cluster.update", actor=actor, target=cluster, details=details)
    return cluster


HARDWARE_FIELDS = ("display_name", "description", "accelerator_resource", "accelerator_product", "node_selector",
                   "tolerations", "default_cpu", "default_memory", "max_cpu", "max_memory",
                   "max_accelerators_per_replica", "capacity", "enabled")


def _validate_hardware(profile: HardwareProfile) -> None:
    from endpoints import quantities

    errors: dict[str, list[str]] = {}
    for name in ("default_cpu", "default_memory", "max_cpu", "max_memory"):
        try:
            quantities.parse_quantity(getattr(profile, name))
        except ValueError as exc:
            errors.setdefault(name, []).append(str(exc))
    if profile.accelerator_resource and "/" not in profile.accelerator_resource:
        errors.setdefault("accelerator_resource", []).append(
            "Use the extended resource name, e.g. nvidia.com/gpu.")
    if not profile.accelerator_resource and profile.max_accelerators_per_replica:
        errors.setdefault("max_accelerators_per_replica", []).append(
            "A CPU-only profile (no accelerator resource) cannot allow accelerators.")
    if not isinstance(profile.node_selector, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in (profile.node_selector or {}).items()
    ):
        errors.setdefault("node_selector", []).append("Node selector must map label names to string values.")
    if not isinstance(profile.tolerations, list) or not all(isinstance(t, dict) for t in profile.tolerations):
        errors.setdefault("tolerations", []).append("Tolerations must be a list of Kubernetes toleration objects.")
    if errors:
        raise ValidationError(errors)


@transaction.atomic
def hardware_profile_create(*, actor, name: str, **fields) -> HardwareProfile:
    profile = HardwareProfile(name=name, **fields)
    profile.full_clean()
    _validate_hardware(profile)
    profile.save()
    audit.record(action="hardwareprofile.create", actor=actor, target=profile,
                 details={"new": _snapshot(profile, ("name", *HARDWARE_FIELDS))})
    return profile


@transaction.atomic
def hardware_profile_update(*, actor, profile: HardwareProfile, **changes) -> HardwareProfile:
    before = _snapshot(profile, HARDWARE_FIELDS)
    for name, value in changes.items():
        setattr(profile, name, value)
    profile.full_clean()
    _validate_hardware(profile)
    profile.save()
    audit.record(action="hardwareprofile.update", actor=actor, target=profile,
                 details=_diff(before, _snapshot(profile, HARDWARE_FIELDS)))
    return profile


RUNTIME_FIELDS = ("display_name", "description", "supported_formats", "protocols", "openai_compatible",
                  "openai_route_prefix", "disabled", "container_image", "container_args")


def _validate_runtime(runtime: ServingRuntime) -> None:
    errors: dict[str, list[str]] = {}
    formats = runtime.supported_formats
    if not isinstance(formats, list) or not formats:
        errors["supported_formats"] = ["List at least one supported model format."]
    else:
        for entry in formats:
            if not isinstance(entry, dict) or not entry.get("name"):
                errors["supported_formats"] = ["Each format needs a name (and optionally version, autoSelect, priority)."]
                break
            priority = entry.get("priority")
            if priority is not None and (not isinstance(priority, int) or priority < 1):
                errors["supported_formats"] = ["Priority must be a whole number of at least 1."]
                break
    allowed_protocols = {"v1", "v2", "grpc-v1", "grpc-v2"}
    if not isinstance(runtime.protocols, list) or not set(runtime.protocols) <= allowed_protocols:
        errors["protocols"] = [f"Protocols must be among {', '.join(sorted(allowed_protocols))}."]
    if not runtime.built_in and not runtime.container_image:
        errors["container_image"] = ["A custom runtime needs the image of its kserve-container."]
    if errors:
        raise ValidationError(errors)


@transaction.atomic
def runtime_create(*, actor, name: str, **fields) -> ServingRuntime:
    runtime = ServingRuntime(name=name, built_in=False, **fields)
    runtime.full_clean()
    if catalog.by_name(name) is not None:
        raise ValidationError({"name": [f"{name} is a built-in KServe runtime name; choose another."]})
    _validate_runtime(runtime)
    runtime.save()
    audit.record(action="runtime.create", actor=actor, target=runtime,
                 details={"new": _snapshot(runtime, ("name", *RUNTIME_FIELDS))})
    return runtime


@transaction.atomic
def runtime_update(*, actor, runtime: ServingRuntime, **changes) -> ServingRuntime:
    if runtime.built_in and set(changes) - {"disabled", "description"}:
        raise ValidationError("Built-in runtimes mirror KServe's defaults; only disable them or edit the description.")
    before = _snapshot(runtime, RUNTIME_FIELDS)
    for name, value in changes.items():
        setattr(runtime, name, value)
    runtime.full_clean()
    _validate_runtime(runtime)
    runtime.save()
    audit.record(action="runtime.update", actor=actor, target=runtime,
                 details=_diff(before, _snapshot(runtime, RUNTIME_FIELDS)))
    return runtime


def sync_builtin_runtimes() -> int:
    """Make the catalog rows of KServe's default runtimes match endpoints/catalog.py
    (idempotent; keeps an admin's ``disabled`` choice)."""
    count = 0
    for spec in catalog.BUILT_IN_RUNTIMES:
        if spec.multinode:
            continue  # multinode runtimes need workerSpec, which the console does not offer
        data = catalog.as_model_fields(spec)
        obj, created = ServingRuntime.objects.get_or_create(name=spec.name, defaults={**data, "built_in": True})
        if not created:
            changed = {k: v for k, v in data.items() if getattr(obj, k) != v}
            if changed:
                ServingRuntime.objects.filter(pk=obj.pk).update(**changed)
        count += 1
    return count


# --- projects --------------------------------------------------------------------------------

def _onboard_namespace(cluster: Cluster, namespace: str, project_name: str) -> None:
    """The namespace must exist (or is created) and must not carry KServe's ``control-plane``
    label: KServe's pod webhook skips such namespaces, so models there never get downloaded."""
    from endpoints.cluster import ClusterError

    try:
        client = cluster.client()
        existing = client.get_namespace(namespace)
        if existing is None:
            client.ensure_namespace(namespace, labels={**CONSOLE_NAMESPACE_LABELS,
                                                       "inference-console.io/project": project_name})
            return
    except ClusterError as exc:
        raise ValidationError({"namespace": [f"Cluster {cluster.name} could not be reached to check the "
                                             f"namespace: {exc}"]}) from exc
    labels = (existing.get("metadata") or {}).get("labels") or {}
    if "control-plane" in labels:
        raise ValidationError({"namespace": [
            f"Namespace {namespace} carries the 'control-plane' label; KServe's pod webhook skips such "
            "namespaces, so models deployed there would never be downloaded. Choose another namespace."]})


def project_onboard(*, project: Project) -> None:
    """Make sure the project's namespace exists on its cluster (created when missing, e.g. on a
    cluster rebuilt empty such as the in-memory sandbox after a restart); refuses, like project
    creation, a namespace KServe's pod webhook skips. Idempotent; changes nothing in the console."""
    _onboard_namespace(project.cluster, project.namespace, project.name)


@transaction.atomic
def project_create(*, actor, name: str, cluster: Cluster, namespace: str = "", display_name: str = "",
                   description: str = "", quotas: dict | None = None, onboard: bool = True) -> Project:
    namespace = namespace or name
    errors = {}
    if not DNS_LABEL.match(name) or len(name) > 63:
        errors["name"] = ["Use a DNS label: lowercase letters, digits and '-', starting with a letter."]
    elif name in RESERVED_PROJECT_NAMES:
        errors["name"] = [f"{name} is reserved: /projects/{name}/ is the console's own page. Choose another name."]
    if not DNS_LABEL.match(namespace) or len(namespace) > 63:
        errors["namespace"] = ["Use a DNS label: lowercase letters, digits and '-', starting with a letter."]
    elif namespace.startswith("kube-") or namespace in {"default", "kserve", "knative-serving", "istio-system"}:
        errors["namespace"] = [f"{namespace} is a system namespace; endpoints need a namespace of their own."]
    if errors:
        raise ValidationError(errors)
    if Project.objects.filter(cluster=cluster, namespace=namespace).exists():
        raise ValidationError({"namespace": [f"Namespace {namespace} on {cluster} already belongs to a project."]})
    if Project.objects.filter(name=name).exists():
        raise ValidationError({"name": [f"A project named {name} already exists."]})
    if onboard:
        _onboard_namespace(cluster, namespace, name)
    project = Project.objects.create(name=name, cluster=cluster, namespace=namespace, display_name=display_name,
                                     description=description, created_by=actor)
    for profile, limit in (quotas or {}).items():
        ProjectQuota.objects.create(project=project, hardware_profile=profile, max_accelerators=limit)
    audit.record(action="project.create", actor=actor, target=project, project=project,
                 details={"new": {"name": name, "cluster": cluster.name, "namespace": namespace,
                                  "quotas": {p.name: q for p, q in (quotas or {}).items()}}})
    return project


@transaction.atomic
def project_set_quota(*, actor, project: Project, profile: HardwareProfile, max_accelerators: int | None) -> None:
    existing = ProjectQuota.objects.filter(project=project, hardware_profile=profile).first()
    old = existing.max_accelerators if existing else None
    if max_accelerators is None:
        if existing:
            existing.delete()
    elif existing:
        existing.max_accelerators = max_accelerators
        existing.save(update_fields=["max_accelerators"])
    else:
        ProjectQuota.objects.create(project=project, hardware_profile=profile, max_accelerators=max_accelerators)
    audit.record(action="project.quota", actor=actor, target=project, project=project,
                 details={"profile": profile.name, "old": old, "new": max_accelerators})


@transaction.atomic
def project_rotate_ingest_key(*, actor, project: Project) -> Project:
    """A new payload-logger key: the old URL stops working at once, and every endpoint of the
    project gets a new generation so its logger is re-pointed."""
    project.ingest_key = catalog_new_key()
    project.save(update_fields=["ingest_key"])
    audit.record(action="project.rotate_ingest_key", actor=actor, target=project, project=project)
    for endpoint in project.endpoints.exclude(state=Endpoint.State.DELETING).filter(logging_mode__in=["all", "request", "response"]):
        _new_generation(endpoint, actor=actor, summary="payload logger key rotated", action=None)
    return project


def catalog_new_key() -> str:
    from endpoints.models import new_ingest_key

    return new_ingest_key()


# --- registry --------------------------------------------------------------------------------

@transaction.atomic
def model_register(*, actor, project: Project, name: str, task: str, description: str = "") -> RegisteredModel:
    if not DNS_LABEL.match(name) or len(name) > 63:
        raise ValidationError({"name": ["Use lowercase letters, digits and '-', starting with a letter."]})
    if RegisteredModel.objects.filter(project=project, name=name).exists():
        raise ValidationError({"name": [f"{project.name} already has a model named {name}."]})
    model = RegisteredModel(project=project, name=name, task=task, description=description, owner=actor)
    model.full_clean()
    model.save()
    audit.record(action="model.register", actor=actor, target=model, project=project,
                 details={"new": {"name": name, "task": task}})
    return model


def validate_storage_uri(uri: str, field: str = "storage_uri") -> None:
    from endpoints import validation

    errors = validation.storage_uri_errors(uri)
    if errors:
        raise ValidationError({field: errors})


SCRIPT_SCHEMES = frozenset({"javascript", "vbscript", "data"})


@transaction.atomic
def model_version_create(*, actor, model: RegisteredModel, storage_uri: str, model_format: str,
                         format_version: str = "", input_signature: list | None = None,
                         prediction_column: str = "", reference_file=None, reference_filename: str = "",
                         source_run_uri: str = "", description: str = "", aliases: list[str] | None = None
                         ) -> ModelVersion:
    """Register the next version of ``model``. A reference sample (CSV or Parquet) computes
    the reference profile that drift is measured against; a bad file refuses the whole
    registration with the reason, so nothing half-made is stored."""
    validate_storage_uri(storage_uri)
    if source_run_uri.strip().split(":", 1)[0].strip().lower() in SCRIPT_SCHEMES:
        raise ValidationError({"source_run_uri": ["Give the training run's address (e.g. https://… or runs:/…), "
                                                  "not a script."]})
    if not model_format:
        raise ValidationError({"model_format": ["Choose the model's format (e.g. sklearn, xgboost, huggingface)."]})
    profile = None
    rows = 0
    if reference_file is not None:
        try:
            profile = profiles.profile_from_file(reference_file, reference_filename,
                                                 prediction_column=prediction_column or None,
                                                 signature=input_signature or None)
        except profiles.ProfileError as exc:
            raise ValidationError({"reference_file": [str(exc)]}) from exc
        rows = profile["rows"]
        if not input_signature:
            input_signature = [{"name": f["name"], "type": f["type"]} for f in profile["features"]]
    # Lock the model row so concurrent registrations get consecutive numbers.
    RegisteredModel.objects.select_for_update().filter(pk=model.pk).first()
    number = (model.versions.aggregate(n=Max("version"))["n"] or 0) + 1
    version = ModelVersion.objects.create(
        model=model, version=number, storage_uri=storage_uri, model_format=model_format,
        format_version=format_version, input_signature=input_signature or [], prediction_column=prediction_column,
        reference_profile=profile, reference_filename=reference_filename[:255], reference_rows=rows,
        source_run_uri=source_run_uri, description=description, created_by=actor,
    )
    for alias in aliases or []:
        _alias_set(model, alias, version)
    audit.record(action="modelversion.create", actor=actor, target=version, project=model.project,
                 details={"new": {"model": model.name, "version": number, "storage_uri": storage_uri,
                                  "format": model_format, "format_version": format_version,
                                  "reference_rows": rows, "aliases": aliases or []}})
    return version


def _alias_set(model, name, version) -> None:
    if not re.match(r"^[a-z][-a-z0-9]{0,39}$", name):
        raise ValidationError({"aliases": [f"{name!r} is not a valid alias (lowercase letters, digits, '-')."]})
    ModelAlias.objects.update_or_create(model=model, name=name, defaults={"version": version})


@transaction.atomic
def alias_set(*, actor, version: ModelVersion, name: str) -> None:
    previous = ModelAlias.objects.filter(model=version.model, name=name).select_related("version").first()
    _alias_set(version.model, name, version)
    audit.record(action="model.alias", actor=actor, target=version.model, project=version.model.project,
                 details={"alias": name, "old": previous.version.version if previous else None,
                          "new": version.version})


# --- endpoints -------------------------------------------------------------------------------

def accelerators_at_max(endpoint) -> int:
    if not endpoint.hardware_profile_id:
        return 0
    return endpoint.accelerator_count * max(endpoint.max_replicas, endpoint.min_replicas)


def quota_remaining(endpoint) -> int | None:
    """Accelerators of the endpoint's profile the project may still request, not counting the
    endpoint itself; None when the project has no quota for the profile."""
    if not endpoint.hardware_profile_id:
        return None
    quota = ProjectQuota.objects.filter(project_id=endpoint.project_id,
                                        hardware_profile_id=endpoint.hardware_profile_id).first()
    if quota is None:
        return None
    others = (Endpoint.objects.filter(project_id=endpoint.project_id, hardware_profile_id=endpoint.hardware_profile_id)
              .exclude(pk=endpoint.pk).exclude(state=Endpoint.State.DELETING)
              .aggregate(total=Sum(F("accelerator_count") * F("max_replicas")))["total"] or 0)
    return max(quota.max_accelerators - others, 0)


def available_runtime_specs() -> list:
    return [specs.runtime_spec_for(r) for r in ServingRuntime.objects.all()]


def validate_endpoint(endpoint: Endpoint, *, previous_mode: str | None) -> None:
    """All field rules at once (endpoints/validation.py), raising ValidationError by field.
    A project is a tenant: an endpoint serves models registered in its own project only (its
    viewers would otherwise read another tenant's model and storage URI off its pages)."""
    from endpoints import validation

    errors: dict[str, list[str]] = {}
    try:
        validation.validate_endpoint(
            validation.draft_from_endpoint(endpoint, previous_mode=previous_mode,
                                           available_runtimes=available_runtime_specs(),
                                           quota_remaining=quota_remaining(endpoint),
                                           accelerators_requested=accelerators_at_max(endpoint))
        )
    except ValidationError as exc:
        errors = exc.message_dict
    for field, version in (("model_version", endpoint.model_version),
                           ("canary_version", endpoint.canary_version if endpoint.canary_version_id else None)):
        if version is not None and version.model.project_id != endpoint.project_id:
            errors.setdefault(field, []).append(
                f"{version.model.name} v{version.version} is registered in project {version.model.project.name}; "
                f"an endpoint of {endpoint.project.name} serves models registered in {endpoint.project.name}.")
    if errors:
        raise ValidationError(errors)


def _write_revision(endpoint: Endpoint, *, actor, summary: str) -> Revision:
    spec = specs.desired_spec(endpoint, available_runtimes=available_runtime_specs())
    manifest = reconcile.render(spec)
    Revision.objects.filter(endpoint=endpoint, outcome=Revision.Outcome.PENDING).update(
        outcome=Revision.Outcome.SUPERSEDED)
    return Revision.objects.create(endpoint=endpoint, generation=endpoint.generation, spec=spec, manifest=manifest,
                                   change_summary=summary[:300], created_by=actor,
                                   actor_name=actor.get_username() if actor else "system")


def _enqueue_reconcile(endpoint_id: int) -> None:
    from endpoints.tasks import reconcile_endpoint_task

    reconcile_endpoint_task.delay_on_commit(endpoint_id=endpoint_id)


@transaction.atomic
def endpoint_create(*, actor, project: Project, name: str, model_version: ModelVersion, **config) -> Endpoint:
    unknown = set(config) - set(ENDPOINT_FIELDS)
    if unknown:
        raise ValidationError({"__all__": [f"Unknown endpoint fields: {', '.join(sorted(unknown))}."]})
    endpoint = Endpoint(project=project, name=name, model_version=model_version, created_by=actor, **config)
    validate_endpoint(endpoint, previous_mode=None)
    if Endpoint.objects.filter(project=project, name=name).exists():
        raise ValidationError({"name": [f"{project.name} already has an endpoint named {name}."]})
    endpoint.generation = 1
    try:
        with transaction.atomic():
            endpoint.save()
    except IntegrityError as exc:
        raise ValidationError({"name": [f"{project.name} already has an endpoint named {name}."]}) from exc
    EndpointStatus.objects.create(endpoint=endpoint)
    revision = _write_revision(endpoint, actor=actor, summary="created")
    audit.record(action="endpoint.create", actor=actor, target=endpoint, project=project,
                 details={"generation": 1, "new": specs.audit_view(revision.spec)})
    _enqueue_reconcile(endpoint.pk)
    return endpoint


def _locked(endpoint: Endpoint) -> Endpoint:
    return Endpoint.objects.select_for_update(of=("self",)).select_related(
        "project", "project__cluster", "model_version", "model_version__model", "runtime", "hardware_profile",
        "canary_version").get(pk=endpoint.pk)


def _applied_mode(endpoint: Endpoint) -> str | None:
    status = EndpointStatus.objects.filter(endpoint=endpoint).first()
    if status is not None and status.applied_generation > 0:
        first = endpoint.revisions.filter(outcome=Revision.Outcome.APPLIED).order_by("generation").first()
        return (first.spec["deployment_mode"] if first else endpoint.deployment_mode)
    return None


def _new_generation(endpoint: Endpoint, *, actor, summary: str, action: str | None,
                    old_spec: dict | None = None, extra: dict | None = None) -> Revision:
    endpoint.generation += 1
    endpoint.save()
    revision = _write_revision(endpoint, actor=actor, summary=summary)
    if action:
        details = {"generation": endpoint.generation, **(extra or {})}
        if old_spec is not None:
            details.update(specs.audit_diff(old_spec, revision.spec))
        audit.record(action=action, actor=actor, target=endpoint, project=endpoint.project, details=details)
    _enqueue_reconcile(endpoint.pk)
    return revision


@transaction.atomic
def endpoint_update(*, actor, endpoint: Endpoint, summary: str = "", **changes) -> Endpoint:
    """Change the desired state. Nothing changes (no new generation) when the result would
    render the same spec."""
    unknown = set(changes) - set(ENDPOINT_FIELDS)
    if unknown:
        raise ValidationError({"__all__": [f"Unknown endpoint fields: {', '.join(sorted(unknown))}."]})
    endpoint = _locked(endpoint)
    if endpoint.state == Endpoint.State.DELETING:
        raise ValidationError("The endpoint is being deleted.")
    old_spec = specs.desired_spec(endpoint, available_runtimes=available_runtime_specs())
    old_description = endpoint.description
    for name, value in changes.items():
        setattr(endpoint, name, value)
    validate_endpoint(endpoint, previous_mode=_applied_mode(endpoint))
    new_spec = specs.desired_spec(endpoint, available_runtimes=available_runtime_specs())
    if specs.without_generation(new_spec) == specs.without_generation(old_spec):
        if "description" in changes and changes["description"] != old_description:
            endpoint.save(update_fields=["description", "updated_at"])
            audit.record(action="endpoint.update", actor=actor, target=endpoint, project=endpoint.project,
                         details={"old": {"description": old_description},
                                  "new": {"description": endpoint.description}})
        return endpoint
    _new_generation(endpoint, actor=actor, summary=summary or specs.summarize(old_spec, new_spec),
                    action="endpoint.update", old_spec=old_spec)
    return endpoint


@transaction.atomic
def endpoint_rollback(*, actor, endpoint: Endpoint, revision: Revision) -> Endpoint:
    """A new generation whose desired state is an old revision's."""
    if revision.endpoint_id != endpoint.pk:
        raise ValidationError({"revision": ["That revision belongs to another endpoint."]})
    endpoint = _locked(endpoint)
    old_spec = specs.desired_spec(endpoint, available_runtimes=available_runtime_specs())
    for name, value in specs.fields_from_spec(revision.spec).items():
        setattr(endpoint, name, value)
    validate_endpoint(endpoint, previous_mode=_applied_mode(endpoint))
    new_spec = specs.desired_spec(endpoint, available_runtimes=available_runtime_specs())
    if specs.without_generation(new_spec) == specs.without_generation(old_spec):
        return endpoint  # already the configuration of that revision: nothing to roll back
    _new_generation(endpoint, actor=actor, summary=f"rollback to generation {revision.generation}",
                    action="endpoint.rollback", old_spec=old_spec, extra={"from_generation": revision.generation})
    return endpoint


@transaction.atomic
def endpoint_promote_canary(*, actor, endpoint: Endpoint) -> Endpoint:
    endpoint = _locked(endpoint)
    if not endpoint.canary_version_id:
        raise ValidationError({"canary_version": ["The endpoint has no canary to promote."]})
    old_spec = specs.desired_spec(endpoint, available_runtimes=available_runtime_specs())
    endpoint.model_version = endpoint.canary_version
    endpoint.canary_version = None
    endpoint.canary_traffic_percent = None
    validate_endpoint(endpoint, previous_mode=_applied_mode(endpoint))
    _new_generation(endpoint, actor=actor, summary=f"promoted canary v{endpoint.model_version.version}",
                    action="endpoint.promote", old_spec=old_spec)
    return endpoint


@transaction.atomic
def endpoint_set_state(*, actor, endpoint: Endpoint, stopped: bool) -> Endpoint:
    """Stop (KServe tears the workload down, keeping the object) or start again."""
    endpoint = _locked(endpoint)
    target = Endpoint.State.STOPPED if stopped else Endpoint.State.ACTIVE
    if endpoint.state == target:
        return endpoint
    if endpoint.state == Endpoint.State.DELETING:
        raise ValidationError("The endpoint is being deleted.")
    endpoint.state = target
    _new_generation(endpoint, actor=actor, summary="stopped" if stopped else "started",
                    action="endpoint.stop" if stopped else "endpoint.start")
    return endpoint


@transaction.atomic
def endpoint_delete(*, actor, endpoint: Endpoint) -> Endpoint:
    """Mark for deletion; a worker deletes the InferenceService, then the row."""
    endpoint = _locked(endpoint)
    if endpoint.state == Endpoint.State.DELETING:
        return endpoint
    endpoint.state = Endpoint.State.DELETING
    endpoint.save(update_fields=["state", "updated_at"])
    audit.record(action="endpoint.delete", actor=actor, target=endpoint, project=endpoint.project,
                 details={"generation": endpoint.generation})
    from endpoints.tasks import delete_endpoint_task

    delete_endpoint_task.delay_on_commit(endpoint_id=endpoint.pk)
    return endpoint


# --- applying to the cluster (run by workers) ---------------------------------------------------

def _claim(endpoint: Endpoint, generation: int, claimant: str) -> bool:
    """Claim ``generation`` for this worker with a conditional UPDATE (works on SQLite too,
    where SELECT ... FOR UPDATE is ignored). A claim is free when it is for an older
    generation, when it is this claimant's own (a redelivered task keeps its id), or when it
    is older than the task time limit (its worker is gone)."""
    from django.conf import settings
    from django.db.models import Q

    now = timezone.now()
    stale = now - timezone.timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT)
    claimable = (Q(reconcile_claimed_generation__lt=generation) | Q(reconcile_claimed_by=claimant)
                 | Q(reconcile_claimed_at__lt=stale) | Q(reconcile_claimed_at__isnull=True))
    return bool(EndpointStatus.objects.filter(Q(pk=endpoint.pk) & claimable).update(
        reconcile_claimed_generation=generation, reconcile_claimed_at=now, reconcile_claimed_by=claimant[:64]))


def _release(endpoint: Endpoint, generation: int, claimant: str) -> None:
    EndpointStatus.objects.filter(pk=endpoint.pk, reconcile_claimed_generation=generation,
                                  reconcile_claimed_by=claimant[:64]).update(
        reconcile_claimed_generation=generation - 1, reconcile_claimed_at=None, reconcile_claimed_by="")


def _finish_claim(endpoint: Endpoint, claimant: str) -> None:
    """The work is done: later passes (drift repair) may claim the generation again."""
    EndpointStatus.objects.filter(pk=endpoint.pk, reconcile_claimed_by=claimant[:64]).update(
        reconcile_claimed_at=None, reconcile_claimed_by="")


def endpoint_apply(*, endpoint_id: int, claimant: str = "", force: bool = False, reason: str = "") -> str:
    """Apply the endpoint's current generation (server-side apply of its revision's
    manifest). Returns "applied", "failed" or "skipped". Transient cluster errors propagate
    so the task retries; permanent ones mark the endpoint Failed with the API's message."""
    import uuid

    from endpoints.cluster import PermanentClusterError

    claimant = claimant or uuid.uuid4().hex
    endpoint = (Endpoint.objects.select_related("project", "project__cluster", "runtime")
                .filter(pk=endpoint_id).first())
    if endpoint is None or endpoint.state == Endpoint.State.DELETING:
        return "skipped"
    generation = endpoint.generation
    revision = endpoint.revisions.filter(generation=generation).first()
    if revision is None:
        return "skipped"
    status, _ = EndpointStatus.objects.get_or_create(endpoint=endpoint)
    if not force and status.applied_generation >= generation and status.last_reconcile_result == "applied":
        return "skipped"
    if not _claim(endpoint, generation, claimant):
        return "skipped"  # another worker is applying this generation right now
    client = endpoint.project.cluster.client()
    now = timezone.now()
    try:
        runtime = endpoint.runtime
        if runtime is not None and not runtime.built_in:
            client.apply_serving_runtime(serving_runtime_manifest(runtime, endpoint.project.namespace))
        live = client.apply(revision.manifest)
    except PermanentClusterError as exc:
        with transaction.atomic():
            EndpointStatus.objects.filter(pk=endpoint.pk).update(
                phase=EndpointStatus.Phase.FAILED, ready=False, last_reconcile_at=now,
                last_reconcile_result="failed", last_error=str(exc))
            _finish_claim(endpoint, claimant)
            Revision.objects.filter(pk=revision.pk).update(outcome=Revision.Outcome.FAILED, message=str(exc))
            audit.record(action="endpoint.apply", actor=None, actor_name="reconciler", target=endpoint,
                         project=endpoint.project, outcome=audit.FAILURE,
                         details={"generation": generation, "error": str(exc)})
        return "failed"
    except Exception as exc:
        # Transient: let the next attempt (a retry, or the periodic pass) claim it again.
        _release(endpoint, generation, claimant)
        EndpointStatus.objects.filter(pk=endpoint.pk).update(
            last_reconcile_at=now, last_reconcile_result="retrying", last_error=str(exc)[:2000])
        raise
    observed = observe_live(live, stopped_desired=endpoint.state == Endpoint.State.STOPPED)
    with transaction.atomic():
        # Only record the generation this pass applied if nothing newer was applied meanwhile.
        EndpointStatus.objects.filter(pk=endpoint.pk, applied_generation__lte=generation).update(
            applied_generation=generation, applied_spec_hash=reconcile.spec_hash(revision.manifest),
            last_reconcile_at=now, last_reconcile_result="applied", last_error="",
            last_synced_at=now, **_status_fields(observed, deploying=True),
        )
        _finish_claim(endpoint, claimant)
        Revision.objects.filter(pk=revision.pk).update(outcome=Revision.Outcome.APPLIED, message="")
        Revision.objects.filter(endpoint=endpoint, generation__lt=generation,
                                outcome__in=[Revision.Outcome.APPLIED, Revision.Outcome.PENDING]).update(
            outcome=Revision.Outcome.SUPERSEDED)
        audit.record(action="endpoint.apply", actor=None, actor_name="reconciler", target=endpoint,
                     project=endpoint.project,
                     details={"generation": generation, "reason": reason or "desired state changed",
                              "resource_version": ((live or {}).get("metadata") or {}).get("resourceVersion")})
    return "applied"


def observe_live(live: dict | None, *, stopped_desired: bool):
    from endpoints import status as status_reading

    return status_reading.observe(live, stopped_desired=stopped_desired)


def _status_fields(observed, *, deploying: bool = False) -> dict:
    """EndpointStatus columns from an observation. Right after an apply the controller has
    not reacted yet, so a Ready reading of the previous spec counts as Deploying."""
    phase = observed.phase
    if deploying and phase in (EndpointStatus.Phase.READY, EndpointStatus.Phase.PENDING):
        phase = EndpointStatus.Phase.DEPLOYING
    return {
        "phase": phase, "ready": observed.ready, "url": observed.url, "address_url": observed.address_url,
        "conditions": observed.conditions, "traffic": observed.traffic, "model_status": observed.model_status,
        "observed_runtime": observed.runtime,
    }


def serving_runtime_manifest(runtime: ServingRuntime, namespace: str) -> dict:
    """The namespaced ServingRuntime object of a custom runtime."""
    from django.conf import settings

    spec: dict = {
        "supportedModelFormats": runtime.supported_formats,
        "containers": [{"name": "kserve-container", "image": runtime.container_image,
                        "args": list(runtime.container_args or [])}],
        "disabled": runtime.disabled,
    }
    if runtime.protocols:
        spec["protocolVersions"] = list(runtime.protocols)
    return {
        "apiVersion": "serving.kserve.io/v1alpha1",
        "kind": "ServingRuntime",
        "metadata": {"name": runtime.name, "namespace": namespace,
                     "labels": {"app.kubernetes.io/managed-by": "inference-console",
                                "inference-console.io/instance": settings.CONSOLE_INSTANCE}},
        "spec": spec,
    }


def is_managed_by_this_console(labels: dict) -> bool:
    """Only objects carrying this console instance's labels are ever deleted: a restored
    database or a second console must not remove what it does not own."""
    from django.conf import settings

    return (labels.get("app.kubernetes.io/managed-by") == "inference-console"
            and labels.get("inference-console.io/instance") == settings.CONSOLE_INSTANCE)


def endpoint_remove(*, endpoint_id: int) -> str:
    """Delete the InferenceService (only one this console manages), then the endpoint row."""
    endpoint = Endpoint.objects.select_related("project", "project__cluster").filter(pk=endpoint_id).first()
    if endpoint is None:
        return "gone"
    if endpoint.state != Endpoint.State.DELETING:
        return "skipped"
    client = endpoint.project.cluster.client()
    live = client.get("InferenceService", endpoint.project.namespace, endpoint.name)
    labels = ((live or {}).get("metadata") or {}).get("labels") or {}
    if live is not None and is_managed_by_this_console(labels):
        client.delete("InferenceService", endpoint.project.namespace, endpoint.name)
    with transaction.atomic():
        audit.record(action="endpoint.deleted", actor=None, actor_name="reconciler", target=endpoint,
                     project=endpoint.project, details={"isvc_deleted": live is not None})
        endpoint.delete()
    return "deleted"


# --- status sync and the periodic reconcile pass ---------------------------------------------

def endpoint_sync_status(*, endpoint_id: int) -> str | None:
    """Read one endpoint's InferenceService and record what it reports. Returns the phase."""
    from endpoints.cluster import ClusterError

    endpoint = Endpoint.objects.select_related("project", "project__cluster", "status").filter(pk=endpoint_id).first()
    if endpoint is None or endpoint.state == Endpoint.State.DELETING:
        return None
    from endpoints import status as status_reading

    namespace = endpoint.project.namespace
    try:
        client = endpoint.project.cluster.client()
        live = client.get("InferenceService", namespace, endpoint.name)
        explanation: list[str] = []
        if live is None or not observe_live(live, stopped_desired=False).ready:
            # Events and pods only for an endpoint that is not ready: the "why" of the page.
            explanation = status_reading.explain(live, client.events_for(namespace, endpoint.name),
                                                 client.pods_for(namespace, endpoint.name))
    except ClusterError as exc:
        EndpointStatus.objects.filter(pk=endpoint.pk).update(
            phase=EndpointStatus.Phase.UNKNOWN, ready=False, last_error=f"cluster unreachable: {exc}"[:2000],
            explanation=[f"The cluster could not be read: {exc}"])
        return EndpointStatus.Phase.UNKNOWN
    phase = _record_observation(endpoint, live, timezone.now())
    if phase == EndpointStatus.Phase.FAILED and endpoint.status.last_error and not explanation:
        explanation = [endpoint.status.last_error]
    EndpointStatus.objects.filter(pk=endpoint.pk).update(explanation=explanation)
    return phase


def _observation_fields(endpoint: Endpoint, live: dict | None) -> dict:
    from endpoints import status as status_reading

    status = endpoint.status
    observed = observe_live(live, stopped_desired=endpoint.state == Endpoint.State.STOPPED)
    fields = _status_fields(observed)
    if observed.ready or observed.phase == EndpointStatus.Phase.STOPPED:
        fields["explanation"] = []
    elif not status.explanation or live is None or fields["phase"] != status.phase:
        # The pass reads only the list: conditions and model status. The per-endpoint sync
        # adds events and pods; keep its richer explanation while the phase is unchanged (a
        # new phase, e.g. a re-created object that now fails, makes the old one stale).
        fields["explanation"] = status_reading.explain(live)
    else:
        fields["explanation"] = status.explanation
    if status.last_reconcile_result == "failed" and status.applied_generation < endpoint.generation:
        # The latest generation was refused by the API server: what runs is an older one.
        fields["phase"] = EndpointStatus.Phase.FAILED
    elif live is None and status.applied_generation == 0:
        fields["phase"] = EndpointStatus.Phase.PENDING
    return fields


def _record_observation(endpoint: Endpoint, live: dict | None, now) -> str:
    fields = _observation_fields(endpoint, live)
    EndpointStatus.objects.filter(pk=endpoint.pk).update(last_synced_at=now, **fields)
    return fields["phase"]


def reconcile_cluster(*, cluster: Cluster, max_deletions: int | None = None) -> dict:
    """One level-triggered pass over a cluster: ONE list call per project namespace, then
    record every endpoint's observed status, re-apply what drifted (audited), apply what is
    missing or was never applied, and delete managed objects that have no endpoint — unless
    that would delete more than ``max_deletions`` objects, in which case nothing is deleted
    and an alert is raised. An unchanged fleet costs one list call per namespace and no
    writes to the cluster."""
    from django.conf import settings

    from endpoints.cluster import ClusterError

    if max_deletions is None:
        max_deletions = settings.RECONCILE_MAX_DELETIONS
    report = {"listed": 0, "applied": 0, "drift_corrected": 0, "deleted": 0, "orphans": 0, "errors": []}
    client = cluster.client()
    selector = f"app.kubernetes.io/managed-by=inference-console,inference-console.io/instance={settings.CONSOLE_INSTANCE}"
    orphans: list[tuple[str, str]] = []
    to_apply: list[tuple[int, str]] = []
    now = timezone.now()
    for project in cluster.projects.all().order_by("pk"):
        endpoints = list(project.endpoints.select_related("status").all())
        try:
            items, _rv = client.list(project.namespace, selector)
        except ClusterError as exc:
            report["errors"].append(f"{project.namespace}: {exc}")
            EndpointStatus.objects.filter(endpoint__project=project).exclude(
                endpoint__state=Endpoint.State.DELETING).update(
                phase=EndpointStatus.Phase.UNKNOWN, ready=False, last_error=f"cluster unreachable: {exc}"[:2000])
            continue
        report["listed"] += 1
        live_by_name = {item["metadata"]["name"]: item for item in items}
        changed_statuses: list[EndpointStatus] = []
        revisions = {r.endpoint_id: r for r in Revision.objects.filter(
            endpoint__project=project).filter(generation=F("endpoint__generation"))}
        for endpoint in endpoints:
            live = live_by_name.pop(endpoint.name, None)
            if endpoint.state == Endpoint.State.DELETING:
                if live is not None:
                    to_apply.append((endpoint.pk, "delete"))
                continue
            status = getattr(endpoint, "status", None)
            if status is None:
                status = EndpointStatus.objects.create(endpoint=endpoint)
                endpoint.status = status
            fields = _observation_fields(endpoint, live)
            if any(getattr(status, name) != value for name, value in fields.items()):
                for name, value in fields.items():
                    setattr(status, name, value)
                changed_statuses.append(status)
            revision = revisions.get(endpoint.pk)
            if revision is None:
                continue
            if live is None:
                to_apply.append((endpoint.pk, "missing from the cluster"))
            elif status.applied_generation < endpoint.generation and status.last_reconcile_result != "failed":
                to_apply.append((endpoint.pk, "generation not applied yet"))
            elif status.applied_generation == endpoint.generation:
                drifted = reconcile.drifted_paths(live, revision.manifest)
                if drifted:
                    _audit_drift(endpoint, live, revision.manifest, drifted)
                    to_apply.append((endpoint.pk, "drift"))
        # Status rows are written only when what the cluster reports changed; the sync time
        # of the whole namespace is one UPDATE.
        if changed_statuses:
            # One plain UPDATE per changed row: bulk_update's CASE expressions over JSON
            # columns cost far more to build than the statements themselves.
            with transaction.atomic():
                for changed in changed_statuses:
                    EndpointStatus.objects.filter(pk=changed.pk).update(
                        **{name: getattr(changed, name) for name in _STATUS_COLUMNS})
        EndpointStatus.objects.filter(endpoint__project=project).update(last_synced_at=now)
        for name, item in live_by_name.items():
            if is_managed_by_this_console((item.get("metadata") or {}).get("labels") or {}):
                orphans.append((project.namespace, name))
    for endpoint_id, reason in to_apply:
        try:
            if reason == "delete":
                endpoint_remove(endpoint_id=endpoint_id)
                continue
            result = endpoint_apply(endpoint_id=endpoint_id, force=True, reason=reason)
        except ClusterError as exc:
            report["errors"].append(f"endpoint {endpoint_id}: {exc}")
            continue
        if result == "applied":
            report["drift_corrected" if reason == "drift" else "applied"] += 1
    report["orphans"] = len(orphans)
    if orphans:
        if len(orphans) > max_deletions:
            _raise_alert(cluster, ReconcileAlert.Kind.DELETION_CAP,
                         f"The reconciler found {len(orphans)} InferenceServices labelled as managed by this console "
                         f"with no endpoint in its database, more than the safety cap of {max_deletions}. Nothing "
                         "was deleted: check whether the database was restored from an old backup or another "
                         "console shares the instance label, then delete them by hand or raise the cap.",
                         {"orphans": [f"{ns}/{name}" for ns, name in orphans[:100]], "cap": max_deletions})
        else:
            for namespace, name in orphans:
                try:
                    client.delete("InferenceService", namespace, name)
                except ClusterError as exc:
                    report["errors"].append(f"{namespace}/{name}: {exc}")
                    continue
                report["deleted"] += 1
                audit.record(action="isvc.delete_orphan", actor=None, actor_name="reconciler",
                             target_type="inferenceservice", target_id=f"{namespace}/{name}",
                             target_repr=f"{namespace}/{name}",
                             details={"reason": "managed by this console but no endpoint exists"})
    return report


_STATUS_COLUMNS = ("phase", "ready", "url", "address_url", "conditions", "traffic", "model_status",
                   "observed_runtime", "explanation")


def _audit_drift(endpoint: Endpoint, live: dict, manifest: dict, paths: list[str]) -> None:
    before = redact_ingest_keys({path: _path_value(live, path) for path in paths})
    after = redact_ingest_keys({path: _path_value(manifest, path) for path in paths})
    with transaction.atomic():
        EndpointStatus.objects.filter(pk=endpoint.pk).update(drift_corrections=F("drift_corrections") + 1)
        audit.record(action="endpoint.drift_corrected", actor=None, actor_name="reconciler", target=endpoint,
                     project=endpoint.project,
                     details={"old": before, "new": after,
                              "reason": "the live InferenceService was changed outside the console"})


def _path_value(obj: dict, path: str):
    node = obj
    for key in reconcile.split_path(path):
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def _raise_alert(cluster: Cluster, kind: str, message: str, details: dict) -> ReconcileAlert:
    alert = ReconcileAlert.objects.filter(cluster=cluster, kind=kind, resolved_at__isnull=True).first()
    if alert is None:
        alert = ReconcileAlert.objects.create(cluster=cluster, kind=kind, message=message, details=details)
        audit.record(action="reconcile.alert", actor=None, actor_name="reconciler", target=cluster,
                     outcome=audit.DENIED, details={"kind": kind, "message": message, **details})
    else:
        alert.message, alert.details = message, details
        alert.save(update_fields=["message", "details", "last_seen_at"])
    return alert


@transaction.atomic
def alert_resolve(*, actor, alert: ReconcileAlert) -> bool:
    """A person looked at a reconciler alert and dealt with it: it leaves the admin pages, and
    the next pass that meets the same problem raises a new one. Resolving an alert someone
    already resolved changes nothing and records nothing (two admins clicking at once, or a
    stale page); returns whether this call resolved it."""
    now = timezone.now()
    # A conditional UPDATE, not save(): the reconciler may be refreshing the same row's message.
    if not ReconcileAlert.objects.filter(pk=alert.pk, resolved_at__isnull=True).update(resolved_at=now):
        return False
    alert.resolved_at = now
    audit.record(action="reconcile.alert_resolved", actor=actor, target=alert.cluster,
                 details={"kind": alert.kind, "alert_id": alert.pk, "message": alert.message})
    return True


def reconcile_all() -> dict[str, dict]:
    return {cluster.name: reconcile_cluster(cluster=cluster) for cluster in Cluster.objects.filter(enabled=True)}
