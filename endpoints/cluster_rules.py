"""What one cluster's reading (``endpoints.capabilities.Capabilities``) means for a rendered
InferenceService: pure helpers shared by validation, rendering, the plan and drift detection.

- the deployment-mode annotation is written the way the cluster's KServe release spells it
  (``Serverless``/``RawDeployment`` before 0.16); the console keeps ``Knative``/``Standard``;
- the payload-logger fields the console adds on its own (``metadataHeaders``,
  ``metadataAnnotations``, …) are left out where the release's CRD does not declare them, and
  the plan says what is lost; logging itself still works;
- anything else the manifest writes that the CRD does not declare is a setting the user chose
  that this cluster cannot honour: validation refuses it (``undeclared_paths``);
- KServe only picks a runtime's GPU image for ``nvidia.com/gpu`` and ``nvidia.com/mig-*``.
"""

from __future__ import annotations

from endpoints.capabilities import FIELD_DEPTH, Capabilities

ANNOTATION_DEPLOYMENT_MODE = "serving.kserve.io/deploymentMode"
# Both spellings of each mode (0.16 renamed them); drift and status compare modes through this.
MODE_SYNONYMS = {"Serverless": "Knative", "RawDeployment": "Standard"}

# Fields of ``predictor.logger`` the console writes on its own (not a user's choice), and what
# the logged events lack without them.
LOGGER_EXTRAS = {
    "metadataHeaders": "the caller's identity (X-Console-Principal header) in logged events",
    "metadataAnnotations": "the model version (inference-console.io/model-version) in logged events",
    "storage": "logger storage settings",
    "batchSize": "logger batching",
}
LOGGER_PATH = "predictor.logger"

# Runtimes with a GPU build, by ``serving.kserve.io/server-type`` (KServe's UpdateImageTag), and
# the built-in runtime names that carry them when the cluster's runtimes are unknown.
GPU_IMAGE_SERVER_TYPES = {"huggingfaceserver", "vllmserver", "torchserve", "tensorflow-serving"}
GPU_IMAGE_RUNTIMES = {
    "kserve-huggingfaceserver": "huggingfaceserver", "kserve-huggingfaceserver-multinode": "huggingfaceserver",
    "kserve-vllmserver": "vllmserver", "kserve-torchserve": "torchserve",
    "kserve-tensorflow-serving": "tensorflow-serving",
}


def canonical_mode(value: str | None) -> str | None:
    """``Serverless`` → ``Knative``, ``RawDeployment`` → ``Standard``; others unchanged."""
    return MODE_SYNONYMS.get(value, value) if value is not None else None


def same_mode(a: str | None, b: str | None) -> bool:
    return canonical_mode(a) == canonical_mode(b)


def mode_annotation(mode: str, capabilities: Capabilities | None) -> str:
    """The deploymentMode annotation value for the console's ``mode`` on this cluster."""
    return capabilities.mode_value(mode) if capabilities is not None else mode


def _declared(capabilities: Capabilities | None) -> tuple[set[str], set[str]] | None:
    if capabilities is None or not capabilities.isvc_fields:
        return None
    fields = set(capabilities.isvc_fields)
    parents = {path.rsplit(".", 1)[0] for path in fields if "." in path}
    return fields, parents


def undeclared_paths(manifest_spec: dict, capabilities: Capabilities | None) -> list[str]:
    """Paths under ``spec`` (to ``FIELD_DEPTH``) the manifest writes and the cluster's CRD does not
    declare. Below a declared map (``nodeSelector``), a list (``tolerations``: an admin's profile
    data, checked by the API server's dry run) or a leaf nothing is checked."""
    declared = _declared(capabilities)
    if declared is None:
        return []
    fields, parents = declared
    found: list[str] = []

    def walk(value, prefix: str, level: int) -> None:
        if level > FIELD_DEPTH:
            return
        if not isinstance(value, dict) or (prefix and prefix not in parents):
            return
        for key, child in value.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            if path not in fields:
                if path not in found:
                    found.append(path)
                continue
            walk(child, path, level + 1)

    walk(manifest_spec, "", 1)
    return found


def droppable_logger_fields(manifest_spec: dict, capabilities: Capabilities | None) -> list[str]:
    """The console-added logger fields in ``manifest_spec`` the cluster's CRD does not declare."""
    logger = (manifest_spec.get("predictor") or {}).get("logger")
    if not isinstance(logger, dict) or capabilities is None:
        return []
    return [name for name in LOGGER_EXTRAS if name in logger and not capabilities.declares(f"{LOGGER_PATH}.{name}")]


def drop_logger_extras(manifest_spec: dict, capabilities: Capabilities | None) -> list[str]:
    """Remove (in place) the console-added logger fields the cluster lacks; returns their names."""
    dropped = droppable_logger_fields(manifest_spec, capabilities)
    logger = (manifest_spec.get("predictor") or {}).get("logger") or {}
    for name in dropped:
        logger.pop(name, None)
    return dropped


def user_undeclared_paths(manifest_spec: dict, capabilities: Capabilities | None) -> list[str]:
    """Undeclared paths that are not console-added logger extras (those are dropped, not refused)."""
    extras = {f"{LOGGER_PATH}.{name}" for name in droppable_logger_fields(manifest_spec, capabilities)}
    return [path for path in undeclared_paths(manifest_spec, capabilities) if path not in extras]


def dropped_from_manifest(rendered_spec: dict, manifest: dict) -> list[str]:
    """The console-added logger fields ``rendered_spec`` (a plain render) has and ``manifest``
    (the revision's, rendered for the cluster) left out."""
    plain = (rendered_spec.get("predictor") or {}).get("logger") or {}
    applied = ((manifest.get("spec") or {}).get("predictor") or {}).get("logger") or {}
    return [name for name in LOGGER_EXTRAS if name in plain and name not in applied]


def logger_loss_note(dropped: list[str], capabilities: Capabilities | None = None, cluster_name: str = "") -> str:
    """What payload logging loses on this cluster, in words."""
    where = f"cluster {cluster_name}" if cluster_name else "this cluster"
    lost = "; ".join(LOGGER_EXTRAS[name] for name in dropped)
    release = f"KServe {capabilities.release_text}" if capabilities is not None else "the KServe release"
    return (f"Payload logging works, but {release} on {where} does not know "
            f"logger.{', logger.'.join(dropped)}, so the console leaves it out: logged events lack {lost}.")


def is_kserve_gpu(resource: str) -> bool:
    """Whether KServe treats an accelerator resource as a GPU when picking a runtime's image."""
    return resource == "nvidia.com/gpu" or resource.startswith("nvidia.com/mig-")


def gpu_image_server_type(runtime_name: str, capabilities: Capabilities | None, namespace: str = "") -> str:
    """The runtime's GPU-image server type ('' when it has no GPU build)."""
    if capabilities is not None:
        for summary in capabilities.runtimes_for(namespace):
            if summary.get("name") == runtime_name and summary.get("server_type"):
                server_type = summary["server_type"]
                return server_type if server_type in GPU_IMAGE_SERVER_TYPES else ""
    return GPU_IMAGE_RUNTIMES.get(runtime_name, "")


def gpu_image_warning(*, runtime_name: str, resource: str, count: int, profile: str,
                      capabilities: Capabilities | None = None, namespace: str = "") -> str | None:
    """A warning when KServe will run the CPU image of a runtime that has a GPU one, because the
    profile's accelerator is not one KServe recognises as a GPU."""
    if not resource or not count or not runtime_name or is_kserve_gpu(resource):
        return None
    server_type = gpu_image_server_type(runtime_name, capabilities, namespace)
    if not server_type:
        return None
    return (f"Hardware profile {profile} requests {resource}, which KServe does not treat as a GPU (only "
            f"nvidia.com/gpu and nvidia.com/mig-* count): runtime {runtime_name} ({server_type}) runs its CPU "
            f"image, so the model does not use the {count} accelerator(s) it holds. Choose an NVIDIA profile, or a "
            "runtime whose image supports this accelerator.")


def bookkeeping_note(cluster_name: str = "") -> str:
    where = f"Cluster {cluster_name}" if cluster_name else "The cluster"
    return (f"{where} copies the console's bookkeeping annotations (inference-console.io/generation, "
            "inference-console.io/spec-hash) onto the pods: they are not in serviceAnnotationDisallowedList of "
            "kserve/inferenceservice-config, so every change restarts the pods. An admin merges "
            "deploy/kserve/inferenceservice-config-patch.yaml (docs/deploy.md) to stop that.")
