"""Plan before apply: what a change will do, computed before anything is stored.

A plan shows the desired-field diff, the rendered manifest diff against the live object,
the API server's dry-run verdict (both read through ``ClusterClient``), and the impact:
whether pods restart, accelerators needed at max replicas including rollout surge against
the profile's capacity and the project's quota, and traffic moved by a canary.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field

from django.db.models import F, Sum

from console.redaction import redact_ingest_keys
from endpoints import cluster_rules, reconcile
from endpoints import spec as specs

# Annotations that change on every generation. The deployment guide adds them to KServe's
# serviceAnnotationDisallowedList so they never reach pods; they are not pod changes (unless
# the cluster's reading says they are not kept off the pods).
from endpoints.capabilities import BOOKKEEPING_ANNOTATIONS, Capabilities
from endpoints.cluster import ClusterError, PermanentClusterError
from endpoints.models import Endpoint, ProjectQuota

# Predictor fields that never touch the pod template.
TRAFFIC_ONLY_FIELDS = {"canaryTrafficPercent"}
# Fields that, in Standard mode, only reconfigure the HPA.
STANDARD_SCALING_FIELDS = {"minReplicas", "maxReplicas", "scaleMetric", "scaleTarget"}
STANDARD_MAX_SURGE = 0.25  # Kubernetes' default RollingUpdate maxSurge


@dataclass
class AcceleratorImpact:
    profile: str
    resource: str
    per_replica: int
    at_max: int
    surge: int
    peak: int
    capacity: int
    used_elsewhere: int
    shortfall: int
    quota: int | None
    quota_used_elsewhere: int


@dataclass
class Plan:
    endpoint_name: str
    namespace: str
    generation: int
    is_new: bool
    field_changes: list[tuple[str, object, object]]
    manifest: dict
    manifest_yaml: str
    live_exists: bool | None = None
    live_error: str = ""
    manifest_diff: str = ""
    dry_run_ok: bool | None = None
    dry_run_message: str = ""
    dry_run_causes: list[dict] = field(default_factory=list)
    restart: bool = False
    restart_reasons: list[str] = field(default_factory=list)
    accelerators: AcceleratorImpact | None = None
    traffic: dict | None = None
    warnings: list[str] = field(default_factory=list)
    # Storage preflight per version the change serves (endpoints.services.connections.Preflight),
    # and the connection objects the console writes in the namespace (names only).
    storage: list = field(default_factory=list)
    connection_objects: list[str] = field(default_factory=list)

    @property
    def has_changes(self) -> bool:
        return self.is_new or bool(self.field_changes)

    @property
    def storage_blocked(self) -> bool:
        """The storage itself said an artifact cannot be downloaded: applying would only fail."""
        return any(result.blocking for result in self.storage)


def _pod_template(manifest: dict, mode: str, *, bookkeeping_on_pods: bool = False) -> dict:
    """The parts of a manifest that end up in the pods (or the Knative revision)."""
    predictor = dict(manifest.get("spec", {}).get("predictor", {}))
    for name in TRAFFIC_ONLY_FIELDS:
        predictor.pop(name, None)
    if mode == "Standard":
        for name in STANDARD_SCALING_FIELDS:
            predictor.pop(name, None)
    metadata = manifest.get("metadata", {})
    annotations = {k: v for k, v in (metadata.get("annotations") or {}).items()
                   if bookkeeping_on_pods or k not in BOOKKEEPING_ANNOTATIONS}
    return {"predictor": predictor, "annotations": annotations, "labels": metadata.get("labels") or {}}


def restart_impact(old_manifest: dict | None, new_manifest: dict, mode: str, *,
                   bookkeeping_on_pods: bool = False) -> tuple[bool, list[str]]:
    """(whether pods restart, why). ``bookkeeping_on_pods``: the cluster copies the console's
    per-generation annotations onto the pods, so every new generation restarts them."""
    if old_manifest is None:
        return False, []
    old_stopped = (old_manifest["metadata"].get("annotations") or {}).get("serving.kserve.io/stop") == "true"
    new_stopped = (new_manifest["metadata"].get("annotations") or {}).get("serving.kserve.io/stop") == "true"
    if new_stopped and not old_stopped:
        return True, ["the endpoint is stopped: every pod is terminated"]
    if old_stopped and not new_stopped:
        return True, ["the endpoint is started: pods are created"]
    before = specs.flatten(_pod_template(old_manifest, mode, bookkeeping_on_pods=bookkeeping_on_pods))
    after = specs.flatten(_pod_template(new_manifest, mode, bookkeeping_on_pods=bookkeeping_on_pods))
    changed = sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p))
    if not changed:
        return False, []
    how = ("a new Knative revision rolls out" if mode == "Knative" else "the Deployment rolls its pods")
    return True, [f"{how}: {', '.join(changed[:6])}" + (" …" if len(changed) > 6 else "")]


def accelerator_impact(endpoint: Endpoint, *, restart: bool, canary: bool) -> AcceleratorImpact | None:
    profile = endpoint.hardware_profile
    if profile is None or not profile.accelerator_resource or not endpoint.accelerator_count:
        return None
    per_replica = endpoint.accelerator_count
    replicas = max(endpoint.max_replicas, endpoint.min_replicas)
    at_max = per_replica * replicas
    surge = 0
    if restart or canary:
        if endpoint.deployment_mode == "Knative":
            # The new revision starts beside the old one; with a canary both keep running,
            # so the new revision may grow to its own maximum.
            surge = per_replica * (replicas if canary else max(endpoint.min_replicas, 1))
        else:
            surge = per_replica * math.ceil(replicas * STANDARD_MAX_SURGE)
    others = Endpoint.objects.filter(hardware_profile=profile).exclude(state=Endpoint.State.DELETING)
    if endpoint.pk:
        others = others.exclude(pk=endpoint.pk)
    used_elsewhere = others.aggregate(t=Sum(F("accelerator_count") * F("max_replicas")))["t"] or 0
    peak = at_max + surge
    quota = ProjectQuota.objects.filter(project_id=endpoint.project_id, hardware_profile=profile).first()
    quota_used = (others.filter(project_id=endpoint.project_id)
                  .aggregate(t=Sum(F("accelerator_count") * F("max_replicas")))["t"] or 0)
    return AcceleratorImpact(
        profile=str(profile), resource=profile.accelerator_resource, per_replica=per_replica, at_max=at_max,
        surge=surge, peak=peak, capacity=profile.capacity, used_elsewhere=used_elsewhere,
        shortfall=max(0, used_elsewhere + peak - profile.capacity),
        quota=quota.max_accelerators if quota else None, quota_used_elsewhere=quota_used,
    )


def _traffic(old_spec: dict | None, new_spec: dict) -> dict | None:
    old_canary = (old_spec or {}).get("canary") or {}
    new_canary = new_spec.get("canary") or {}
    before = old_canary.get("traffic_percent") or 0
    after = new_canary.get("traffic_percent") or 0
    if not old_canary and not new_canary:
        return None
    if old_canary and not new_canary:
        promoted = (old_spec or {}).get("model", {}).get("version_id") != new_spec["model"]["version_id"]
        return {"before": before, "after": 100 if promoted else 0, "promoted": promoted,
                "description": ("the canary is promoted: it receives all traffic" if promoted
                                else "the canary is removed: all traffic returns to the current version")}
    return {"before": before, "after": after, "promoted": False,
            "description": f"{after}% of requests go to v{new_canary['version']}, {100 - after}% to the "
                           f"previously rolled-out revision (moving {abs(after - before)}%)"}


def _gpu_image_warnings(endpoint: Endpoint, available, capabilities: Capabilities | None) -> list[str]:
    profile = endpoint.hardware_profile if endpoint.hardware_profile_id else None
    if profile is None or not profile.accelerator_resource or not endpoint.accelerator_count:
        return []
    runtime, _ = specs.serving_runtime_and_protocol(endpoint, available)
    if runtime is None:
        return []
    warning = cluster_rules.gpu_image_warning(
        runtime_name=runtime.name, resource=profile.accelerator_resource, count=endpoint.accelerator_count,
        profile=profile.name, capabilities=capabilities, namespace=endpoint.project.namespace)
    return [warning] if warning else []


def live_owned_fields(live: dict, manifest: dict, old_manifest: dict | None) -> dict:
    """The console-owned part of the live object, to diff against the new manifest: every field
    the console applied (the live object's managedFields; the previous manifest where the object
    records none) and every field the new manifest sets. Server-side apply removes the ones the
    new manifest no longer sends, so they must show as removals."""
    paths = reconcile.managed_field_paths(manifest)
    applied = reconcile.applied_field_paths(live)
    if applied is None:
        applied = reconcile.managed_field_paths(old_manifest or {})
    return reconcile.subset_at(live, paths | applied)


def _describe_cluster_error(exc) -> tuple[str, list[dict]]:
    causes = [{"field": c.field, "message": c.message} for c in exc.causes]
    return exc.message, causes


def compute(endpoint: Endpoint, *, old_spec: dict | None, old_manifest: dict | None, client=None,
            capabilities: Capabilities | None = None) -> Plan:
    """The plan for ``endpoint`` as it would be after the change (an unsaved or modified
    instance). ``client`` is the cluster client to read live state and dry-run with; None
    skips both (e.g. when the cluster is disabled). ``capabilities`` is the cluster's reading:
    the manifest is rendered for it and the plan says what that costs (None: KServe 0.20)."""
    from endpoints.models import ServingRuntime

    available = [specs.runtime_spec_for(r) for r in ServingRuntime.objects.all()]
    new_spec = specs.desired_spec(endpoint, available_runtimes=available)
    new_spec["generation"] = (old_spec or {}).get("generation", 0) + 1
    manifest = reconcile.render(new_spec, capabilities)
    plan = Plan(
        endpoint_name=endpoint.name, namespace=endpoint.project.namespace, generation=new_spec["generation"],
        is_new=old_spec is None, field_changes=specs.field_changes(old_spec, new_spec), manifest=manifest,
        manifest_yaml=reconcile.canonical_yaml(manifest),
    )
    cluster_name = endpoint.project.cluster.name
    bookkeeping_on_pods = capabilities is not None and not capabilities.bookkeeping_kept_off_pods
    plan.restart, plan.restart_reasons = restart_impact(old_manifest, manifest, endpoint.deployment_mode,
                                                        bookkeeping_on_pods=bookkeeping_on_pods)
    if old_manifest is None:
        plan.restart_reasons = ["pods are created for the first time"]
    elif bookkeeping_on_pods:
        plan.restart_reasons.append(cluster_rules.bookkeeping_note(cluster_name))
    if bookkeeping_on_pods:
        plan.warnings.append(cluster_rules.bookkeeping_note(cluster_name))
    if capabilities is not None:
        dropped = cluster_rules.droppable_logger_fields(reconcile.render(new_spec)["spec"], capabilities)
        if dropped:
            plan.warnings.append(cluster_rules.logger_loss_note(dropped, capabilities, cluster_name))
    plan.warnings.extend(_gpu_image_warnings(endpoint, available, capabilities))
    plan.traffic = _traffic(old_spec, new_spec)
    plan.accelerators = accelerator_impact(endpoint, restart=plan.restart or plan.is_new,
                                           canary=bool(new_spec.get("canary")))
    if plan.accelerators and plan.accelerators.shortfall:
        a = plan.accelerators
        plan.warnings.append(
            f"{a.profile} capacity is {a.capacity} {a.resource}; {a.used_elsewhere} are requested by other "
            f"endpoints and this change needs up to {a.peak} (including rollout surge): short by {a.shortfall}. "
            "Pods beyond capacity stay Pending until accelerators free up.")
    if client is not None:
        try:
            live = client.get("InferenceService", endpoint.project.namespace, endpoint.name)
        except ClusterError as exc:
            plan.live_error = f"The live object could not be read: {_describe_cluster_error(exc)[0]}"
        else:
            plan.live_exists = live is not None
            live_subset = live_owned_fields(live, manifest, old_manifest) if live is not None else {}
            plan.manifest_diff = "".join(difflib.unified_diff(
                reconcile.canonical_yaml(live_subset).splitlines(keepends=True) if live is not None else [],
                plan.manifest_yaml.splitlines(keepends=True),
                fromfile="live" if live is not None else "live (not found)", tofile="desired",
            ))
        try:
            client.dry_run_apply(manifest)
        except PermanentClusterError as exc:
            plan.dry_run_ok = False
            plan.dry_run_message, plan.dry_run_causes = _describe_cluster_error(exc)
        except ClusterError as exc:
            plan.dry_run_ok = None
            plan.dry_run_message = f"The cluster could not be reached for a dry run: {_describe_cluster_error(exc)[0]}"
        else:
            plan.dry_run_ok = True
            plan.dry_run_message = "The API server accepts this manifest (server-side dry run)."
    # A plan is for reading (the apply renders again from the saved spec): the project's ingest
    # key is shown masked, here and in the live object's side of the diff.
    plan.manifest = redact_ingest_keys(plan.manifest)
    plan.manifest_yaml = redact_ingest_keys(plan.manifest_yaml)
    plan.manifest_diff = redact_ingest_keys(plan.manifest_diff)
    return plan
