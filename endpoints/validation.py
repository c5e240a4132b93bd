"""The rules an endpoint's desired state must satisfy before the console accepts it.

Each rule exists because KServe, Knative or Kubernetes would otherwise refuse the object (or,
worse, accept it and fail later in a way a user cannot see), or because the console relies
on something the rule protects. All rules run on a plain ``EndpointDraft`` with no database
access, and ``validate_endpoint`` reports *every* broken rule at once, keyed by the Endpoint
field the user has to change, so a form or API response can show them all:

- ``model_version`` for the model's storage URI and format,
- ``canary_version`` / ``canary_traffic_percent`` for the canary,
- otherwise the Endpoint field of the same name (``name``, ``runtime``, ``protocol``,
  ``min_replicas``, ``accelerator_count``, ``cpu_request``, ``env``, ...).

With ``capabilities`` (the target cluster's reading, ``endpoints.capabilities``) the draft is
also checked against that cluster: Knative's refusals (node placement, timeouts, concurrency),
modelcar for ``oci://``, fields its KServe release's CRD does not declare, and a canary with no
rolled-out revision to split against. Each refusal names the cluster setting and the way out.
Without a reading (offline previews, a cluster never read) those rules are skipped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError

from endpoints import catalog, cluster_rules, connections, runtimes
from endpoints.capabilities import KNATIVE_FLAGS, Capabilities
from endpoints.catalog import RuntimeSpec
from endpoints.quantities import parse_quantity
from endpoints.reconcile import LLM_DEFAULT_TIMEOUT_SECONDS, render

# --- constants the rules use -------------------------------------------------------------

# KServe's IsvcNameFmt (DNS-1035 label).
NAME_RE = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
MAX_NAME_LENGTH = 45
MAX_NAME_PLUS_NAMESPACE = 50

ALLOWED_STORAGE_SCHEMES = ("s3://", "gs://", "https://", "pvc://", "hf://", "oci://")

DEPLOYMENT_MODES = ("Knative", "Standard")
LEGACY_DEPLOYMENT_MODES = {"Serverless": "Knative", "RawDeployment": "Standard"}
SCALE_METRICS = {"Knative": ("concurrency", "rps"), "Standard": ("cpu", "memory")}
LOGGING_MODES = ("off", "all", "request", "response")
PROTOCOLS = runtimes.CONSOLE_PROTOCOLS
LLM_TASKS = frozenset({"llm-chat", "llm-completion", "embedding"})
GENERATIVE_TASKS = frozenset({"llm-chat", "llm-completion"})
# Tasks served through V1/V2 predict calls, never through the OpenAI-compatible API.
PREDICTIVE_TASKS = frozenset({"classification", "regression"})

MAX_TIMEOUT_SECONDS = 3600
# Knative's default container-concurrency-max-limit.
MAX_CONTAINER_CONCURRENCY = 1000

ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# name → why the console refuses it
FORBIDDEN_ENV = {
    "PYTHONPATH": "KServe's validating webhook rejects PYTHONPATH (pkg/validation/env_policy.go).",
    "KSERVE_OPENAI_ROUTE_PREFIX": (
        "it moves the Hugging Face server's OpenAI routes away from /openai, where the console "
        "sends and authorizes OpenAI requests."
    ),
}
# Credentials never go in plain environment values: those are shown to every Viewer and stored in
# the manifest, the plan, the revision history and the audit trail. A storage connection keeps
# them encrypted and hands them to the pod from a Secret (docs/storage.md).
_USE_A_CONNECTION = ("it is a credential: add a storage connection in the project and choose it for the model "
                     "version instead; environment values are visible to every Viewer and kept in the audit trail.")
FORBIDDEN_ENV.update(dict.fromkeys(("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HUGGINGFACE_HUB_TOKEN", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AZURE_CLIENT_SECRET", "AZURE_STORAGE_ACCESS_KEY", "AZURE_STORAGE_KEY", "GOOGLE_APPLICATION_CREDENTIALS", "NGC_API_KEY"), _USE_A_CONNECTION))
# Flags (normalised: leading dashes stripped, '_' → '-') that rename the served model. The
# console builds inference URLs (/v1/models/<name>, /v2/models/<name>/infer) and the OpenAI
# "model" field from the endpoint name, which the runtimes use as --model_name /
# --served-model-name; user args are appended after the runtime's and win, so a rename
# would silently break every call the console makes or authorizes.
FORBIDDEN_ARG_FLAGS = frozenset({"model-name", "served-model-name"})


# --- the draft -----------------------------------------------------------------------------


@dataclass(frozen=True)
class HardwareLimits:
    """The parts of a hardware profile the rules need."""

    name: str = ""
    accelerator_resource: str = ""  # "" = CPU only
    max_accelerators_per_replica: int = 0
    max_cpu: str = ""  # "" = no bound
    max_memory: str = ""
    # PodSpec fields the profile renders (nodeSelector, tolerations, affinity, runtimeClassName).
    pod_fields: tuple[str, ...] = ()
    tolerations: tuple = ()  # the profile's tolerations (dicts), for the nodes' taints


@dataclass
class EndpointDraft:
    """An endpoint's desired fields as a plain object (same names as ``Endpoint`` where they
    exist), plus the context the rules need: the model version's format and URI, the
    canary's model and URI, the runtimes KServe could auto-select and the project's quota."""

    name: str
    namespace: str
    model_format: str
    storage_uri: str
    deployment_mode: str = "Knative"
    previous_deployment_mode: str | None = None  # None = never applied
    model_format_version: str = ""
    model_task: str = "classification"
    runtime: RuntimeSpec | None = None  # None = KServe auto-selection
    protocol: str = "v1"
    min_replicas: int = 1
    max_replicas: int = 1
    scale_metric: str = ""
    scale_target: int | None = None
    container_concurrency: int | None = None
    timeout_seconds: int | None = None
    hardware: HardwareLimits | None = None
    accelerator_count: int = 0
    cpu_request: str = ""
    cpu_limit: str = ""
    memory_request: str = ""
    memory_limit: str = ""
    env: list = field(default_factory=list)
    args: list = field(default_factory=list)
    primary_model_id: int | None = None
    canary_version_model_id: int | None = None  # the canary version's registered model
    canary_storage_uri: str = ""
    canary_traffic_percent: int | None = None  # None = no canary
    # The versions' storage connections (endpoints.connections.snapshot entries; None = public storage).
    connection: dict | None = None
    canary_connection: dict | None = None
    logging_mode: str = "all"
    available_runtimes: Sequence[RuntimeSpec] = ()
    quota_remaining: int | None = None  # None = the project has no quota for the profile
    # Accelerators the endpoint may hold at max scale; None = accelerator_count × max_replicas.
    accelerators_requested_at_max: int | None = None
    # Rollback and promotion restore or keep hardware that already ran: a GPU profile with 0
    # accelerators (allowed before that rule existed) is not refused then, only on an edit.
    zero_accelerators_kept: bool = False
    # The target cluster's reading; None = no cluster rules (offline preview, never read).
    capabilities: Capabilities | None = None
    cluster_name: str = ""
    # The ``spec`` of the manifest the console would render (before adapting it to the cluster),
    # for the declared-fields rule; None = not checked.
    manifest_spec: dict | None = None


class _Errors:
    """Collects messages by field so every broken rule is reported together."""

    def __init__(self) -> None:
        self.by_field: dict[str, list[str]] = {}

    def add(self, field_name: str, message: str) -> None:
        self.by_field.setdefault(field_name, []).append(message)


# --- public entry points -------------------------------------------------------------------


def validate_endpoint(draft: EndpointDraft) -> None:
    """Raise ``ValidationError({field: [messages]})`` listing every rule the draft breaks."""
    errors = _Errors()
    _check_name(draft, errors)
    _check_deployment_mode(draft, errors)
    _check_storage(draft, errors)
    _check_scaling(draft, errors)
    _check_timeout(draft, errors)
    _check_accelerators(draft, errors)
    _check_resources(draft, errors)
    _check_env(draft, errors)
    _check_args(draft, errors)
    _check_runtime_and_protocol(draft, errors)
    _check_canary(draft, errors)
    _check_logging(draft, errors)
    if draft.capabilities is not None:
        _check_cluster(draft, errors)
    if errors.by_field:
        raise ValidationError(errors.by_field)


def storage_uri_errors(uri: str) -> list[str]:
    """Why a model storage URI is refused (empty list = accepted).

    Only schemes KServe downloads from safely are allowed. ``file://`` and bare paths would
    read whatever the serving pod's filesystem holds; plain ``http://`` fetches a model (code,
    for pickles) over an unauthenticated channel anyone on the path can alter.
    """
    allowed = ", ".join(ALLOWED_STORAGE_SCHEMES)
    if not isinstance(uri, str) or not uri:
        return [f"A storage URI is required, starting with one of {allowed}."]
    if uri != uri.strip() or any(ch.isspace() or ord(ch) < 32 for ch in uri):
        return ["The storage URI must not contain spaces or control characters."]
    scheme = next((s for s in ALLOWED_STORAGE_SCHEMES if uri.startswith(s)), None)
    if scheme is None:
        lowered = next((s for s in ALLOWED_STORAGE_SCHEMES if uri.lower().startswith(s)), None)
        if lowered is not None:
            return [f"Write the scheme in lowercase ({lowered}); KServe matches it case-sensitively."]
        shown = uri.split("://", 1)[0] + "://" if "://" in uri else uri[:40]
        return [f"Storage URI scheme {shown!r} is not allowed; use one of {allowed} (file:// and http:// are refused)."]
    rest = uri[len(scheme):]
    if not rest.strip("/"):
        return [f"The storage URI has nothing after {scheme}; add the bucket, volume, repository or host and path."]
    if scheme == "https://" and not urlsplit(uri).hostname:
        return ["An https:// storage URI needs a host name."]
    if scheme == "hf://" and "/" not in rest.strip("/"):
        return ["A Hugging Face URI names owner and model: hf://<owner>/<model>[:<revision>]."]
    return []


def resolve_runtime(draft: EndpointDraft) -> tuple[RuntimeSpec | None, str | None]:
    """(the runtime that will serve the draft, the protocolVersion to write): the explicit
    runtime, or the one KServe will auto-select from ``available_runtimes``."""
    if draft.runtime is not None:
        return draft.runtime, _safe_kserve_protocol(draft.protocol, draft.runtime, draft.model_format)
    if draft.protocol not in PROTOCOLS:
        return None, None
    return runtimes.resolve_auto_runtime(
        draft.model_format, draft.model_format_version or None, draft.protocol, draft.available_runtimes
    )


def draft_from_endpoint(
    endpoint,
    *,
    previous_mode: str | None,
    available_runtimes: Iterable[RuntimeSpec],
    quota_remaining: int | None,
    accelerators_requested: int | None,
    capabilities: Capabilities | None = None,
    zero_accelerators_kept: bool = False,
) -> EndpointDraft:
    """Build a draft from an ``Endpoint`` instance (saved or not). Only reads attributes; the
    caller should have ``select_related`` the project, model version and its model, runtime,
    hardware profile and canary version."""
    from endpoints.spec import runtime_spec_for  # the lead's row → RuntimeSpec adapter

    available_runtimes = tuple(available_runtimes)
    version = endpoint.model_version
    profile = endpoint.hardware_profile if endpoint.hardware_profile_id else None
    canary = endpoint.canary_version if endpoint.canary_version_id else None
    return EndpointDraft(
        name=endpoint.name,
        namespace=endpoint.project.namespace,
        deployment_mode=endpoint.deployment_mode,
        previous_deployment_mode=previous_mode,
        model_format=version.model_format,
        model_format_version=version.format_version,
        storage_uri=version.storage_uri,
        model_task=version.model.task,
        runtime=runtime_spec_for(endpoint.runtime) if endpoint.runtime_id else None,
        protocol=endpoint.protocol,
        min_replicas=endpoint.min_replicas,
        max_replicas=endpoint.max_replicas,
        scale_metric=endpoint.scale_metric,
        scale_target=endpoint.scale_target,
        container_concurrency=endpoint.container_concurrency,
        timeout_seconds=endpoint.timeout_seconds,
        hardware=(
            HardwareLimits(
                name=profile.name,
                accelerator_resource=profile.accelerator_resource,
                max_accelerators_per_replica=profile.max_accelerators_per_replica,
                max_cpu=profile.max_cpu,
                max_memory=profile.max_memory,
                tolerations=tuple(getattr(profile, "tolerations", None) or ()),
                pod_fields=tuple(name for name, value in (("nodeSelector", getattr(profile, "node_selector", None)),
                                                          ("tolerations", getattr(profile, "tolerations", None)))
                                 if value),
            )
            if profile is not None
            else None
        ),
        accelerator_count=endpoint.accelerator_count,
        cpu_request=endpoint.cpu_request,
        cpu_limit=endpoint.cpu_limit,
        memory_request=endpoint.memory_request,
        memory_limit=endpoint.memory_limit,
        env=list(endpoint.env or []),
        args=list(endpoint.args or []),
        primary_model_id=version.model_id,
        canary_version_model_id=canary.model_id if canary is not None else None,
        canary_storage_uri=canary.storage_uri if canary is not None else "",
        canary_traffic_percent=endpoint.canary_traffic_percent,
        connection=connections.snapshot(version.connection) if getattr(version, "connection_id", None) else None,
        canary_connection=(connections.snapshot(canary.connection)
                           if canary is not None and getattr(canary, "connection_id", None) else None),
        logging_mode=endpoint.logging_mode,
        available_runtimes=tuple(available_runtimes),
        quota_remaining=quota_remaining,
        accelerators_requested_at_max=accelerators_requested,
        capabilities=capabilities,
        zero_accelerators_kept=zero_accelerators_kept,
        cluster_name=endpoint.project.cluster.name if capabilities is not None else "",
        manifest_spec=_rendered_spec(endpoint, available_runtimes) if capabilities is not None else None,
    )


def _rendered_spec(endpoint, available_runtimes) -> dict | None:
    """The ``spec`` the console would render for ``endpoint`` (None when the endpoint cannot be
    rendered yet: the other rules report why)."""
    from endpoints.spec import desired_spec

    try:
        return render({**desired_spec(endpoint, available_runtimes=list(available_runtimes)),
                                 "generation": 0})["spec"]
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


# --- rules ---------------------------------------------------------------------------------


def _check_name(draft: EndpointDraft, errors: _Errors) -> None:
    name = draft.name or ""
    if not name:
        errors.add("name", "A name is required.")
        return
    if not NAME_RE.match(name):
        errors.add(
            "name",
            f"{name!r} is not a valid endpoint name: use lowercase letters, digits and '-', start with a letter "
            "and end with a letter or digit (no uppercase, underscores or dots; KServe requires a DNS-1035 label).",
        )
    if len(name) > MAX_NAME_LENGTH:
        errors.add(
            "name",
            f"The name is {len(name)} characters; the limit is {MAX_NAME_LENGTH} because KServe derives host and "
            "revision names from it (e.g. <name>-predictor-00001) that must fit in 63-character DNS labels.",
        )
    elif len(name) + len(draft.namespace or "") > MAX_NAME_PLUS_NAMESPACE:
        errors.add(
            "name",
            f"Name and namespace together are {len(name) + len(draft.namespace or '')} characters; keep them at "
            f"most {MAX_NAME_PLUS_NAMESPACE} because KServe builds the host label <name>-predictor-<namespace>, "
            "which must fit in 63 characters.",
        )


def _check_deployment_mode(draft: EndpointDraft, errors: _Errors) -> None:
    mode = draft.deployment_mode
    if mode not in DEPLOYMENT_MODES:
        if mode in LEGACY_DEPLOYMENT_MODES:
            errors.add(
                "deployment_mode",
                f"{mode!r} is KServe's old spelling; use {LEGACY_DEPLOYMENT_MODES[mode]!r} (the webhook rewrites the "
                "old one, which would leave a permanent difference).",
            )
        else:
            errors.add("deployment_mode", f"Deployment mode must be Knative or Standard, not {mode!r}.")
        return
    previous = draft.previous_deployment_mode
    if previous is not None and previous != mode:
        errors.add(
            "deployment_mode",
            f"The endpoint was deployed in {previous} mode and KServe refuses to change an InferenceService's "
            "deployment mode after creation. Delete the endpoint and create it again in the new mode.",
        )


def _check_storage(draft: EndpointDraft, errors: _Errors) -> None:
    for message in storage_uri_errors(draft.storage_uri):
        errors.add("model_version", message)
    if not draft.model_format:
        errors.add("model_version", "The model version has no model format; KServe needs one to pick a runtime.")


def _check_scaling(draft: EndpointDraft, errors: _Errors) -> None:
    knative = draft.deployment_mode == "Knative"
    minimum, maximum = draft.min_replicas, draft.max_replicas
    if not _is_int(minimum) or minimum < 0:
        errors.add("min_replicas", "Minimum replicas must be a whole number, 0 or more.")
        minimum = None
    if not _is_int(maximum) or maximum < 1:
        errors.add("max_replicas", "Maximum replicas must be at least 1.")
        maximum = None
    if minimum is not None and maximum is not None and minimum > maximum:
        errors.add("min_replicas", f"Minimum replicas ({minimum}) cannot exceed maximum replicas ({maximum}).")
    if minimum == 0 and draft.deployment_mode == "Standard":
        errors.add(
            "min_replicas",
            "Scale-to-zero needs Knative mode: in Standard mode the HPA forces at least 1 replica and nothing "
            "holds requests while pods start. Use 1 or more, or choose Knative mode.",
        )

    metric, target = draft.scale_metric or "", draft.scale_target
    allowed = SCALE_METRICS.get(draft.deployment_mode, ())
    if metric:
        if metric not in ("concurrency", "rps", "cpu", "memory"):
            errors.add("scale_metric", f"Unknown scale metric {metric!r}; use concurrency or rps (Knative), "
                                       "cpu or memory (Standard).")
        elif allowed and metric not in allowed:
            errors.add(
                "scale_metric",
                f"{draft.deployment_mode} mode scales on {' or '.join(allowed)}, not {metric}: KServe rejects "
                f"{metric} with the {'Knative (KPA)' if knative else 'HPA'} autoscaler.",
            )
        if target is None:
            errors.add("scale_target", f"Set a target for the {metric} scale metric.")
    elif target is not None:
        errors.add("scale_target", "A scale target needs a scale metric; choose one or clear the target.")
    if target is not None:
        if not _is_int(target) or target < 1:
            errors.add("scale_target", "The scale target must be a whole number of at least 1.")
        elif metric in ("cpu", "memory") and target > 100:
            errors.add("scale_target", f"The {metric} target is a utilisation percentage: use 1 to 100.")

    concurrency = draft.container_concurrency
    if concurrency is not None:
        if not knative:
            errors.add(
                "container_concurrency",
                "Container concurrency is enforced by Knative's queue-proxy, which Standard mode does not have; "
                "clear it or choose Knative mode.",
            )
        elif not _is_int(concurrency) or not 0 <= concurrency <= MAX_CONTAINER_CONCURRENCY:
            errors.add(
                "container_concurrency",
                f"Container concurrency must be 0 (unlimited) to {MAX_CONTAINER_CONCURRENCY}.",
            )


def _check_timeout(draft: EndpointDraft, errors: _Errors) -> None:
    timeout = draft.timeout_seconds
    if timeout is not None and (not _is_int(timeout) or not 1 <= timeout <= MAX_TIMEOUT_SECONDS):
        errors.add("timeout_seconds", f"The request timeout must be 1 to {MAX_TIMEOUT_SECONDS} seconds.")


def _check_accelerators(draft: EndpointDraft, errors: _Errors) -> None:
    count = draft.accelerator_count or 0
    if not _is_int(count) or count < 0:
        errors.add("accelerator_count", "The accelerator count must be a whole number, 0 or more.")
        return
    hardware = draft.hardware
    if count == 0 and hardware is not None and hardware.accelerator_resource and not draft.zero_accelerators_kept:
        # The profile pins the pods to its accelerator nodes; without a request they would sit
        # there holding no accelerator (and take the nodes from endpoints that need one).
        errors.add(
            "accelerator_count",
            f"Hardware profile {hardware.name or '(unnamed)'} is for {hardware.accelerator_resource}: request at "
            f"least 1 per replica (up to {hardware.max_accelerators_per_replica}), or choose a CPU-only profile.",
        )
    if count > 0:
        if hardware is None:
            errors.add("accelerator_count", "Choose a hardware profile with accelerators to request any.")
        elif not hardware.accelerator_resource:
            errors.add(
                "accelerator_count",
                f"Hardware profile {hardware.name or '(unnamed)'} is CPU only; choose a GPU profile or set 0 accelerators.",
            )
        elif count > hardware.max_accelerators_per_replica:
            errors.add(
                "accelerator_count",
                f"{count} accelerators per replica exceeds the {hardware.max_accelerators_per_replica} that hardware "
                f"profile {hardware.name or '(unnamed)'} allows.",
            )
    requested = draft.accelerators_requested_at_max
    if requested is None:
        requested = count * max(draft.max_replicas or 0, draft.min_replicas or 0) if _is_int(draft.max_replicas) else 0
    if draft.quota_remaining is not None and requested > draft.quota_remaining:
        errors.add(
            "accelerator_count",
            f"At maximum scale the endpoint would hold {requested} accelerators but the project's quota leaves "
            f"{draft.quota_remaining}; lower the accelerator count or maximum replicas, or ask an admin for more quota.",
        )


def _check_resources(draft: EndpointDraft, errors: _Errors) -> None:
    hardware = draft.hardware
    runtime, _ = resolve_runtime(draft)
    defaults = catalog.container_defaults_for(runtime) if runtime is not None else None
    for kind, unit_hint in (("cpu", "cores"), ("memory", "bytes")):
        values: dict[str, Decimal] = {}
        for part in ("request", "limit"):
            field_name = f"{kind}_{part}"
            raw = getattr(draft, field_name) or ""
            if raw == "":
                continue
            try:
                value = parse_quantity(raw)
            except ValueError as exc:
                errors.add(field_name, str(exc))
                continue
            if value <= 0:
                errors.add(field_name, f"The {kind} {part} must be more than 0.")
                continue
            if kind == "memory" and value != value.to_integral_value():
                hint = f" ('m' means milli, not mega: did you mean {raw[:-1]}Mi?)" if raw.endswith("m") else ""
                errors.add(field_name, f"Memory {raw!r} is a fraction of a byte{hint}; use whole bytes.")
                continue
            if kind == "cpu" and value != value.quantize(Decimal("0.001")):
                errors.add(field_name, "CPU precision finer than 1m (a thousandth of a core) is not allowed.")
                continue
            values[part] = value
            bound = (hardware.max_cpu if kind == "cpu" else hardware.max_memory) if hardware else ""
            if bound:
                try:
                    maximum = parse_quantity(bound)
                except ValueError:
                    maximum = None
                if maximum is not None and value > maximum:
                    errors.add(
                        field_name,
                        f"The {kind} {part} {raw} exceeds the {bound} that hardware profile "
                        f"{hardware.name or '(unnamed)'} allows.",
                    )
        if "request" in values and "limit" in values:
            if values["request"] > values["limit"]:
                errors.add(
                    f"{kind}_request",
                    f"The {kind} request ({getattr(draft, kind + '_request')}) cannot exceed the limit "
                    f"({getattr(draft, kind + '_limit')}).",
                )
        elif defaults is not None and len(values) == 1:
            # The model's resources merge key by key over the runtime container's; a lone
            # request or limit is paired with the runtime's default, and Kubernetes refuses a
            # pod whose request exceeds its limit.
            default_request = getattr(defaults, f"{kind}_request")
            default_limit = getattr(defaults, f"{kind}_limit")
            if "request" in values and default_limit and values["request"] > parse_quantity(default_limit):
                errors.add(
                    f"{kind}_limit",
                    f"Set a {kind} limit too: runtime {runtime.name} has a default {kind} limit of {default_limit}, "
                    f"which would stay in place and sit below the request, and Kubernetes refuses that pod.",
                )
            if "limit" in values and default_request and values["limit"] < parse_quantity(default_request):
                errors.add(
                    f"{kind}_request",
                    f"Set a {kind} request too: runtime {runtime.name} requests {default_request} {unit_hint} by "
                    f"default, which would stay in place above this limit, and Kubernetes refuses that pod.",
                )


def _check_env(draft: EndpointDraft, errors: _Errors) -> None:
    env = draft.env
    if env in (None, ""):
        return
    if not isinstance(env, list):
        errors.add("env", "Environment variables must be a list of {name, value} entries.")
        return
    seen: set[str] = set()
    for index, entry in enumerate(env, start=1):
        if not isinstance(entry, dict) or set(entry) - {"name", "value"} or "name" not in entry:
            errors.add("env", f"Entry {index} must have exactly a name and a value (secrets and field references "
                              "are not offered).")
            continue
        name, value = entry.get("name"), entry.get("value", "")
        if not isinstance(name, str) or not ENV_NAME_RE.match(name):
            errors.add("env", f"{name!r} is not a valid variable name: use letters, digits and '_', not starting "
                              "with a digit.")
            continue
        if not isinstance(value, str):
            errors.add("env", f"The value of {name} must be a string.")
        if name in FORBIDDEN_ENV:
            errors.add("env", f"{name} cannot be set: {FORBIDDEN_ENV[name]}")
        if name in seen:
            errors.add("env", f"{name} is set more than once.")
        seen.add(name)


def _check_args(draft: EndpointDraft, errors: _Errors) -> None:
    args = draft.args
    if args in (None, ""):
        return
    if not isinstance(args, list):
        errors.add("args", "Arguments must be a list of strings.")
        return
    for index, arg in enumerate(args, start=1):
        if not isinstance(arg, str):
            errors.add("args", f"Argument {index} must be a string, not {type(arg).__name__}.")
            continue
        flag = arg.split("=", 1)[0].lstrip("-").replace("_", "-")
        if arg.startswith("-") and flag in FORBIDDEN_ARG_FLAGS:
            errors.add(
                "args",
                f"{arg.split('=', 1)[0]} cannot be set: it renames the served model, and the console addresses "
                "and authorizes calls by the endpoint name (runtime args are appended, so yours would win).",
            )


def _check_runtime_and_protocol(draft: EndpointDraft, errors: _Errors) -> None:
    protocol = draft.protocol
    if protocol not in PROTOCOLS:
        errors.add("protocol", f"Protocol must be one of {', '.join(PROTOCOLS)}, not {protocol!r}.")
        return
    fmt, version = draft.model_format, draft.model_format_version or None
    if not fmt:
        return  # reported on model_version
    runtime, kserve_protocol = resolve_runtime(draft)
    if draft.runtime is not None:
        ok, reason = runtimes.runtime_supports(runtime, fmt, version, kserve_protocol)
        if not ok:
            errors.add("runtime", reason)
            return
    elif runtime is None:
        shown = _describe(fmt, version)
        errors.add(
            "runtime",
            f"No runtime would be auto-selected for format {shown} with protocol "
            f"{kserve_protocol or 'v1 (unset)'}" + (" (OpenAI-compatible)" if protocol == "openai" else "")
            + _version_hint(draft) + ". Choose a runtime explicitly or use a model version KServe supports.",
        )
        return

    if protocol == "openai":
        if not runtime.openai_compatible:
            errors.add(
                "protocol",
                f"Runtime {runtime.name} does not serve the OpenAI-compatible API. The OpenAI-compatible API is a "
                "capability of the runtime (huggingface, vLLM), never a protocolVersion value: choose such a "
                "runtime, or protocol v1/v2.",
            )
        elif draft.model_task in PREDICTIVE_TASKS:
            errors.add(
                "protocol",
                f"A {draft.model_task} model is served through V1/V2 predict calls; the OpenAI-compatible API is "
                "for generative and embedding models.",
            )
    elif runtime.openai_only:
        errors.add(
            "protocol",
            f"Runtime {runtime.name} serves only the OpenAI-compatible API (/v1/chat/completions, ...); "
            f"choose protocol openai instead of {protocol}.",
        )
    elif runtime.openai_compatible and draft.model_task in GENERATIVE_TASKS:
        errors.add(
            "protocol",
            f"Runtime {runtime.name} serves {draft.model_task} models through the OpenAI-compatible API only; "
            "choose protocol openai.",
        )


def _check_canary(draft: EndpointDraft, errors: _Errors) -> None:
    has_version = draft.canary_version_model_id is not None or bool(draft.canary_storage_uri)
    percent = draft.canary_traffic_percent
    if not has_version and percent is None:
        return
    if not has_version:
        errors.add("canary_version", "Choose the model version to send the canary traffic to.")
    if percent is None:
        errors.add("canary_traffic_percent", "Set the share of traffic (0-100) the canary receives.")
    elif not _is_int(percent) or not 0 <= percent <= 100:
        errors.add("canary_traffic_percent", "The canary traffic share must be 0 to 100 percent.")
    if draft.deployment_mode == "Standard":
        errors.add(
            "canary_version",
            "Canary rollouts need Knative mode here: Standard-mode canaries need Gateway API, not supported yet.",
        )
    if not has_version:
        return
    if draft.canary_version_model_id != draft.primary_model_id:
        errors.add(
            "canary_version",
            "The canary must be a version of the same registered model as the endpoint's model version.",
        )
    uri_errors = storage_uri_errors(draft.canary_storage_uri)
    for message in uri_errors:
        errors.add("canary_version", f"Canary version: {message}")
    if not uri_errors and draft.canary_storage_uri == draft.storage_uri:
        errors.add(
            "canary_version",
            "The canary version stores its model at the same URI as the current version, so the canary would "
            "serve the same model; choose a version with a different artifact.",
        )


# Where an undeclared manifest path comes from: the Endpoint field to change.
_PATH_FIELDS = (
    ("predictor.canaryTrafficPercent", "canary_traffic_percent"),
    ("predictor.containerConcurrency", "container_concurrency"),
    ("predictor.timeout", "timeout_seconds"),
    ("predictor.scaleMetric", "scale_metric"),
    ("predictor.scaleTarget", "scale_target"),
    ("predictor.minReplicas", "min_replicas"),
    ("predictor.maxReplicas", "max_replicas"),
    ("predictor.nodeSelector", "hardware_profile"),
    ("predictor.tolerations", "hardware_profile"),
    ("predictor.logger", "logging_mode"),
    ("predictor.model.protocolVersion", "protocol"),
    ("predictor.model.runtime", "runtime"),
    ("predictor.model.env", "env"),
    ("predictor.model.args", "args"),
    ("predictor.model.resources", "cpu_request"),
    ("predictor.model", "model_version"),
)


def _field_for_path(path: str) -> str:
    return next((name for prefix, name in _PATH_FIELDS if path == prefix or path.startswith(prefix + ".")),
                "__all__")


def _check_cluster(draft: EndpointDraft, errors: _Errors) -> None:
    """The rules of the target cluster (``draft.capabilities``)."""
    caps = draft.capabilities
    cluster = f"cluster {draft.cluster_name}" if draft.cluster_name else "the cluster"
    knative_mode = draft.deployment_mode == "Knative"
    hardware = draft.hardware
    if hardware is not None and hardware.accelerator_resource and draft.accelerator_count:
        problem = caps.placement_problem(hardware.accelerator_resource, hardware.tolerations)
        if problem:
            errors.add("hardware_profile",
                       f"On {cluster} {problem}, so the pods of hardware profile {hardware.name or '(unnamed)'} "
                       "would stay Pending: choose another profile, or ask an admin to fix the profile's "
                       "tolerations or the nodes.")
    if knative_mode and caps.knative is not False:
        hardware = draft.hardware
        refused = [name for name in (hardware.pod_fields if hardware else ()) if not caps.knative_allows(name)]
        if refused:
            words = {"nodeSelector": "node selectors", "tolerations": "tolerations", "affinity": "affinity",
                     "runtimeClassName": "a runtime class"}
            what = " and ".join(words.get(name, name) for name in refused)
            keys = ", ".join(KNATIVE_FLAGS[name] for name in refused)
            errors.add(
                "deployment_mode",
                f"Knative on {cluster} refuses {what} (knative-serving/config-features {keys} "
                f"{'is' if len(refused) == 1 else 'are'} disabled), which hardware profile "
                f"{hardware.name or '(unnamed)'} needs to place the pods: choose Standard mode, or ask an admin to "
                f"enable {keys}.")
        timeout = draft.timeout_seconds
        implied = timeout is None and draft.model_task in LLM_TASKS
        if implied:
            timeout = LLM_DEFAULT_TIMEOUT_SECONDS
        if _is_int(timeout) and timeout > caps.max_revision_timeout:
            errors.add(
                "timeout_seconds",
                (f"The console's default timeout for LLM endpoints ({timeout} s)" if implied
                 else f"A {timeout} s request timeout")
                + f" is above what Knative on {cluster} allows ({caps.max_revision_timeout} s, "
                "max-revision-timeout-seconds in knative-serving/config-defaults): set at most "
                f"{caps.max_revision_timeout} s, choose Standard mode, or ask an admin to raise the maximum.")
        concurrency = draft.container_concurrency
        if _is_int(concurrency) and concurrency > caps.max_container_concurrency:
            errors.add(
                "container_concurrency",
                f"Container concurrency {concurrency} is above what Knative on {cluster} allows "
                f"({caps.max_container_concurrency}, container-concurrency-max-limit in "
                "knative-serving/config-defaults): lower it, or ask an admin to raise the limit.")
    for field_name, uri, connection in (("model_version", draft.storage_uri, draft.connection),
                                        ("canary_version", draft.canary_storage_uri, draft.canary_connection)):
        problem = connections.release_problem(connection, uri or "", caps)
        if problem and not (connection["kind"] == "oci" and caps.modelcar is False):  # said just below
            errors.add(field_name, f"On {cluster}: {problem}")
    if caps.modelcar is False:
        for field_name, uri, label in (("model_version", draft.storage_uri, "The model version's"),
                                       ("canary_version", draft.canary_storage_uri, "The canary version's")):
            if isinstance(uri, str) and uri.startswith("oci://"):
                errors.add(
                    field_name,
                    f"{label} storage URI is an oci:// image, and {cluster} has modelcar off "
                    "(storageInitializer.enableModelcar is false in kserve/inferenceservice-config), so KServe's "
                    "storage initializer cannot fetch it: use another storage scheme, or ask an admin to "
                    "enable modelcar.")
    has_canary = draft.canary_traffic_percent is not None or draft.canary_version_model_id is not None
    if has_canary and draft.previous_deployment_mode is None:
        errors.add(
            "canary_version",
            "A canary needs a rolled-out revision to split traffic against, and this endpoint has none yet (KServe "
            "would send all traffic to the canary): deploy the primary first, then start the canary.")
    if draft.manifest_spec is not None:
        for path in cluster_rules.user_undeclared_paths(draft.manifest_spec, caps):
            errors.add(
                _field_for_path(path),
                f"KServe {caps.release_text} on {cluster} does not know spec.{path} (its InferenceService CRD "
                "does not declare it), so it cannot honour this setting: clear it, or ask an admin to upgrade "
                "KServe.")


def _check_logging(draft: EndpointDraft, errors: _Errors) -> None:
    if draft.logging_mode not in LOGGING_MODES:
        errors.add("logging_mode", f"Payload logging must be one of {', '.join(LOGGING_MODES)}, "
                                   f"not {draft.logging_mode!r}.")


# --- helpers -------------------------------------------------------------------------------


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _describe(fmt: str, version: str | None) -> str:
    return f"{fmt!r} version {version!r}" if version else repr(fmt)


def _safe_kserve_protocol(protocol: str, runtime: RuntimeSpec, model_format: str) -> str | None:
    if protocol not in PROTOCOLS:
        return None
    return runtimes.kserve_protocol(protocol, runtime, model_format=model_format)


def _version_hint(draft: EndpointDraft) -> str:
    """Point at KServe's exact-string version match when dropping the version would help."""
    version = draft.model_format_version
    if not version:
        return ""
    runtime, _ = runtimes.resolve_auto_runtime(draft.model_format, None, draft.protocol, draft.available_runtimes)
    if runtime is None:
        return ""
    declared = sorted({f.version for f in runtime.formats if f.name == draft.model_format and f.version})
    return (
        f"; KServe compares format versions as exact strings and {runtime.name} declares "
        f"{', '.join(repr(v) for v in declared)}, so {version!r} matches none of them"
    )
