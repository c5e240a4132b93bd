"""Release profiles: one KServe release (and the cluster it runs in) as data.

The sandbox is the independent party the console is checked against, so what it installs and
the release facts it acts on are files, not the console's catalog. A profile is a directory in
the layout of KServe's own release files (``../shared/kserve/versions/<release>/`` is one)::

    <dir>/crds/*.yaml                    the release's CustomResourceDefinitions (optional: without
                                         them the API server serves its built-in, derived CRDs)
    <dir>/runtimes/*.yaml                the ClusterServingRuntimes the release installs by default
    <dir>/configmap/inferenceservice.yaml  the release's default ``inferenceservice-config``
    <dir>/profile.yaml                   optional: name, kserveVersion, protocolOrder, admission,
                                         knative (ConfigMap data), nodes (the simulated node pool)

``runtimes/`` may hold a kustomization.yaml, as KServe's own ``config/runtimes`` does: then
only the files its ``resources`` list names are installed (KServe ships files it does not
install, e.g. kserve-openvino). Its ``images`` rewrites are not applied.

Which release a directory holds is read off its CRD when ``profile.yaml`` does not say (none of
KServe's files carries a version number): ``spec.canary`` means 0.20, ``logger.batchSize`` 0.17,
``logger.storage`` 0.16, ``logger.metadataAnnotations`` 0.15.1, ``logger.metadataHeaders`` 0.14,
else 0.13. What KServe's webhook and controller *code* does differently per release (deployment
mode spellings, when a mode change is refused, how a failed reconcile is reported) is in
``ReleaseFacts``, each fact with the release that introduced it.

``BUILTIN_PROFILE_DIR`` describes KServe 0.20 and is what the sandbox uses unless
``SandboxSettings.profile`` points elsewhere. Product code never reads ``../shared``; tests
check the built-in profile against the KServe files there (tests/endpoints/test_sandbox_profile.py).
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .schema import load_yaml_documents

BUILTIN_PROFILE_DIR = Path(__file__).resolve().parent / "profiles" / "builtin"

RUNTIME_API_VERSION = "serving.kserve.io/v1alpha1"
RUNTIME_KIND = "ClusterServingRuntime"
ISVC_CONFIG_NAME = "inferenceservice-config"
KSERVE_NAMESPACE = "kserve"
KNATIVE_NAMESPACE = "knative-serving"

# KServe's ranking of protocol versions (GetProtocolVersionInt), lowest first; the same in
# every release 0.13-0.20.
DEFAULT_PROTOCOL_ORDER = ("v1", "v2", "grpc-v1", "grpc-v2")
# Legacy predictor keys the mutating webhook moves into predictor.model (0.13-0.20).
DEFAULT_LEGACY_FRAMEWORK_KEYS = ("sklearn", "xgboost", "lightgbm", "tensorflow", "pytorch", "triton", "onnx",
                                 "huggingface", "pmml", "paddle")
# Formats for which the webhook writes protocolVersion v2 when it is unset.
DEFAULT_PROTOCOL_V2_FORMATS = ("triton", "vLLM")

# Knative Serving's ConfigMaps as Knative ships them (knative/serving config/core/configmaps):
# the PodSpec fields KServe copies into a Knative Service are off unless an admin enables them.
KNATIVE_DEFAULTS: dict[str, dict[str, str]] = {
    "config-features": {
        "kubernetes.podspec-affinity": "disabled",
        "kubernetes.podspec-nodeselector": "disabled",
        "kubernetes.podspec-tolerations": "disabled",
        "kubernetes.podspec-runtimeclassname": "disabled",
        "kubernetes.podspec-persistent-volume-claim": "disabled",
        "kubernetes.podspec-persistent-volume-write": "disabled",
        "kubernetes.podspec-securitycontext": "disabled",
        "kubernetes.podspec-hostipc": "disabled",
        "kubernetes.podspec-hostpid": "disabled",
        "kubernetes.podspec-hostnetwork": "disabled",
        "kubernetes.podspec-priorityclassname": "disabled",
        "kubernetes.podspec-schedulername": "disabled",
        "kubernetes.podspec-init-containers": "disabled",
        "kubernetes.podspec-volumes-emptydir": "enabled",
        "kubernetes.podspec-dnspolicy": "disabled",
        "kubernetes.podspec-dnsconfig": "disabled",
        "kubernetes.podspec-hostaliases": "disabled",
        "kubernetes.podspec-topologyspreadconstraints": "disabled",
        "kubernetes.podspec-fieldref": "disabled",
        "multi-container": "enabled",
        "tag-header-based-routing": "disabled",
    },
    "config-defaults": {
        "revision-timeout-seconds": "300",
        "max-revision-timeout-seconds": "600",
        "revision-response-start-timeout-seconds": "300",
        "revision-idle-timeout-seconds": "0",
        "container-concurrency": "0",
        "container-concurrency-max-limit": "1000",
        "allow-container-concurrency-zero": "true",
        "enable-service-links": "false",
    },
}

# The node pool of a profile that does not describe one: three CPU nodes and two nodes with
# four NVIDIA GPUs each (A100 80GB, tainted so only pods that tolerate it land there), the
# shape of a small shared inference cluster.
DEFAULT_NODES: tuple[dict[str, Any], ...] = (
    {"name": "cpu-node-1", "allocatable": {"cpu": "16", "memory": "64Gi", "pods": "110"}},
    {"name": "cpu-node-2", "allocatable": {"cpu": "16", "memory": "64Gi", "pods": "110"}},
    {"name": "cpu-node-3", "allocatable": {"cpu": "16", "memory": "64Gi", "pods": "110"}},
    {"name": "gpu-node-1", "allocatable": {"cpu": "32", "memory": "256Gi", "pods": "110", "nvidia.com/gpu": "4"},
     "labels": {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB", "nvidia.com/gpu.present": "true"},
     "taints": [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]},
    {"name": "gpu-node-2", "allocatable": {"cpu": "32", "memory": "256Gi", "pods": "110", "nvidia.com/gpu": "4"},
     "labels": {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB", "nvidia.com/gpu.present": "true"},
     "taints": [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]},
)
NODE_KUBELET_VERSION = "v1.37.0-sandbox"


class ProfileError(ValueError):
    """A profile directory that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class ReleaseFacts:
    """What one KServe release's webhook and controller code does (read from kserve/kserve at the
    release tags; the data files do not say it)."""

    version: tuple[int, ...]

    @property
    def renamed_modes(self) -> bool:
        """0.16 renamed the deployment modes: Serverless -> Knative, RawDeployment -> Standard."""
        return self.version >= (0, 16)

    @property
    def mode_names(self) -> tuple[str, str, str]:
        """(Knative-backed, plain Deployment, ModelMesh) as this release spells them."""
        return ("Knative", "Standard", "ModelMesh") if self.renamed_modes else ("Serverless", "RawDeployment",
                                                                                "ModelMesh")

    @property
    def legacy_modes(self) -> dict[str, str]:
        """Old spellings the controller still understands (GetDeploymentMode), 0.16 on."""
        return {"Serverless": "Knative", "RawDeployment": "Standard"} if self.renamed_modes else {}

    @property
    def webhook_rewrites_legacy_modes(self) -> bool:
        """0.17 on, the mutating webhook rewrites an old spelling in the annotation; 0.16 leaves it,
        so the annotation then differs from status.deploymentMode and every update is refused."""
        return self.version >= (0, 17)

    @property
    def refuses_mode_change(self) -> bool:
        """0.15.1 on, the validating webhook refuses an update whose mode annotation differs from
        status.deploymentMode ("update rejected: deploymentMode cannot be changed ...")."""
        return self.version >= (0, 15, 1)

    @property
    def records_mode_in_status(self) -> bool:
        """status.deploymentMode exists from 0.15 (the CRD of 0.13/0.14 has no such field)."""
        return self.version >= (0, 15)

    @property
    def reports_reconcile_failure_in_conditions(self) -> bool:
        """0.17 on, a failed component reconcile (e.g. Knative's webhook refusing the Service)
        sets PredictorReady=False, reason ReconcileFailed; before, it is only an InternalError event."""
        return self.version >= (0, 17)

    @property
    def annotates_model_format(self) -> bool:
        """0.17 on, the mutating webhook copies the model format into a ``modelFormat`` annotation."""
        return self.version >= (0, 17)

    # --- the storage initializer's credentials (pkg/credentials, the pod mutator's injector) ---
    @property
    def hf_token_secret(self) -> bool:
        """0.14 on, a secret with ``HF_TOKEN`` gives the storage initializer that variable
        (pkg/credentials/hf appears in v0.14.0; v0.13.1 skips such a secret)."""
        return self.version >= (0, 14)

    @property
    def hf_token_as_literal(self) -> bool:
        """0.14 and 0.15 copy the token's value into the pod spec (``value:``); 0.16 on it is a
        ``secretKeyRef`` like every other credential."""
        return (0, 14) <= self.version < (0, 16)

    @property
    def hf_secret_enables_transfer(self) -> bool:
        """0.15 only: the HF secret also sets ``HF_HUB_ENABLE_HF_TRANSFER=1``."""
        return (0, 15) <= self.version < (0, 16)

    @property
    def azure_storage_key_with_client_keys(self) -> bool:
        """0.15 on, ``AZURE_STORAGE_ACCESS_KEY`` is one of the keys copied for a service-principal
        secret (left out when the secret lacks it); before, only a secret holding nothing but the
        storage key gets it."""
        return self.version >= (0, 15)

    @property
    def azure_access_token(self) -> bool:
        """0.16 on, a secret with ``AZURE_ACCESS_TOKEN`` is an Azure secret too, and the copied keys
        include the token, its expiry, ``AZURE_ACCOUNT_NAME`` and ``AZURE_SERVICE_URL``; every key
        but ``AZURE_TENANT_ID`` is left out when the secret lacks it."""
        return self.version >= (0, 16)

    @property
    def s3_settings_from_secret_data(self) -> bool:
        """0.16 on, each S3 setting (endpoint, https, region, ...) comes from the secret's
        annotation, else the secret's data key of the variable's name (``S3_ENDPOINT``, ...), else
        the ``credentials.s3`` config; before, annotation else config, and ``S3_USE_HTTPS`` only
        next to the endpoint it came with (an annotated endpoint never reads ``s3UseHttps``)."""
        return self.version >= (0, 16)

    @property
    def s3_endpoint_scheme_prefix(self) -> bool:
        """0.17 on, an endpoint written with ``http://`` or ``https://`` decides ``S3_USE_HTTPS``
        itself; before, the prefix is kept and another is put in front (``https://http://host``)."""
        return self.version >= (0, 17)

    @property
    def injects_hf_download_defaults(self) -> bool:
        """0.16 on, the injector adds ``HF_HUB_ENABLE_HF_TRANSFER=1``, ``HF_XET_HIGH_PERFORMANCE=1``
        and ``HF_XET_NUM_CONCURRENT_RANGE_GETS=8`` to every storage initializer (unless set)."""
        return self.version >= (0, 16)

    @property
    def holds_failure_while_restarting(self) -> bool:
        """0.15 on, PropagateModelStatus leaves the model status alone while a storage initializer
        that failed before runs again; 0.13 and 0.14 report it ``Loading`` (InProgress; the
        ``lastFailureInfo`` stays)."""
        return self.version >= (0, 15)

    @property
    def label(self) -> str:
        return ".".join(str(p) for p in self.version)


@dataclass(frozen=True, eq=False)
class ReleaseProfile:
    """One KServe release as the sandbox plays it (read-only; see ``load``)."""

    name: str
    kserve_version: str
    path: Path
    # ClusterServingRuntime manifests, in file-name order. Shared: use runtime_objects() to get copies.
    runtimes: tuple[dict, ...]
    # Protocol versions ranked as KServe ranks them for auto-selection, lowest first.
    protocol_order: tuple[str, ...] = DEFAULT_PROTOCOL_ORDER
    # Old deployment-mode spellings the mutating webhook rewrites, e.g. Serverless -> Knative.
    deployment_mode_aliases: dict[str, str] = field(default_factory=dict)
    # Legacy predictor keys (``sklearn:``, ...) the webhook moves into ``predictor.model``.
    legacy_framework_keys: tuple[str, ...] = DEFAULT_LEGACY_FRAMEWORK_KEYS
    # Formats for which the webhook writes ``protocolVersion: v2`` when it is unset.
    protocol_v2_formats: frozenset[str] = frozenset(DEFAULT_PROTOCOL_V2_FORMATS)
    # The release's CRDs (empty: the API server's built-in ones).
    crds: tuple[dict, ...] = ()
    # The release's default inferenceservice-config ConfigMap (None: the sandbox's minimal one).
    isvc_config: dict | None = None
    facts: ReleaseFacts = ReleaseFacts((0, 20))
    # Knative Serving ConfigMap data by name (config-features, config-defaults).
    knative: dict[str, dict[str, str]] = field(default_factory=lambda: copy.deepcopy(KNATIVE_DEFAULTS))
    nodes: tuple[dict, ...] = ()

    def runtime_objects(self) -> list[dict]:
        """Fresh copies of the default ClusterServingRuntimes, ready to be stored."""
        return copy.deepcopy(list(self.runtimes))

    def runtime(self, name: str) -> dict | None:
        """The default ClusterServingRuntime called ``name`` (a shared object: do not modify)."""
        return next((r for r in self.runtimes if r["metadata"]["name"] == name), None)

    def cluster_objects(self) -> list[dict]:
        """What exists in the cluster before any InferenceService: the namespaces, the KServe and
        Knative ConfigMaps and the nodes (fresh copies). Runtimes: ``runtime_objects``."""
        objects: list[dict] = [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": KSERVE_NAMESPACE}},
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": KNATIVE_NAMESPACE}},
        ]
        config = copy.deepcopy(self.isvc_config) if self.isvc_config else _minimal_isvc_config()
        config["metadata"] = {"name": ISVC_CONFIG_NAME, "namespace": KSERVE_NAMESPACE}
        objects.append(config)
        for name, data in self.knative.items():
            objects.append({"apiVersion": "v1", "kind": "ConfigMap",
                            "metadata": {"name": name, "namespace": KNATIVE_NAMESPACE}, "data": dict(data)})
        objects.extend(copy.deepcopy(list(self.nodes)))
        objects.append(self.controller_pod())
        return objects

    @property
    def controller_image(self) -> str:
        """The KServe controller's image, tagged with the release when the profile names one
        exactly (a directory named like ``0.15.2``, or ``profile.yaml`` kserveVersion)."""
        for candidate in (self.path.name, self.kserve_version):
            if re.fullmatch(r"\d+\.\d+\.\d+", candidate or ""):
                return f"kserve/kserve-controller:v{candidate}"
        return "kserve/kserve-controller:latest"

    def controller_pod(self) -> dict:
        """The pod of KServe's controller Deployment in namespace ``kserve`` (what a client can
        read the controller's image, hence its release, from)."""
        return {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "kserve-controller-manager-0", "namespace": KSERVE_NAMESPACE,
                             "labels": {"control-plane": "kserve-controller-manager",
                                        "app.kubernetes.io/name": "kserve-controller-manager"}},
                "spec": {"containers": [{"name": "manager", "image": self.controller_image}]},
                "status": {"phase": "Running"}}


def detect_release(crds: list[dict] | tuple[dict, ...]) -> tuple[int, ...] | None:
    """The lowest KServe release whose InferenceService CRD declares what this one declares."""
    isvc = next((c for c in crds if (c.get("spec") or {}).get("names", {}).get("kind") == "InferenceService"), None)
    if isvc is None:
        return None
    version = next((v for v in isvc["spec"].get("versions") or [] if v.get("name") == "v1beta1"), None)
    spec = (((version or {}).get("schema") or {}).get("openAPIV3Schema") or {}).get("properties", {}).get("spec", {})
    props = spec.get("properties") or {}
    logger = ((props.get("predictor") or {}).get("properties") or {}).get("logger", {}).get("properties") or {}
    if "canary" in props:
        return (0, 20)
    for key, release in (("batchSize", (0, 17)), ("storage", (0, 16)), ("metadataAnnotations", (0, 15, 1)),
                         ("metadataHeaders", (0, 14))):
        if key in logger:
            return release
    return (0, 13)


def parse_version(text: str) -> tuple[int, ...]:
    parts = re.findall(r"\d+", text or "")
    if not parts:
        raise ValueError(f"not a release version: {text!r}")
    return tuple(int(p) for p in parts)


def node_object(spec: dict[str, Any]) -> dict[str, Any]:
    """A Node manifest from a profile's short form (name, allocatable, capacity, labels, taints)."""
    name = spec.get("name")
    if not name or not isinstance(spec.get("allocatable"), dict):
        raise ValueError("a node needs a name and an allocatable mapping")
    allocatable = {str(k): str(v) for k, v in spec["allocatable"].items()}
    labels = {"kubernetes.io/hostname": str(name), "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
              **{str(k): str(v) for k, v in (spec.get("labels") or {}).items()}}
    node: dict[str, Any] = {
        "apiVersion": "v1", "kind": "Node", "metadata": {"name": str(name), "labels": labels},
        "spec": {},
        "status": {"capacity": {str(k): str(v) for k, v in (spec.get("capacity") or allocatable).items()},
                   "allocatable": allocatable,
                   "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                   "message": "kubelet is posting ready status"}],
                   "nodeInfo": {"kubeletVersion": NODE_KUBELET_VERSION, "architecture": "amd64",
                                "operatingSystem": "linux"}},
    }
    if spec.get("taints"):
        node["spec"]["taints"] = list(spec["taints"])
    return node


def load(path: str | Path) -> ReleaseProfile:
    """Read the release profile in directory ``path``; ``ProfileError`` if it is unusable."""
    root = Path(path)
    if not root.is_dir():
        raise ProfileError(f"{root}: not a directory")
    profile_file = root / "profile.yaml"
    meta = _single_mapping(profile_file) if profile_file.is_file() else {}
    if not profile_file.is_file() and not (root / "runtimes").is_dir():
        raise ProfileError(f"{root}: not a release profile (neither profile.yaml nor runtimes/)")
    admission = meta.get("admission") or {}
    if not isinstance(admission, dict):
        raise ProfileError(f"{profile_file}: admission must be a mapping")
    protocol_order = meta.get("protocolOrder", list(DEFAULT_PROTOCOL_ORDER))
    if not isinstance(protocol_order, list) or not all(isinstance(p, str) for p in protocol_order):
        raise ProfileError(f"{profile_file}: protocolOrder must be a list of protocol versions")
    crds = tuple(_load_crds(root / "crds"))
    isvc_config = _load_isvc_config(root / "configmap" / "inferenceservice.yaml")
    declared = meta.get("kserveVersion")
    if declared:
        try:
            release = parse_version(str(declared))
        except ValueError as exc:
            raise ProfileError(f"{profile_file}: kserveVersion: {exc}") from None
    else:
        release = detect_release(crds) or (0, 20)
    facts = ReleaseFacts(release)
    aliases = admission.get("deploymentModeAliases")
    if aliases is None:
        aliases = facts.legacy_modes if facts.webhook_rewrites_legacy_modes else {}
    if not isinstance(aliases, dict):
        raise ProfileError(f"{profile_file}: admission.deploymentModeAliases must be a mapping")
    knative = copy.deepcopy(KNATIVE_DEFAULTS)
    overrides = meta.get("knative") or {}
    if not isinstance(overrides, dict) or not all(isinstance(v, dict) for v in overrides.values()):
        raise ProfileError(f"{profile_file}: knative must map ConfigMap names to data mappings")
    for name, data in overrides.items():
        knative.setdefault(str(name), {}).update({str(k): str(v) for k, v in data.items()})
    node_specs = meta.get("nodes", list(DEFAULT_NODES))
    if not isinstance(node_specs, list):
        raise ProfileError(f"{profile_file}: nodes must be a list")
    try:
        nodes = tuple(node_object(n) for n in node_specs)
    except (ValueError, AttributeError, TypeError) as exc:
        raise ProfileError(f"{profile_file}: nodes: {exc}") from None
    return ReleaseProfile(
        name=str(meta.get("name") or root.name),
        kserve_version=str(declared or facts.label),
        path=root,
        runtimes=tuple(_load_runtimes(root / "runtimes")),
        protocol_order=tuple(protocol_order),
        deployment_mode_aliases={str(k): str(v) for k, v in aliases.items()},
        legacy_framework_keys=tuple(str(k) for k in admission.get("legacyFrameworkKeys",
                                                                  DEFAULT_LEGACY_FRAMEWORK_KEYS)),
        protocol_v2_formats=frozenset(str(f) for f in admission.get("protocolV2Formats",
                                                                    DEFAULT_PROTOCOL_V2_FORMATS)),
        crds=crds,
        isvc_config=isvc_config,
        facts=facts,
        knative=knative,
        nodes=nodes,
    )


def load_builtin() -> ReleaseProfile:
    """The profile shipped with the sandbox (KServe 0.20)."""
    return load(BUILTIN_PROFILE_DIR)


def isvc_config_value(config: dict | None, key: str) -> dict[str, Any]:
    """One JSON section (``deploy``, ``storageInitializer``, ``ingress`` ...) of an
    inferenceservice-config ConfigMap, ``{}`` when absent or not JSON (as KServe falls back)."""
    raw = ((config or {}).get("data") or {}).get(key)
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _minimal_isvc_config() -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "data": {"deploy": json.dumps({"defaultDeploymentMode": "Serverless"}),
                     "ingress": json.dumps({"ingressDomain": "example.com", "urlScheme": "http"}),
                     "storageInitializer": json.dumps({"enableModelcar": True})}}


def _load_crds(folder: Path) -> list[dict]:
    if not folder.is_dir():
        return []
    found = []
    for file in sorted(folder.glob("*.yaml")):
        for doc in _documents(file):
            if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
                found.append(doc)
            elif doc is not None:
                raise ProfileError(f"{file}: expected CustomResourceDefinition documents, got {doc.get('kind')}"
                                   if isinstance(doc, dict) else f"{file}: a document is not a mapping")
    return found


def _load_isvc_config(file: Path) -> dict | None:
    if not file.is_file():
        return None
    doc = _single_mapping(file)
    if doc.get("kind") != "ConfigMap" or not isinstance(doc.get("data"), dict):
        raise ProfileError(f"{file}: expected the inferenceservice-config ConfigMap")
    return doc


def _single_mapping(path: Path) -> dict[str, Any]:
    docs = _documents(path)
    if len(docs) != 1 or not isinstance(docs[0], dict):
        raise ProfileError(f"{path}: expected one YAML mapping")
    return docs[0]


def _documents(path: Path) -> list[Any]:
    try:
        return load_yaml_documents(path)
    except (OSError, yaml.YAMLError) as exc:  # PyYAML's message carries the line and column
        raise ProfileError(f"{path}: {exc}") from exc


def _runtime_files(folder: Path) -> list[Path]:
    kustomization = folder / "kustomization.yaml"
    if not kustomization.is_file():
        return sorted(p for p in folder.glob("*.yaml") if p.is_file())
    # Installed means listed: KServe keeps runtime files its kustomization does not install.
    resources = _single_mapping(kustomization).get("resources") or []
    files = []
    for entry in resources:
        file = folder / str(entry)
        if not file.is_file():
            raise ProfileError(f"{kustomization}: resource {entry} is not a file in {folder}")
        files.append(file)
    return sorted(files)


def _load_runtimes(folder: Path) -> list[dict]:
    if not folder.is_dir():
        raise ProfileError(f"{folder}: missing (a profile's default runtimes live there)")
    found: dict[str, dict] = {}
    for file in _runtime_files(folder):
        for doc in _documents(file):
            if not isinstance(doc, dict):
                raise ProfileError(f"{file}: a document is not a mapping")
            if doc.get("kind") != RUNTIME_KIND or doc.get("apiVersion") != RUNTIME_API_VERSION:
                raise ProfileError(f"{file}: expected {RUNTIME_API_VERSION} {RUNTIME_KIND}, "
                                   f"got {doc.get('apiVersion')} {doc.get('kind')}")
            name = (doc.get("metadata") or {}).get("name")
            if not name:
                raise ProfileError(f"{file}: a {RUNTIME_KIND} without metadata.name")
            if name in found:
                raise ProfileError(f"{file}: {RUNTIME_KIND} {name} is defined twice")
            if not isinstance(doc.get("spec"), dict):
                raise ProfileError(f"{file}: {RUNTIME_KIND} {name} has no spec")
            found[name] = doc
    return list(found.values())
