"""Platform objects every project uses: clusters, hardware profiles and the runtime catalog.
Platform admins write them; each write is audited with the fields it changed."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction

from audit import services as audit
from endpoints import catalog, quantities
from endpoints.models import Cluster, HardwareProfile, ServingRuntime
from endpoints.services import capabilities as capability_services


def _snapshot(obj, fields) -> dict:
    return {name: getattr(obj, name) for name in fields}


def _diff(before: dict, after: dict) -> dict:
    """Audit details of an edit: the old and new value of every field that changed."""
    return {"old": {k: v for k, v in before.items() if after[k] != v},
            "new": {k: v for k, v in after.items() if before[k] != v}}


# --- clusters -----------------------------------------------------------------------------


def _verified_reading(cluster: Cluster):
    """Read the cluster as it would be saved; ``ValidationError`` on ``enabled`` when the console
    could not use it (unreachable, credentials refused, no KServe), so nothing is saved enabled."""
    reading = capability_services.verify_connection(cluster)
    if not reading.usable:
        raise ValidationError({"enabled": [
            f"Not saved as enabled: {capability_services.connection_summary(reading)} Fix the connection, "
            "or untick Enabled to save the cluster disabled."]})
    return reading


def cluster_create(*, actor, verify: bool = False, **fields) -> Cluster:
    """Add a cluster. With ``verify`` (the admin pages and the API) an enabled cluster is read
    first and refused when the console could not use it; its reading is stored with it."""
    cluster = Cluster(**fields)
    cluster.full_clean()
    reading = _verified_reading(cluster) if verify and cluster.enabled else None
    with transaction.atomic():
        cluster = _cluster_create(actor=actor, cluster=cluster)
        if reading is not None:
            capability_services.store_reading(cluster=cluster, reading=reading)
    return cluster


def _cluster_create(*, actor, cluster: Cluster) -> Cluster:
    cluster.save()
    audit.record(action="cluster.create", actor=actor, target=cluster,
                 details={"new": _snapshot(cluster, ("name", "kind", "connection", "kubeconfig_context",
                                                     "api_url", "ingress_domain", "gateway_address", "enabled"))})
    return cluster


def cluster_update(*, actor, cluster: Cluster, verify: bool = False, **changes) -> Cluster:
    """Edit a cluster; with ``verify``, an enabled result is read first (see ``cluster_create``)."""
    candidate = Cluster.objects.get(pk=cluster.pk)
    for name, value in changes.items():
        setattr(candidate, name, value)
    candidate.full_clean()
    reading = _verified_reading(candidate) if verify and candidate.enabled else None
    with transaction.atomic():
        cluster = _cluster_update(actor=actor, cluster=cluster, changes=changes)
        if reading is not None:
            capability_services.store_reading(cluster=cluster, reading=reading)
    return cluster


def _cluster_update(*, actor, cluster: Cluster, changes: dict) -> Cluster:
    visible = ("description", "kind", "connection", "kubeconfig_path", "kubeconfig_context", "api_url",
               "ingress_domain", "gateway_address", "enabled")
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


# --- hardware profiles --------------------------------------------------------------------


HARDWARE_FIELDS = ("display_name", "description", "accelerator_resource", "accelerator_product", "node_selector",
                   "tolerations", "default_cpu", "default_memory", "defaults_as_limits", "max_cpu", "max_memory",
                   "max_accelerators_per_replica", "capacity", "enabled")


def _validate_hardware(profile: HardwareProfile) -> None:
    """The profile's own rules: quantities that parse, defaults within the maxima (endpoints get
    the defaults as requests, and a request above the maximum is refused), and a GPU profile
    that can request a GPU (a CPU-only profile is one without an accelerator)."""
    errors: dict[str, list[str]] = {}
    parsed = {}
    for name in ("default_cpu", "default_memory", "max_cpu", "max_memory"):
        try:
            parsed[name] = quantities.parse_quantity(getattr(profile, name))
        except ValueError as exc:
            errors.setdefault(name, []).append(str(exc))
            continue
        if parsed[name] <= 0:
            errors.setdefault(name, []).append("Must be more than 0.")
    for kind, label in (("cpu", "CPU"), ("memory", "memory")):
        default, maximum = parsed.get(f"default_{kind}"), parsed.get(f"max_{kind}")
        if default is not None and maximum is not None and 0 < maximum < default:
            errors.setdefault(f"default_{kind}", []).append(
                f"The default {label} {getattr(profile, f'default_{kind}')} is above the profile's maximum "
                f"{getattr(profile, f'max_{kind}')}: endpoints get the default as their request, which the "
                "maximum would refuse.")
    if profile.accelerator_resource and "/" not in profile.accelerator_resource:
        errors.setdefault("accelerator_resource", []).append(
            "Use the extended resource name, e.g. nvidia.com/gpu.")
    if not profile.accelerator_resource and profile.max_accelerators_per_replica:
        errors.setdefault("max_accelerators_per_replica", []).append(
            "A CPU-only profile (no accelerator resource) cannot allow accelerators.")
    if profile.accelerator_resource and not profile.max_accelerators_per_replica:
        errors.setdefault("max_accelerators_per_replica", []).append(
            f"A profile with an accelerator ({profile.accelerator_resource}) requests at least 1 per replica: allow "
            "1 or more, or clear the accelerator resource for a CPU-only profile.")
    if profile.accelerator_product and not profile.accelerator_resource:
        errors.setdefault("accelerator_resource", []).append(
            f"Name the accelerator resource of {profile.accelerator_product} (e.g. nvidia.com/gpu): without it the "
            "pods would be placed on those nodes without requesting one. A CPU-only profile leaves both empty.")
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


# --- runtimes -----------------------------------------------------------------------------


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
    if runtime.discovered and {k for k, v in changes.items() if getattr(runtime, k) != v} - {"disabled", "description"}:
        raise ValidationError(f"Runtime {runtime.name} was read from cluster {runtime.installed_on.name}, where it is "
                              "installed outside the console; change it there. Here only disable it or edit the "
                              "description.")
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
