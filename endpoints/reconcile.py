"""Rendering an endpoint's desired-spec snapshot into a KServe InferenceService manifest, and
the helpers that compare such a manifest with what the cluster holds.

``render`` is a pure function of the snapshot built by ``endpoints.spec.desired_spec`` (and
stored in ``Revision.spec``), so any old generation renders byte-identically again. The
manifest contains only the fields the console owns; it is sent with server-side apply, which
removes from the live object whatever the console owned before and no longer sends.

What the manifest deliberately leaves out, and why (docs/kserve.md §10):
- ``status``, ``metadata.finalizers``: owned by KServe's controller.
- framework keys (``sklearn:``, ...) and ``model.name``: legacy / forbidden; the webhook would
  rewrite the former and rejects the latter. The ``predictor.model`` form is what it keeps.
- the ``modelFormat`` annotation: the webhook adds it (``modelFormat: <format>``) on every
  admission; it is expected on live objects and is not a difference. We do not write it so
  that its ownership stays with KServe.
- anything else a user could use to shape the pod (security context, volumes, service
  account, ...): an InferenceService embeds a PodSpec, so free-form fields would be privilege
  escalation.
"""

from __future__ import annotations

import copy
import hashlib
import json

import yaml

from endpoints import cluster_rules, connections

API_VERSION = "serving.kserve.io/v1beta1"
KIND = "InferenceService"
FIELD_MANAGER = "inference-console"

LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_INSTANCE = "inference-console.io/instance"
LABEL_PROJECT = "inference-console.io/project"
LABEL_ENDPOINT_ID = "inference-console.io/endpoint-id"
MANAGED_BY = "inference-console"

ANNOTATION_DEPLOYMENT_MODE = "serving.kserve.io/deploymentMode"
ANNOTATION_STOP = "serving.kserve.io/stop"
ANNOTATION_GENERATION = "inference-console.io/generation"
ANNOTATION_MODEL_VERSION = "inference-console.io/model-version"
ANNOTATION_SPEC_HASH = "inference-console.io/spec-hash"

# The payload logger matches metadataHeaders against Go's canonical header keys with an exact
# string comparison, so the header must be listed in canonical form (docs/kserve.md §6).
PRINCIPAL_HEADER = "X-Console-Principal"

LLM_TASKS = frozenset({"llm-chat", "llm-completion", "embedding"})
# An LLM answer routinely takes longer than Knative's 300 s default or, in Standard mode with
# Gateway API, the HTTPRoute's 60 s default (docs/kserve.md §1.2). Ten minutes covers long
# generations while still freeing a stuck connection.
LLM_DEFAULT_TIMEOUT_SECONDS = 600


def render(spec: dict, capabilities=None) -> dict:
    """The InferenceService manifest (a plain dict) for a desired-spec snapshot.

    ``capabilities`` (an ``endpoints.capabilities.Capabilities`` reading of the target cluster;
    None: KServe 0.20) adapts it to the cluster: the deployment mode is spelled the way the
    release spells it, and the logger fields the console adds on its own are left out where the
    release's CRD lacks them (``endpoints.cluster_rules``; validation refuses the rest).

    Raises ValueError for snapshots the validation rules would have refused and that KServe
    cannot express (a canary in Standard mode, scale-to-zero in Standard mode).
    """
    mode = spec["deployment_mode"]
    if mode not in ("Knative", "Standard"):
        raise ValueError(f"Unknown deployment mode {mode!r}.")
    knative = mode == "Knative"
    model = spec["model"]
    canary = spec.get("canary")
    if canary is not None and not knative:
        raise ValueError("Standard-mode canaries need Gateway API and are not supported.")
    if spec["min_replicas"] == 0 and not knative:
        raise ValueError("Scale-to-zero needs Knative mode.")

    predictor: dict = {
        # maxReplicas is always explicit: in Standard mode an unset max becomes max = min and
        # the HPA never scales (docs/kserve.md §1.2).
        "minReplicas": spec["min_replicas"],
        "maxReplicas": spec["max_replicas"],
    }
    if spec.get("scale_metric"):
        predictor["scaleMetric"] = spec["scale_metric"]
    if spec.get("scale_target") is not None:
        predictor["scaleTarget"] = spec["scale_target"]
    if knative and spec.get("container_concurrency") is not None:
        predictor["containerConcurrency"] = spec["container_concurrency"]
    timeout = spec.get("timeout_seconds")
    if timeout is None and model.get("task") in LLM_TASKS:
        timeout = LLM_DEFAULT_TIMEOUT_SECONDS
    if timeout is not None:
        predictor["timeout"] = timeout
    if canary is not None:
        # Knative canary: the applied template IS the canary revision; the previously
        # rolled-out revision keeps 100 - N % under the "prev" tag (docs/kserve.md §1.5).
        predictor["canaryTrafficPercent"] = canary["traffic_percent"]

    hardware = spec.get("hardware") or {}
    # Whole lists and maps: the CRD has no list-map keys on tolerations, so SSA treats them as
    # atomic and the console owns each list entirely.
    if hardware.get("node_selector"):
        predictor["nodeSelector"] = {str(k): str(v) for k, v in hardware["node_selector"].items()}
    if hardware.get("tolerations"):
        predictor["tolerations"] = [dict(t) for t in hardware["tolerations"]]

    logging = spec.get("logging")
    if logging is not None:
        predictor["logger"] = {
            "mode": logging["mode"],  # no CRD default, so always explicit
            "url": logging["url"],
            "metadataHeaders": [PRINCIPAL_HEADER],
            "metadataAnnotations": [ANNOTATION_MODEL_VERSION],
        }

    predictor["model"] = _render_model(spec, canary)
    # The rolled-out version's storage connection: its ServiceAccount (whose Secret the storage
    # initializer reads), pull secret for OCI, and the restart marker of a rotated token.
    rolled_out_connection = (canary if canary is not None else model).get("connection")
    predictor.update(connections.predictor_fields(rolled_out_connection))
    pod_annotations = connections.predictor_annotations(rolled_out_connection)
    if pod_annotations:
        predictor["annotations"] = pod_annotations

    rolled_out_version = canary["version"] if canary is not None else model["version"]
    manifest_spec = {"predictor": predictor}
    if capabilities is not None:
        cluster_rules.drop_logger_extras(manifest_spec, capabilities)
    annotations = {
        ANNOTATION_DEPLOYMENT_MODE: cluster_rules.mode_annotation(mode, capabilities),
        ANNOTATION_GENERATION: str(spec["generation"]),
        ANNOTATION_MODEL_VERSION: f"{model['registered_model']}:{rolled_out_version}",
        ANNOTATION_SPEC_HASH: _hash(manifest_spec),
    }
    if spec.get("stopped"):
        annotations[ANNOTATION_STOP] = "true"
    labels = {
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_INSTANCE: spec["console_instance"],
        LABEL_PROJECT: spec["project"],
    }
    if spec.get("endpoint_id") is not None:  # a plan for a new endpoint has no id yet
        labels[LABEL_ENDPOINT_ID] = str(spec["endpoint_id"])
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": spec["name"],
            "namespace": spec["namespace"],
            "labels": labels,
            "annotations": annotations,
        },
        "spec": manifest_spec,
    }


def _render_model(spec: dict, canary: dict | None) -> dict:
    model = spec["model"]
    fmt: dict = {"name": model["format"]}
    if model.get("format_version"):
        # KServe compares it as an exact string with the runtime's declared version.
        fmt["version"] = model["format_version"]
    out: dict = {"modelFormat": fmt}
    runtime = spec.get("runtime")
    if runtime and runtime.get("name"):
        out["runtime"] = runtime["name"]
    out["storageUri"] = canary["storage_uri"] if canary is not None else model["storage_uri"]
    if spec.get("kserve_protocol"):
        out["protocolVersion"] = spec["kserve_protocol"]

    resources = spec.get("resources") or {}
    requests: dict = {}
    limits: dict = {}
    for kind in ("cpu", "memory"):
        if resources.get(f"{kind}_request"):
            requests[kind] = str(resources[f"{kind}_request"])
        if resources.get(f"{kind}_limit"):
            limits[kind] = str(resources[f"{kind}_limit"])
    hardware = spec.get("hardware") or {}
    count = hardware.get("accelerator_count") or 0
    if hardware.get("accelerator_resource") and count > 0:
        # KServe detects a GPU from limits only (IsGPUEnabled); the request carries the same
        # value because extended resources cannot be overcommitted.
        limits[hardware["accelerator_resource"]] = str(count)
        requests[hardware["accelerator_resource"]] = str(count)
    if requests or limits:
        out["resources"] = {key: value for key, value in (("requests", requests), ("limits", limits)) if value}
    env = [{"name": str(e["name"]), "value": str(e.get("value", ""))} for e in spec.get("env") or []]
    env += connections.model_env((canary if canary is not None else model).get("connection"))
    if env:
        out["env"] = env
    args = [str(a) for a in spec.get("args") or []]
    if args:
        out["args"] = args
    return out


# --- canonical forms ---------------------------------------------------------------------


def canonical_json(value) -> str:
    """Key-sorted compact JSON: equal values give equal strings."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _hash(value) -> str:
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()


def spec_hash(manifest: dict) -> str:
    """SHA-256 of the canonical JSON of the manifest's ``spec`` (what the annotation records)."""
    return _hash(manifest.get("spec") or {})


def canonical_yaml(manifest: dict) -> str:
    """Key-sorted YAML: the same spec always gives byte-identical text (for diffs and storage)."""
    return yaml.safe_dump(manifest, sort_keys=True, default_flow_style=False, allow_unicode=True)


# --- owned fields and drift ----------------------------------------------------------------
# Paths are dotted; a dot inside a key (label and annotation names) is written "\." and a
# backslash "\\", as in kubectl's JSONPath. Lists are single leaves: the console owns each
# list it sends whole (args, tolerations, logger headers), and env is compared whole too.


def _escape(key: str) -> str:
    return str(key).replace("\\", "\\\\").replace(".", "\\.")


def split_path(path: str) -> list[str]:
    """The keys of a dotted path produced by ``managed_field_paths``."""
    keys: list[str] = []
    current: list[str] = []
    chars = iter(path)
    for ch in chars:
        if ch == "\\":
            current.append(next(chars, ""))
        elif ch == ".":
            keys.append("".join(current))
            current = []
        else:
            current.append(ch)
    keys.append("".join(current))
    return keys


def join_path(keys: list[str]) -> str:
    return ".".join(_escape(k) for k in keys)


def managed_field_paths(manifest: dict) -> set[str]:
    """Dotted paths of every leaf the console applies (maps are descended, lists and scalars
    are leaves). Comparing live and desired only on these ignores whatever KServe, its
    webhook or other managers add."""
    paths: set[str] = set()

    def walk(value, keys: list[str]) -> None:
        if isinstance(value, dict) and value:
            for key, child in value.items():
                walk(child, [*keys, str(key)])
        elif keys:
            paths.add(join_path(keys))

    walk(manifest, [])
    return paths


_MISSING = object()


def _get(obj, keys: list[str]):
    for key in keys:
        if not isinstance(obj, dict) or key not in obj:
            return _MISSING
        obj = obj[key]
    return obj


def desired_subset(live_obj: dict, manifest: dict) -> dict:
    """The part of ``live_obj`` at the paths ``manifest`` owns (absent paths left out), shaped
    like the manifest: ``desired_subset(live, m) == m`` means no drift on owned fields."""
    return subset_at(live_obj, managed_field_paths(manifest))


def subset_at(live_obj: dict, paths) -> dict:
    """The part of ``live_obj`` at ``paths`` (dotted, as ``managed_field_paths`` writes them;
    absent paths left out), shaped like the object. A path under another path of the set is
    covered by the shorter one."""
    subset: dict = {}
    for path in sorted(paths, key=lambda p: len(split_path(p))):
        keys = split_path(path)
        value = _get(live_obj, keys)
        if value is _MISSING:
            continue
        node = subset
        for key in keys[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):  # a shorter path took the whole value
                break
        else:
            node.setdefault(keys[-1], copy.deepcopy(value))
    return subset


def applied_field_paths(live_obj: dict, manager: str = FIELD_MANAGER) -> set[str] | None:
    """Dotted paths of the fields ``manager`` owns on the live object by server-side apply, read
    from ``metadata.managedFields`` (FieldsV1) in the same form as ``managed_field_paths``: maps
    are descended, a list (its items keyed ``k:``, ``v:`` or ``i:``) is one leaf. None when the
    object records no apply by the manager (an object written before field tracking, or by
    hand)."""
    entries = [entry for entry in (live_obj.get("metadata") or {}).get("managedFields") or []
               if isinstance(entry, dict) and entry.get("manager") == manager
               and entry.get("operation") == "Apply" and not entry.get("subresource")]
    if not entries:
        return None
    paths: set[str] = set()

    def walk(fields, keys: list[str]) -> None:
        children = [key for key in fields if key != "."] if isinstance(fields, dict) else []
        if children and all(key.startswith("f:") for key in children):
            for key in children:
                walk(fields[key], [*keys, key[2:]])
        elif keys:
            paths.add(join_path(keys))

    for entry in entries:
        walk(entry.get("fieldsV1") or {}, [])
    return paths


_MODE_PATH = join_path(["metadata", "annotations", ANNOTATION_DEPLOYMENT_MODE])


def drifted_paths(live_obj: dict, manifest: dict) -> list[str]:
    """Owned paths whose live value differs from (or is missing compared with) the manifest. The
    deployment mode counts as the same in either spelling (``Serverless`` is ``Knative``): KServe
    0.17 on rewrites the old one, older releases only know it."""
    drifted = []
    for path in managed_field_paths(manifest):
        live_value, desired = _get(live_obj, split_path(path)), _get(manifest, split_path(path))
        if live_value == desired:
            continue
        if path == _MODE_PATH and live_value is not _MISSING and cluster_rules.same_mode(live_value, desired):
            continue
        drifted.append(path)
    return sorted(drifted)
