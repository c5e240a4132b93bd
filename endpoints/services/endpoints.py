"""An endpoint's desired state. Every change is validated with the rules of
``endpoints.validation`` (the wizard and the API report the same messages), bumps
``generation``, writes an immutable ``Revision`` (desired-spec snapshot and rendered manifest)
and its audit event in one transaction, and enqueues reconciliation after commit."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, Sum

from audit import services as audit
from endpoints import catalog, reconcile, validation
from endpoints import spec as specs
from endpoints.capabilities import Capabilities
from endpoints.models import (
    Endpoint,
    EndpointStatus,
    ModelVersion,
    Project,
    ProjectQuota,
    Revision,
    ServingRuntime,
)
from endpoints.quantities import parse_quantity
from endpoints.services import lifecycle
from endpoints.services.capabilities import capabilities_for

# Endpoint fields a user may set (everything else is derived or owned by the console).
ENDPOINT_FIELDS = (
    "description", "model_version", "runtime", "protocol", "deployment_mode", "min_replicas", "max_replicas",
    "scale_metric", "scale_target", "container_concurrency", "timeout_seconds", "hardware_profile",
    "accelerator_count", "cpu_request", "cpu_limit", "memory_request", "memory_limit", "env", "args",
    "canary_version", "canary_traffic_percent", "logging_mode",
)


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


_READ = object()


def available_runtime_specs(project: Project | None = None, capabilities=_READ) -> list:
    """The runtimes KServe can use for an endpoint of ``project``: as installed on its cluster
    (the ClusterServingRuntimes and the namespace's ServingRuntimes, with the formats, versions
    and priorities declared *there*), plus the console's custom runtimes, which the console
    installs in the namespace at deploy time. Without a project or a usable reading of its
    cluster: the console's catalog (an offline preview)."""
    rows = list(ServingRuntime.objects.all())
    known = {r.name: specs.runtime_spec_for(r) for r in rows}
    if project is None:
        return list(known.values())
    reading = cluster_reading(project) if capabilities is _READ else capabilities
    if reading is None:
        return list(known.values())
    on_cluster = reading.runtime_specs(project.namespace, known)
    names = {spec.name for spec in on_cluster}
    return [*on_cluster, *(known[r.name] for r in rows if r.console_installs and r.name not in names)]


def runtime_not_installed(endpoint: Endpoint, capabilities) -> str | None:
    """Why the endpoint's explicit runtime cannot serve on its cluster (not installed there), or None."""
    runtime = endpoint.runtime if endpoint.runtime_id else None
    if runtime is None or capabilities is None or runtime.console_installs:
        return None
    installed = {r["name"] for r in capabilities.runtimes_for(endpoint.project.namespace)}
    if runtime.name in installed:
        return None
    cluster = endpoint.project.cluster.name
    return (f"Runtime {runtime.name} is not installed on cluster {cluster} (neither as a ClusterServingRuntime nor "
            f"in namespace {endpoint.project.namespace}); KServe would report RuntimeNotRecognized. Installed there: "
            f"{', '.join(sorted(installed)) or 'none'}. Choose one of those, or leave the runtime automatic.")


def cluster_reading(project: Project) -> Capabilities | None:
    """The reading of the project's cluster the rules and the renderer use: the stored one,
    re-read only when older than ``CLUSTER_CAPABILITIES_MAX_AGE``; None when there is no usable
    reading (never read, unreachable, no KServe), so nothing is refused on a guess."""
    reading = capabilities_for(project.cluster)
    return reading if reading is not None and reading.usable else None


def cluster_context(project: Project) -> tuple[Capabilities | None, list]:
    """(the reading of the project's cluster, the runtimes available there): read once per
    operation and handed to validation, the desired spec and rendering."""
    reading = cluster_reading(project)
    return reading, available_runtime_specs(project, reading)


def validate_endpoint(endpoint: Endpoint, *, previous_mode: str | None, capabilities=_READ,
                      available_runtimes: list | None = None, zero_accelerators_kept: bool = False) -> None:
    """All field rules at once (endpoints/validation.py), raising ValidationError by field,
    including the rules of the project's cluster (``capabilities``: its reading, read through
    ``cluster_reading`` unless given; None skips them).
    A project is a tenant: an endpoint serves models registered in its own project only (its
    viewers would otherwise read another tenant's model and storage URI off its pages)."""
    if capabilities is _READ:
        capabilities = cluster_reading(endpoint.project)
    errors: dict[str, list[str]] = {}
    try:
        validation.validate_endpoint(
            validation.draft_from_endpoint(endpoint, previous_mode=previous_mode,
                                           available_runtimes=(available_runtimes if available_runtimes is not None
                                                               else available_runtime_specs(endpoint.project,
                                                                                            capabilities)),
                                           quota_remaining=quota_remaining(endpoint),
                                           accelerators_requested=accelerators_at_max(endpoint),
                                           capabilities=capabilities,
                                           zero_accelerators_kept=zero_accelerators_kept)
        )
    except ValidationError as exc:
        errors = exc.message_dict
    if missing := runtime_not_installed(endpoint, capabilities):
        errors.setdefault("runtime", []).append(missing)
    from endpoints.services import nim  # nim builds on this module's services

    for field, messages in nim.endpoint_problems(endpoint, capabilities).items():
        errors.setdefault(field, []).extend(messages)
    for field, version in (("model_version", endpoint.model_version),
                           ("canary_version", endpoint.canary_version if endpoint.canary_version_id else None)):
        if version is not None and version.model.project_id != endpoint.project_id:
            errors.setdefault(field, []).append(
                f"{version.model.name} v{version.version} is registered in project {version.model.project.name}; "
                f"an endpoint of {endpoint.project.name} serves models registered in {endpoint.project.name}.")
    if errors:
        raise ValidationError(errors)


def _quantity(value):
    try:
        return parse_quantity(str(value)) if value else None
    except ValueError:
        return None


def apply_profile_defaults(endpoint: Endpoint, *, previous_profile=None, available_runtimes=None) -> None:
    """Give an endpoint its hardware profile's defaults where it leaves CPU or memory empty: the
    default becomes the request, and the limit too where the profile says so
    (``defaults_as_limits``, which makes any request without a limit its own limit) or where the
    runtime's default limit would sit below the default request (Kubernetes refuses that pod).
    A value that was the defaults of ``previous_profile`` (the profile before this change)
    follows the new profile, so switching profiles does not strand the old one's numbers.

    Runs when an endpoint is created or changed (and on plans of those changes), so endpoints
    that existed before take the defaults on their next change, and its plan shows them."""
    profile = endpoint.hardware_profile if endpoint.hardware_profile_id else None
    if previous_profile is not None and previous_profile != profile:
        for kind in ("cpu", "memory"):
            old_default = _quantity(getattr(previous_profile, f"default_{kind}"))
            request = getattr(endpoint, f"{kind}_request")
            if old_default is None or _quantity(request) != old_default:
                continue
            setattr(endpoint, f"{kind}_request", "")
            if _quantity(getattr(endpoint, f"{kind}_limit")) == old_default:
                setattr(endpoint, f"{kind}_limit", "")
    if profile is None:
        return
    runtime_defaults = None
    if endpoint.model_version_id:
        available = (available_runtimes if available_runtimes is not None
                     else available_runtime_specs(endpoint.project))
        runtime = specs.effective_runtime(endpoint, available)
        runtime_defaults = catalog.container_defaults_for(runtime) if runtime is not None else None
    for kind in ("cpu", "memory"):
        default = getattr(profile, f"default_{kind}")
        filled = False
        if not getattr(endpoint, f"{kind}_request") and _quantity(default):
            limit = _quantity(getattr(endpoint, f"{kind}_limit"))
            if limit is None or limit >= _quantity(default):  # a lower limit of the user's wins
                setattr(endpoint, f"{kind}_request", default)
                filled = True
        request = _quantity(getattr(endpoint, f"{kind}_request"))
        if request is None or getattr(endpoint, f"{kind}_limit"):
            continue
        runtime_limit = _quantity(getattr(runtime_defaults, f"{kind}_limit", "")) if runtime_defaults else None
        if profile.defaults_as_limits or (filled and runtime_limit is not None and runtime_limit < request):
            setattr(endpoint, f"{kind}_limit", getattr(endpoint, f"{kind}_request"))


def _write_revision(endpoint: Endpoint, *, actor, summary: str, context=None) -> Revision:
    reading, available = context or cluster_context(endpoint.project)
    spec = specs.desired_spec(endpoint, available_runtimes=available)
    # Rendered for the project's cluster (mode spelling, logger fields its release declares).
    manifest = reconcile.render(spec, reading)
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
    lifecycle.refuse_archived_versions(endpoint)
    context = cluster_context(project)
    apply_profile_defaults(endpoint, available_runtimes=context[1])
    validate_endpoint(endpoint, previous_mode=None, capabilities=context[0], available_runtimes=context[1])
    if Endpoint.objects.filter(project=project, name=name).exists():
        raise ValidationError({"name": [f"{project.name} already has an endpoint named {name}."]})
    endpoint.generation = 1
    try:
        with transaction.atomic():
            endpoint.save()
    except IntegrityError as exc:
        raise ValidationError({"name": [f"{project.name} already has an endpoint named {name}."]}) from exc
    EndpointStatus.objects.create(endpoint=endpoint)
    revision = _write_revision(endpoint, actor=actor, summary="created", context=context)
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


def new_generation(endpoint: Endpoint, *, actor, summary: str, action: str | None,
                   old_spec: dict | None = None, extra: dict | None = None, context=None,
                   pauses_rollout: bool = True) -> Revision:
    """Bump the endpoint's generation, write its revision, audit ``action`` (with the spec
    diff from ``old_spec``; None: the caller audits its own event) and enqueue the apply.
    Runs inside the caller's transaction, with the endpoint row locked. A change a person
    makes while an automated rollout runs pauses the rollout, audited (``pauses_rollout`` False:
    the rollout's own steps and changes the console makes on its own, such as a key rotation)."""
    if pauses_rollout:
        from endpoints.services.rollouts import pause_for_manual_change

        pause_for_manual_change(endpoint=endpoint, actor=actor, summary=summary)
    endpoint.generation += 1
    endpoint.save()
    revision = _write_revision(endpoint, actor=actor, summary=summary, context=context)
    if action:
        details = {"generation": endpoint.generation, **(extra or {})}
        if old_spec is not None:
            details.update(specs.audit_diff(old_spec, revision.spec))
        audit.record(action=action, actor=actor, target=endpoint, project=endpoint.project, details=details)
    _enqueue_reconcile(endpoint.pk)
    return revision


@transaction.atomic
def endpoint_update(*, actor, endpoint: Endpoint, summary: str = "", by_rollout: bool = False,
                    audit_extra: dict | None = None, **changes) -> Endpoint:
    """Change the desired state. Nothing changes (no new generation) when the result would
    render the same spec. ``by_rollout``: a step of an automated rollout (which must not pause
    itself); ``audit_extra``: what decided it, added to the audit event."""
    unknown = set(changes) - set(ENDPOINT_FIELDS)
    if unknown:
        raise ValidationError({"__all__": [f"Unknown endpoint fields: {', '.join(sorted(unknown))}."]})
    endpoint = _locked(endpoint)
    if endpoint.state == Endpoint.State.DELETING:
        raise ValidationError("The endpoint is being deleted.")
    context = cluster_context(endpoint.project)
    old_spec = specs.desired_spec(endpoint, available_runtimes=context[1])
    old_description = endpoint.description
    previous_versions = {"previous_version_id": endpoint.model_version_id,
                         "previous_canary_id": endpoint.canary_version_id}
    previous_profile = endpoint.hardware_profile if endpoint.hardware_profile_id else None
    for name, value in changes.items():
        setattr(endpoint, name, value)
    lifecycle.refuse_archived_versions(endpoint, **previous_versions)
    apply_profile_defaults(endpoint, previous_profile=previous_profile, available_runtimes=context[1])
    validate_endpoint(endpoint, previous_mode=_applied_mode(endpoint), capabilities=context[0],
                      available_runtimes=context[1])
    new_spec = specs.desired_spec(endpoint, available_runtimes=context[1])
    if specs.without_generation(new_spec) == specs.without_generation(old_spec):
        if "description" in changes and changes["description"] != old_description:
            endpoint.save(update_fields=["description", "updated_at"])
            audit.record(action="endpoint.update", actor=actor, target=endpoint, project=endpoint.project,
                         details={"old": {"description": old_description},
                                  "new": {"description": endpoint.description}})
        return endpoint
    new_generation(endpoint, actor=actor, summary=summary or specs.summarize(old_spec, new_spec),
                    action="endpoint.update", old_spec=old_spec, context=context, extra=audit_extra,
                    pauses_rollout=not by_rollout)
    return endpoint


@transaction.atomic
def restart_for_credentials(*, actor, endpoint: Endpoint, connection) -> Endpoint:
    """A new generation whose pods carry the connection's new secret version, so a serving
    container that reads the credential at start (a Hugging Face token) restarts with the
    rotated value. Part of the rotation's transaction; audited as its own change."""
    endpoint = _locked(endpoint)
    if endpoint.state == Endpoint.State.DELETING:
        return endpoint
    context = cluster_context(endpoint.project)
    old_spec = specs.desired_spec(endpoint, available_runtimes=context[1])
    current = endpoint.revisions.filter(generation=endpoint.generation).first()
    if current is not None and current.spec == old_spec:
        return endpoint  # already carries the new version
    new_generation(endpoint, actor=actor, summary=f"restart: credentials of connection {connection.name} rotated",
                   action="endpoint.update", old_spec=current.spec if current else None,
                   extra={"reason": f"connection {connection.name} rotated to secret version "
                                    f"{connection.secret_version}"}, context=context, pauses_rollout=False)
    return endpoint


@transaction.atomic
def endpoint_rollback(*, actor, endpoint: Endpoint, revision: Revision) -> Endpoint:
    """A new generation whose desired state is an old revision's."""
    if revision.endpoint_id != endpoint.pk:
        raise ValidationError({"revision": ["That revision belongs to another endpoint."]})
    endpoint = _locked(endpoint)
    context = cluster_context(endpoint.project)
    old_spec = specs.desired_spec(endpoint, available_runtimes=context[1])
    for name, value in specs.fields_from_spec(revision.spec).items():
        setattr(endpoint, name, value)
    # The revision's hardware ran before: a GPU profile with 0 accelerators from before that
    # rule is restored as it was (refusing a rollback in an incident would be worse).
    validate_endpoint(endpoint, previous_mode=_applied_mode(endpoint), capabilities=context[0],
                      available_runtimes=context[1], zero_accelerators_kept=True)
    new_spec = specs.desired_spec(endpoint, available_runtimes=context[1])
    if specs.without_generation(new_spec) == specs.without_generation(old_spec):
        return endpoint  # already the configuration of that revision: nothing to roll back
    new_generation(endpoint, actor=actor, summary=f"rollback to generation {revision.generation}",
                    action="endpoint.rollback", old_spec=old_spec, extra={"from_generation": revision.generation},
                    context=context)
    return endpoint


@transaction.atomic
def endpoint_promote_canary(*, actor, endpoint: Endpoint, by_rollout: bool = False,
                            audit_extra: dict | None = None) -> Endpoint:
    """The canary becomes the primary (all traffic); ``by_rollout`` and ``audit_extra`` as for
    ``endpoint_update``."""
    endpoint = _locked(endpoint)
    if not endpoint.canary_version_id:
        raise ValidationError({"canary_version": ["The endpoint has no canary to promote."]})
    context = cluster_context(endpoint.project)
    old_spec = specs.desired_spec(endpoint, available_runtimes=context[1])
    endpoint.model_version = endpoint.canary_version
    endpoint.canary_version = None
    endpoint.canary_traffic_percent = None
    # Promotion changes versions only: the hardware stays as it runs.
    validate_endpoint(endpoint, previous_mode=_applied_mode(endpoint), capabilities=context[0],
                      available_runtimes=context[1], zero_accelerators_kept=True)
    new_generation(endpoint, actor=actor, summary=f"promoted canary v{endpoint.model_version.version}",
                    action="endpoint.promote", old_spec=old_spec, context=context, extra=audit_extra,
                    pauses_rollout=not by_rollout)
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
    new_generation(endpoint, actor=actor, summary="stopped" if stopped else "started",
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
