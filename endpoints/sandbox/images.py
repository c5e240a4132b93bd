"""What a cluster does with a runtime's pod fields that the sandbox's KServe controller would
otherwise not look at: the runtime's volumes and pull secrets (KServe merges them into the
predictor's pod spec, so Knative's webhook sees the runtime's emptyDir), and image pulls from
registries that need credentials (the kubelet pulls with the pod's image pull secrets; without one
that holds the registry, the pull fails with 401 and the pod waits in ``ImagePullBackOff``).

GPU serving images (NVIDIA NIMs on nvcr.io) cannot run here: once pulled, the sandbox simulates
them and labels their pods so (``SIMULATED_LABEL``).

Imports no console module: the sandbox is a second program.
"""

from __future__ import annotations

import base64
import json

# Registries that refuse anonymous pulls of the images the sandbox meets (NGC's NIM images).
PRIVATE_REGISTRIES = ("nvcr.io",)
SIMULATED_LABEL = "sandbox.inference-console.io/simulated"
SIMULATED_WHY = "no-gpu"


def _container(runtime: dict | None) -> dict:
    return next((c for c in ((runtime or {}).get("spec") or {}).get("containers") or []
                 if c.get("name") == "kserve-container"), {})


def registry_of(image: str) -> str:
    first = (image or "").split("/", 1)[0]
    return first if "/" in (image or "") and ("." in first or ":" in first or first == "localhost") else "docker.io"


def pod_fields(predictor: dict, runtime: dict | None) -> dict:
    """The predictor's pod fields with the runtime's volumes and pull secrets merged in, as
    KServe's predictor reconciler builds the pod spec it hands to Knative or a Deployment."""
    spec = (runtime or {}).get("spec") or {}
    merged = dict(predictor)
    for key in ("volumes", "imagePullSecrets"):
        own = list(predictor.get(key) or [])
        names = {item.get("name") for item in own}
        own += [item for item in spec.get(key) or [] if item.get("name") not in names]
        if own:
            merged[key] = own
    return merged


def _auths(secret: dict) -> dict:
    raw = (secret.get("data") or {}).get(".dockerconfigjson")
    if not raw:
        return {}
    try:
        return (json.loads(base64.b64decode(raw)) or {}).get("auths") or {}
    except (ValueError, TypeError):
        return {}


def pull_problem(store, namespace: str, image: str, predictor: dict, runtime: dict | None) -> list[tuple[str, str]]:
    """The kubelet's events for a pull it cannot do: [(reason, message)], empty when it can.

    A pull secret the pod names but the namespace lacks is reported first (as the kubelet does),
    then the registry's refusal when no existing secret holds credentials for it."""
    registry = registry_of(image)
    if registry not in PRIVATE_REGISTRIES:
        return []
    names = [item.get("name") for item in pod_fields(predictor, runtime).get("imagePullSecrets") or []]
    events: list[tuple[str, str]] = []
    missing = [n for n in names if store.get("secrets", namespace, n) is None]
    if missing:
        events.append(("FailedToRetrieveImagePullSecret",
                       f"Unable to retrieve some image pull secrets ({', '.join(missing)}); attempting to pull the "
                       "image may not succeed."))
    for name in names:
        secret = store.get("secrets", namespace, name)
        if secret is not None and secret.get("type") == "kubernetes.io/dockerconfigjson" and registry in _auths(secret):
            return events if missing else []
    events.append(("Failed", f'Failed to pull image "{image}": failed to authorize: failed to fetch oauth token: '
                             f"unexpected status from GET request to https://{registry}/proxy_auth: 401 Unauthorized"))
    events.append(("Failed", "Error: ErrImagePull"))
    events.append(("BackOff", f'Back-off pulling image "{image}"'))
    return events


def runtime_image(runtime: dict | None) -> str:
    return str(_container(runtime).get("image") or "")


def simulated_labels(runtime: dict | None) -> dict:
    """Labels of pods whose server the sandbox only simulates because it needs a GPU image."""
    return {SIMULATED_LABEL: SIMULATED_WHY} if registry_of(runtime_image(runtime)) in PRIVATE_REGISTRIES else {}


def waiting_for_pull(pods: list[dict], image: str) -> list[dict]:
    """The pods as the kubelet reports them while it backs off pulling ``image``."""
    for pod in pods:
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            if status.get("name") == "kserve-container":
                status["state"] = {"waiting": {"reason": "ImagePullBackOff",
                                               "message": f'Back-off pulling image "{image}"'}}
                status["ready"] = False
    return pods
