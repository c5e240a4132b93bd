"""What Knative Serving's webhook refuses in the Service KServe creates for a Knative-mode
InferenceService, read from the ``knative-serving`` ConfigMaps stored in the cluster.

KServe copies the predictor's PodSpec fields into the Knative Service's
``spec.template.spec``; Knative refuses the ones its ``config-features`` flags leave disabled
(the default for node selectors, tolerations, affinity, runtime class, PVCs, ...) and revision
timeouts above ``config-defaults`` ``max-revision-timeout-seconds``. The wording is Knative's:
``admission webhook "validation.webhook.serving.knative.dev" denied the request: validation
failed: must not set the field(s): spec.template.spec.nodeSelector``.
"""

from __future__ import annotations

from .profile import KNATIVE_NAMESPACE

WEBHOOK = "validation.webhook.serving.knative.dev"
TEMPLATE = "spec.template.spec"

# PodSpec field -> the config-features flag that allows it ("enabled" or "allowed").
POD_FIELD_FLAGS = {
    "affinity": "kubernetes.podspec-affinity",
    "dnsConfig": "kubernetes.podspec-dnsconfig",
    "dnsPolicy": "kubernetes.podspec-dnspolicy",
    "hostAliases": "kubernetes.podspec-hostaliases",
    "hostIPC": "kubernetes.podspec-hostipc",
    "hostNetwork": "kubernetes.podspec-hostnetwork",
    "hostPID": "kubernetes.podspec-hostpid",
    "initContainers": "kubernetes.podspec-init-containers",
    "nodeSelector": "kubernetes.podspec-nodeselector",
    "priorityClassName": "kubernetes.podspec-priorityclassname",
    "runtimeClassName": "kubernetes.podspec-runtimeclassname",
    "schedulerName": "kubernetes.podspec-schedulername",
    "tolerations": "kubernetes.podspec-tolerations",
    "topologySpreadConstraints": "kubernetes.podspec-topologyspreadconstraints",
}
PVC_FLAG = "kubernetes.podspec-persistent-volume-claim"
EMPTYDIR_FLAG = "kubernetes.podspec-volumes-emptydir"


def _config(store, name: str) -> dict[str, str]:
    obj = store.get("configmaps", KNATIVE_NAMESPACE, name) if store is not None else None
    return dict((obj or {}).get("data") or {})


def _allowed(features: dict[str, str], flag: str) -> bool:
    return features.get(flag, "disabled").strip().lower() in ("enabled", "allowed")


def _int(value: str | None, default: int) -> int:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return default


def refusal(store, component: dict) -> str | None:
    """Knative's denial of the Service KServe would create for ``component`` (a predictor,
    transformer or explainer spec), or None when Knative accepts it."""
    features = _config(store, "config-features")
    defaults = _config(store, "config-defaults")
    disallowed = sorted(f"{TEMPLATE}.{name}" for name, flag in POD_FIELD_FLAGS.items()
                        if component.get(name) not in (None, [], {}, "") and not _allowed(features, flag))
    for index, volume in enumerate(component.get("volumes") or []):
        if "persistentVolumeClaim" in volume and not _allowed(features, PVC_FLAG):
            disallowed.append(f"{TEMPLATE}.volumes[{index}].persistentVolumeClaim")
        if "emptyDir" in volume and not _allowed(features, EMPTYDIR_FLAG):
            disallowed.append(f"{TEMPLATE}.volumes[{index}].emptyDir")
    errors = []
    if disallowed:
        errors.append("must not set the field(s): " + ", ".join(sorted(disallowed)))
    timeout = component.get("timeout")
    max_timeout = _int(defaults.get("max-revision-timeout-seconds"), 600)
    if isinstance(timeout, int) and not 0 <= timeout <= max_timeout:
        errors.append(f"expected 0 <= {timeout} <= {max_timeout}: {TEMPLATE}.timeoutSeconds")
    concurrency = component.get("containerConcurrency")
    max_concurrency = _int(defaults.get("container-concurrency-max-limit"), 1000)
    if isinstance(concurrency, int) and not 0 <= concurrency <= max_concurrency:
        errors.append(f"expected 0 <= {concurrency} <= {max_concurrency}: {TEMPLATE}.containerConcurrency")
    if not errors:
        return None
    return f'admission webhook "{WEBHOOK}" denied the request: validation failed: ' + "\n".join(errors)
