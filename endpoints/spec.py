"""The desired-spec snapshot of an endpoint: a self-contained JSON document with everything
``endpoints.reconcile.render`` needs. ``Revision.spec`` stores it, so any old generation
can be rendered again (rollback) without depending on rows that changed since."""

from __future__ import annotations

from django.conf import settings

from console.redaction import redact_ingest_keys
from endpoints import catalog, connections, runtimes


def ingest_url(project) -> str:
    """Where KServe's payload logger posts a project's CloudEvents. The logger cannot
    authenticate, so the project's rotatable ingest key travels in the path."""
    base = getattr(settings, "CONSOLE_INGEST_BASE_URL", "") or settings.CONSOLE_BASE_URL
    return f"{base.rstrip('/')}/ingest/kserve/{project.ingest_key}/"


def runtime_spec_for(runtime) -> catalog.RuntimeSpec:
    """The catalog view of a ServingRuntime row (built-in rows carry the same data)."""
    return catalog.RuntimeSpec(
        name=runtime.name,
        display_name=runtime.display_name or runtime.name,
        formats=tuple(
            catalog.SupportedFormat(
                name=f["name"], version=f.get("version") or "", auto_select=bool(f.get("autoSelect")),
                priority=f.get("priority"),
            )
            for f in runtime.supported_formats
        ),
        protocols=tuple(runtime.protocols or ()),
        multinode=False,
        openai_compatible=runtime.openai_compatible,
        openai_route_prefix=runtime.openai_route_prefix,
        description=runtime.description,
        disabled=runtime.disabled,
        multi_model=runtime.multi_model,
        namespaced=not runtime.built_in,
        created_at=runtime.created_at,
    )


def serving_runtime_and_protocol(endpoint, available) -> tuple[catalog.RuntimeSpec | None, str | None]:
    """The runtime that will serve the endpoint (the chosen one, or KServe's auto-selection)
    and the ``protocolVersion`` to write for the endpoint's protocol."""
    version = endpoint.model_version
    protocol = str(endpoint.protocol)  # plain text even for an unsaved row holding a choices member
    if endpoint.runtime_id:
        # The runtime as the cluster declares it when known (an older release's built-in runtime
        # may declare other format versions than the console's catalog).
        serving = next((spec for spec in available or () if spec.name == endpoint.runtime.name), None) \
            or runtime_spec_for(endpoint.runtime)
        return serving, runtimes.kserve_protocol(protocol, serving, model_format=version.model_format)
    return runtimes.resolve_auto_runtime(version.model_format, version.format_version, protocol, available)


def effective_runtime(endpoint, available) -> catalog.RuntimeSpec | None:
    return serving_runtime_and_protocol(endpoint, available)[0]


def desired_spec(endpoint, *, available_runtimes=None) -> dict:
    """Snapshot the endpoint's desired state (see endpoints/reconcile.py for the shape)."""
    project = endpoint.project
    version = endpoint.model_version
    runtime = endpoint.runtime
    if available_runtimes is None:
        from endpoints.models import ServingRuntime

        available_runtimes = [runtime_spec_for(r) for r in ServingRuntime.objects.all()]
    _serving, kserve_protocol = serving_runtime_and_protocol(endpoint, available_runtimes)
    hardware = None
    if endpoint.hardware_profile_id:
        profile = endpoint.hardware_profile
        hardware = {
            "profile_id": profile.pk,
            "name": profile.name,
            "accelerator_resource": profile.accelerator_resource,
            "accelerator_count": endpoint.accelerator_count if profile.accelerator_resource else 0,
            "node_selector": dict(profile.node_selector or {}),
            "tolerations": list(profile.tolerations or []),
        }
    canary = None
    if endpoint.canary_version_id and endpoint.canary_traffic_percent is not None:
        canary = {
            "version_id": endpoint.canary_version_id,
            "version": endpoint.canary_version.version,
            "storage_uri": endpoint.canary_version.storage_uri,
            "traffic_percent": endpoint.canary_traffic_percent,
            "connection": connections.snapshot(endpoint.canary_version.connection),
        }
    logging = None
    if endpoint.logging_mode and endpoint.logging_mode != "off":
        logging = {"mode": str(endpoint.logging_mode), "url": ingest_url(project)}
    return {
        "name": endpoint.name,
        "namespace": project.namespace,
        "project": project.name,
        "project_id": project.pk,
        "endpoint_id": endpoint.pk,
        "console_instance": settings.CONSOLE_INSTANCE,
        "generation": endpoint.generation,
        "deployment_mode": str(endpoint.deployment_mode),
        "model": {
            "version_id": version.pk,
            "registered_model": version.model.name,
            "version": version.version,
            "storage_uri": version.storage_uri,
            "format": version.model_format,
            "format_version": version.format_version,
            "task": version.model.task,
            "connection": connections.snapshot(version.connection),
        },
        "runtime": (
            {"id": runtime.pk, "name": runtime.name, "openai_compatible": runtime.openai_compatible} if runtime else None
        ),
        "kserve_protocol": kserve_protocol,
        "protocol": str(endpoint.protocol),
        "min_replicas": endpoint.min_replicas,
        "max_replicas": endpoint.max_replicas,
        "scale_metric": str(endpoint.scale_metric),
        "scale_target": endpoint.scale_target,
        "container_concurrency": endpoint.container_concurrency,
        "timeout_seconds": endpoint.timeout_seconds,
        "hardware": hardware,
        "resources": {
            "cpu_request": endpoint.cpu_request,
            "cpu_limit": endpoint.cpu_limit,
            "memory_request": endpoint.memory_request,
            "memory_limit": endpoint.memory_limit,
        },
        "env": list(endpoint.env or []),
        "args": list(endpoint.args or []),
        "canary": canary,
        "logging": logging,
        "stopped": endpoint.state == "stopped",
    }


# Fields of the Endpoint row that a revision's spec restores on rollback, with where each
# lives in the snapshot.
def fields_from_spec(spec: dict) -> dict:
    hardware = spec.get("hardware") or {}
    canary = spec.get("canary") or {}
    resources = spec.get("resources") or {}
    logging = spec.get("logging") or {}
    return {
        "model_version_id": spec["model"]["version_id"],
        "runtime_id": (spec.get("runtime") or {}).get("id"),
        "hardware_profile_id": hardware.get("profile_id"),
        "protocol": spec["protocol"],
        "min_replicas": spec["min_replicas"],
        "max_replicas": spec["max_replicas"],
        "scale_metric": spec["scale_metric"],
        "scale_target": spec["scale_target"],
        "container_concurrency": spec["container_concurrency"],
        "timeout_seconds": spec["timeout_seconds"],
        "accelerator_count": hardware.get("accelerator_count", 0),
        "cpu_request": resources.get("cpu_request", ""),
        "cpu_limit": resources.get("cpu_limit", ""),
        "memory_request": resources.get("memory_request", ""),
        "memory_limit": resources.get("memory_limit", ""),
        "env": spec.get("env") or [],
        "args": spec.get("args") or [],
        "canary_version_id": canary.get("version_id"),
        "canary_traffic_percent": canary.get("traffic_percent"),
        "logging_mode": logging.get("mode", "off"),
    }


def without_generation(spec: dict) -> dict:
    return {key: value for key, value in spec.items() if key != "generation"}


def flatten(value, prefix: str = "") -> dict[str, object]:
    """Dotted paths to leaf values (lists are leaves: users think of env or args as one value)."""
    if isinstance(value, dict) and value:
        out: dict[str, object] = {}
        for key in sorted(value):
            out.update(flatten(value[key], f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value} if prefix else {}


# Paths that identify rather than configure; hidden from diffs and audit views.
_IDENTITY_PATHS = {"generation", "endpoint_id", "project_id", "console_instance", "model.version_id",
                   "runtime.id", "hardware.profile_id", "canary.version_id", "model.connection.id",
                   "canary.connection.id"}


def field_changes(old: dict | None, new: dict) -> list[tuple[str, object, object]]:
    """(path, old value, new value) for every configured field that differs (compared as
    stored; the values returned are for showing and auditing, ingest keys masked)."""
    before = flatten(old or {})
    after = flatten(new)
    changes = []
    for path in sorted(set(before) | set(after)):
        if path in _IDENTITY_PATHS:
            continue
        if before.get(path) != after.get(path):
            changes.append((path, redact_ingest_keys(before.get(path)), redact_ingest_keys(after.get(path))))
    return changes


def audit_view(spec: dict) -> dict:
    return {path: value for path, value in flatten(redact_ingest_keys(spec)).items() if path not in _IDENTITY_PATHS}


def audit_diff(old: dict, new: dict) -> dict:
    changes = field_changes(old, new)
    return {"old": {path: before for path, before, _ in changes}, "new": {path: after for path, _, after in changes}}


def summarize(old: dict, new: dict) -> str:
    paths = [path for path, _, _ in field_changes(old, new)]
    if not paths:
        return "no configuration change"
    shown = ", ".join(paths[:4])
    return f"changed {shown}" + (f" and {len(paths) - 4} more" if len(paths) > 4 else "")
