"""Proposed changes to an endpoint, before anything is stored: the wizard, the plan page and
the API's plan actions all go through here.

A *proposal* is the endpoint as a change would leave it (an unsaved ``Endpoint``), beside the
endpoint as it is. ``validate_proposed`` runs the services' own rules on it without writing,
and ``plan_for`` computes its plan (``endpoints.plan.compute``) against the current revision,
reading the live object and dry-running through the project's cluster client.

The plan page keeps a pending change in the session as an *entry*: its kind, the ids of the
endpoint or project, and the changed fields with related objects as primary keys
(``encode_changes``). ``proposal_from_entry`` rebuilds the proposal against the current state,
resolving those keys through the same restricted choices the wizard offers, so an object the
user lost access to (or an admin disabled) meanwhile is refused.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.http import Http404

from console.permissions import get_visible_or_404, visible
from endpoints import connections as rules
from endpoints import plan as plans
from endpoints import reconcile, selectors
from endpoints import spec as specs
from endpoints.models import Endpoint, Project
from endpoints.services import connections as connection_services
from endpoints.services.endpoints import apply_profile_defaults, cluster_reading, validate_endpoint

# Fields holding a related object: stored in a session entry as primary keys and resolved
# again through the same restricted querysets when the plan is shown or confirmed.
RELATED_FIELDS = ("model_version", "runtime", "hardware_profile", "canary_version")

KIND_TITLES = {
    "create": "Create endpoint {name}",
    "update": "Change endpoint {name}",
    "rollback": "Roll back endpoint {name}",
    "promote": "Promote the canary of {name}",
    "stop": "Stop endpoint {name}",
    "start": "Start endpoint {name}",
}

def endpoint_by_id(*, user, pk: int, action: str = "view") -> Endpoint:
    """One endpoint through the chokepoint: 404 when invisible, 403 without ``action``."""
    return get_visible_or_404(selectors.endpoint_queryset(), user, action, pk=pk)


def applied_mode(endpoint: Endpoint) -> str | None:
    """The deployment mode KServe recorded, or None when the endpoint was never applied (the
    mode may still change then). The stored mode cannot change after an apply (the service
    refuses), so the row's value is the applied one."""
    status = selectors.endpoint_status(endpoint)
    if status is not None and status.applied_generation > 0:
        return Endpoint.objects.filter(pk=endpoint.pk).values_list("deployment_mode", flat=True).first()
    return None


# --- pending changes as stored between requests ---------------------------------------------------

def encode_changes(changes: dict) -> dict:
    """Changed fields with related objects as primary keys (what a session can hold)."""
    return {name: (value.pk if hasattr(value, "pk") else value) for name, value in changes.items()}


def decode_changes(changes: dict, *, user, endpoint: Endpoint | None, project: Project | None = None) -> dict:
    """Resolve stored primary keys through the same restricted choices the wizard offers (the
    versions of the endpoint's project): an object the user lost access to (or an admin
    disabled) meanwhile is refused."""
    project = endpoint.project if endpoint is not None else project
    querysets = {
        "model_version": selectors.version_choices_for(user=user, project=project),
        "canary_version": selectors.version_choices_for(user=user, project=project),
        "runtime": selectors.runtime_choices(endpoint),
        "hardware_profile": selectors.hardware_choices(endpoint),
    }
    decoded = {}
    for name, value in changes.items():
        if name in RELATED_FIELDS and value is not None:
            obj = querysets[name].filter(pk=value).first()
            if obj is None:
                raise ValidationError({name: ["This choice is no longer available to you."]})
            value = obj
        decoded[name] = value
    return decoded


# --- proposals ------------------------------------------------------------------------------------

@dataclass
class Proposal:
    """A change as the plan page shows it: the endpoint as it would be (unsaved), the
    endpoint as it is (None for a new one), and the changed fields."""

    kind: str
    endpoint: Endpoint
    current: Endpoint | None
    changes: dict
    title: str
    description: str = ""


def new_endpoint(**fields) -> Endpoint:
    """An unsaved endpoint for a plan. Model defaults are ``TextChoices`` members, which the
    YAML dumper of ``reconcile.canonical_yaml`` refuses; a saved row holds plain strings, and
    so does this one."""
    endpoint = Endpoint(**fields)
    for field in Endpoint._meta.concrete_fields:
        value = getattr(endpoint, field.attname)
        if isinstance(value, enum.Enum):
            setattr(endpoint, field.attname, value.value)
    return endpoint


def proposal_from_entry(entry: dict, *, user) -> Proposal:
    """Rebuild the proposed endpoint of a pending change against the current state (404 when
    the endpoint, its revision or its canary is gone; 403 without deploy)."""
    kind = entry["kind"]
    if kind == "create":
        project = get_visible_or_404(Project.objects.select_related("cluster"), user, "deploy",
                                     pk=entry["project_id"])
        changes = decode_changes(entry["changes"], user=user, endpoint=None, project=project)
        proposed = new_endpoint(project=project, name=entry["name"], created_by=user, **changes)
        return Proposal(kind, proposed, None, changes, KIND_TITLES[kind].format(name=entry["name"]))
    current = endpoint_by_id(user=user, pk=entry["endpoint_id"], action="deploy")
    if current.state == Endpoint.State.DELETING:
        raise Http404("The endpoint is being deleted.")
    proposed = endpoint_by_id(user=user, pk=entry["endpoint_id"], action="deploy")
    changes: dict = {}
    description = ""
    if kind == "update":
        changes = decode_changes(entry["changes"], user=user, endpoint=current)
        for name, value in changes.items():
            setattr(proposed, name, value)
    elif kind == "rollback":
        revision = current.revisions.filter(generation=entry["revision"]).first()
        if revision is None:
            raise Http404("No such revision.")
        for name, value in specs.fields_from_spec(revision.spec).items():
            setattr(proposed, name, value)
        description = (f"A new generation with the desired state of generation {revision.generation} "
                       f"({revision.change_summary or 'no summary'}, {revision.created_at:%Y-%m-%d %H:%M} UTC).")
    elif kind == "promote":
        if not current.canary_version_id:
            raise Http404("The endpoint has no canary.")
        proposed.model_version = current.canary_version
        proposed.canary_version = None
        proposed.canary_traffic_percent = None
        description = (f"Version {current.canary_version.version} becomes the endpoint's model version and "
                       "receives all traffic.")
    elif kind in ("stop", "start"):
        proposed.state = Endpoint.State.STOPPED if kind == "stop" else Endpoint.State.ACTIVE
        description = ("KServe deletes the endpoint's pods and keeps the InferenceService; requests fail until "
                       "it is started again." if kind == "stop" else
                       "KServe creates the endpoint's pods again with its current configuration.")
    return Proposal(kind, proposed, current, changes, KIND_TITLES[kind].format(name=current.name), description)


def validate_proposed(proposed: Endpoint, *, current: Endpoint | None, user,
                      defaults: bool = True) -> ValidationError | None:
    """The services' rules on a proposed endpoint (``current`` None: a new one), without
    storing anything; None when it passes. ``defaults``: the proposal is a create or an edit,
    so it first takes its hardware profile's defaults as the service will
    (``apply_profile_defaults``), and the plan shows them."""
    if defaults:
        previous = current.hardware_profile if current is not None and current.hardware_profile_id else None
        apply_profile_defaults(proposed, previous_profile=previous)
    try:
        validate_endpoint(proposed, previous_mode=applied_mode(current) if current is not None else None)
        if current is None:
            clash = visible(Endpoint.objects.filter(project=proposed.project, name=proposed.name), user, "deploy")
            if clash.exists():
                raise ValidationError({"name": [f"{proposed.project.name} already has an endpoint named "
                                                f"{proposed.name}."]})
    except ValidationError as exc:
        return exc
    return None


def validate_proposal(proposal: Proposal, *, user) -> ValidationError | None:
    """The services' rules on a proposal (stop and start carry none)."""
    if proposal.kind in ("stop", "start"):
        return None
    return validate_proposed(proposal.endpoint, current=proposal.current, user=user,
                             defaults=proposal.kind in ("create", "update"))


# --- plans --------------------------------------------------------------------------------------------

def current_state(endpoint: Endpoint) -> tuple[dict, dict]:
    """(spec, manifest) of the endpoint's current generation: its revision's, or rendered
    from the rows when the revision is missing."""
    revision = endpoint.revisions.filter(generation=endpoint.generation).first()
    if revision is not None:
        return revision.spec, revision.manifest
    spec = specs.desired_spec(endpoint)
    return spec, reconcile.render(spec, cluster_reading(endpoint.project))


def _cluster_client(project: Project):
    """(client, reason): the project's cluster client, or None and why the plan cannot read
    live state or dry-run."""
    cluster = project.cluster
    if not cluster.enabled:
        return None, f"Cluster {cluster.name} is disabled, so the live object and a dry run were not checked."
    try:
        return cluster.client(), ""
    except Exception as exc:  # a broken kubeconfig or missing in-cluster credentials
        return None, f"Cluster {cluster.name} could not be reached ({exc}); the live object was not read."


def plan_for(proposed: Endpoint, *, current: Endpoint | None):
    """(plan, cluster note): ``endpoints.plan.compute`` for a proposed endpoint against the
    current one's latest revision (``current`` None: a new endpoint), rendered for the
    cluster's reading (re-read first when stale), reading the live object and dry-running
    through the project's cluster client."""
    old_spec, old_manifest = current_state(current) if current is not None else (None, None)
    capabilities = cluster_reading(proposed.project)
    client, reason = _cluster_client(proposed.project)
    try:
        plan = plans.compute(proposed, old_spec=old_spec, old_manifest=old_manifest, client=client,
                             capabilities=capabilities)
    finally:
        if client is not None:
            client.close()
    _storage_preflight(plan, proposed, current)
    _nim_cache_note(plan, proposed)
    return plan, reason


def _nim_cache_note(plan, proposed: Endpoint) -> None:
    """Name the model-cache claim a NIM runtime installed with "create the cache" applies (docs/nim.md)."""
    from endpoints.services import nim as nim_services

    runtime = proposed.runtime if proposed.runtime_id else None
    if runtime is None or not runtime.nim:
        return
    manifest = nim_services.cache_manifest(runtime, proposed.project.namespace)
    if manifest is None:
        plan.connection_objects.append(
            f"NIM runtime {runtime.name} serves from PersistentVolumeClaim {nim_services.cache_of(runtime)['name']}, "
            f"which the cluster admin provides in namespace {proposed.project.namespace}: the pods wait until it "
            "exists.")
        return
    spec = manifest["spec"]
    plan.connection_objects.append(
        f"NIM runtime {runtime.name}: the console applies PersistentVolumeClaim {manifest['metadata']['name']} "
        f"({spec['resources']['requests']['storage']}, {', '.join(spec['accessModes'])}, storage class "
        f"{spec.get('storageClassName') or 'the default'}) in namespace {proposed.project.namespace}, before the "
        "runtime; the NIM keeps its downloaded engine there and the console never deletes it.")


def _storage_preflight(plan, proposed: Endpoint, current: Endpoint | None) -> None:
    """Check the artifacts of the versions the change rolls out with their connections' credentials
    (only those that change: a running version was checked when it was planned), and name the
    connection objects the console will write."""
    versions = [("model version", proposed.model_version)]
    if proposed.canary_version_id:
        versions.append(("canary version", proposed.canary_version))
    serving_before = set()
    if current is not None:
        serving_before = {current.model_version_id, current.canary_version_id}
    for label, version in versions:
        if version is None or version.pk in serving_before:
            continue
        connection = version.connection if version.connection_id else None
        plan.storage.append(connection_services.preflight(version.storage_uri, connection))
        if connection is not None:
            name = rules.object_name(connection.name, platform=connection.is_platform)
            objects = f"Secret {name} and ServiceAccount {name}" if connection.kind != "oci" else f"pull Secret {name}"
            plan.connection_objects.append(
                f"{label} v{version.version} uses connection {connection.name}: the console writes {objects} in "
                f"namespace {proposed.project.namespace} (values are never shown) and the pods run as that account.")
