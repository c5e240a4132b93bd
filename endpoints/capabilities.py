"""What one cluster can do, as read from the cluster itself, and what that implies.

A real cluster is not "KServe 0.20 with a permissive Knative": it runs some KServe release
(0.13 … 0.20 are all in use), has the runtimes its admins installed, an
``inferenceservice-config`` someone may have edited, and Knative's defaults, which refuse the
node selectors and tolerations GPU profiles need. ``Capabilities`` holds what
``endpoints.services.capabilities.cluster_discover`` read; it is plain data (JSON in
``ClusterCapabilities.data``) so validation, rendering and the plan can consult it without a
cluster round trip.

Nothing here fingerprints files: KServe's CRDs and config carry no version number and every
release's config says ``defaultDeploymentMode: Serverless``, so the release is read off what the
cluster's InferenceService CRD declares (``logger.metadataHeaders`` ⇒ ≥ 0.14,
``logger.metadataAnnotations`` ⇒ ≥ 0.15.1, ``logger.storage`` ⇒ ≥ 0.16, ``logger.batchSize`` ⇒
≥ 0.17, ``spec.canary`` ⇒ 0.20), and the controller's image tag when it can be read.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from endpoints.catalog import RuntimeSpec, SupportedFormat

ISVC_CRD = "inferenceservices.serving.kserve.io"
KSERVE_NAMESPACE = "kserve"
ISVC_CONFIG = "inferenceservice-config"
KNATIVE_NAMESPACE = "knative-serving"
GPU_RESOURCE_PREFIXES = ("nvidia.com/", "amd.com/", "intel.com/", "habana.ai/", "gpu.intel.com/")
# The console's per-generation annotations (endpoints.plan.BOOKKEEPING_ANNOTATIONS).
BOOKKEEPING_ANNOTATIONS = ("inference-console.io/generation", "inference-console.io/spec-hash")
# How deep below ``spec`` the declared InferenceService fields are kept (predictor.logger.storage).
FIELD_DEPTH = 3

# (field under spec.predictor.logger, the lowest release that declares it) — newest first.
_RELEASE_MARKERS = (
    ("batchSize", (0, 17)),
    ("storage", (0, 16)),
    ("metadataAnnotations", (0, 15, 1)),
    ("metadataHeaders", (0, 14)),
)

# Knative ``config-features`` flags for the PodSpec fields the console renders.
KNATIVE_FLAGS = {
    "nodeSelector": "kubernetes.podspec-nodeselector",
    "tolerations": "kubernetes.podspec-tolerations",
    "affinity": "kubernetes.podspec-affinity",
    "runtimeClassName": "kubernetes.podspec-runtimeclassname",
}
# What Knative ships when a key is absent from its ConfigMaps.
KNATIVE_DEFAULT_MAX_TIMEOUT = 600
KNATIVE_DEFAULT_MAX_CONCURRENCY = 1000


def release_from_crd(crd: dict[str, Any] | None) -> tuple[int, ...] | None:
    """The lowest KServe release whose InferenceService CRD declares what ``crd`` declares."""
    if not crd:
        return None
    spec = _version_schema(crd).get("properties", {}).get("spec", {})
    props = spec.get("properties") or {}
    if "canary" in props:
        return (0, 20)
    logger = (((props.get("predictor") or {}).get("properties") or {}).get("logger") or {}).get("properties") or {}
    for key, release in _RELEASE_MARKERS:
        if key in logger:
            return release
    return (0, 13)


def release_from_image(image: str) -> tuple[int, ...] | None:
    """``kserve/kserve-controller:v0.15.2`` → (0, 15, 2); None for ``latest`` or a digest."""
    match = re.search(r":v?(\d+)\.(\d+)(?:\.(\d+))?(?:[-+].*)?$", image or "")
    if not match:
        return None
    return tuple(int(part) for part in match.groups() if part is not None)


def declared_fields(crd: dict[str, Any] | None, depth: int = FIELD_DEPTH) -> list[str]:
    """Dotted paths of the properties the InferenceService CRD declares under ``spec``, to ``depth``."""
    spec = _version_schema(crd or {}).get("properties", {}).get("spec", {})
    found: list[str] = []

    def walk(schema: dict, prefix: str, level: int) -> None:
        if level > depth:
            return
        if isinstance(schema.get("items"), dict):
            schema = schema["items"]
        for name, child in (schema.get("properties") or {}).items():
            path = f"{prefix}.{name}" if prefix else name
            found.append(path)
            if isinstance(child, dict):
                walk(child, path, level + 1)

    walk(spec, "", 1)
    return sorted(found)


def _version_schema(crd: dict[str, Any]) -> dict[str, Any]:
    versions = (crd.get("spec") or {}).get("versions") or []
    version = next((v for v in versions if v.get("name") == "v1beta1"), versions[0] if versions else {})
    return ((version.get("schema") or {}).get("openAPIV3Schema")) or {}


def release_label(release: tuple[int, ...] | None, *, exact: bool = False) -> str:
    if release is None:
        return "unknown"
    text = ".".join(str(p) for p in release)
    if exact:
        return text
    return {(0, 17): "0.17 – 0.19", (0, 20): "0.20 or later"}.get(release, f"{text} or later")


def config_section(configmap: dict[str, Any] | None, key: str) -> dict[str, Any]:
    raw = ((configmap or {}).get("data") or {}).get(key)
    try:
        value = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def runtime_summary(obj: dict[str, Any]) -> dict[str, Any]:
    """The parts of a (Cluster)ServingRuntime the console decides with."""
    spec = obj.get("spec") or {}
    meta = obj.get("metadata") or {}
    container = next((c for c in spec.get("containers") or [] if c.get("name") == "kserve-container"),
                     (spec.get("containers") or [{}])[0])
    return {
        "name": meta.get("name", ""),
        "kind": obj.get("kind", ""),
        "namespace": meta.get("namespace", ""),
        "created": meta.get("creationTimestamp", ""),
        "formats": [{"name": f.get("name", ""), **({"version": str(f["version"])} if f.get("version") is not None
                                                     else {}),
                     "autoSelect": bool(f.get("autoSelect")), **({"priority": f["priority"]}
                                                                 if f.get("priority") is not None else {})}
                    for f in spec.get("supportedModelFormats") or []],
        "protocols": list(spec.get("protocolVersions") or []),
        "disabled": bool(spec.get("disabled")),
        "multi_model": bool(spec.get("multiModel")),
        "multi_node": bool(spec.get("workerSpec")),
        "image": container.get("image", ""),
        "server_type": (meta.get("annotations") or {}).get("serving.kserve.io/server-type", ""),
    }


@dataclass
class Capabilities:
    """One reading of a cluster (see the module docstring). Lists and dicts are JSON-ready."""

    read_at: str = ""
    reachable: bool = False
    authenticated: bool = False
    kserve: bool = False
    server_version: str = ""
    release: list[int] | None = None
    release_exact: bool = False
    controller_image: str = ""
    isvc_fields: list[str] = field(default_factory=list)
    isvc_config: dict[str, Any] | None = None
    knative: bool | None = None  # None: could not tell (no permission)
    knative_features: dict[str, str] = field(default_factory=dict)
    knative_defaults: dict[str, str] = field(default_factory=dict)
    accelerators: dict[str, int] | None = None  # None: nodes not readable
    # For each accelerator: the NoSchedule/NoExecute taints of every node offering it (one list per node).
    accelerator_taints: dict[str, list[list[dict[str, str]]]] = field(default_factory=dict)
    cluster_runtimes: list[dict[str, Any]] = field(default_factory=list)
    namespace_runtimes: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    error: str = ""

    # --- serialisation ---------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Capabilities:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in (data or {}).items() if k in known})

    # --- what the reading means ---------------------------------------------------------------
    @property
    def usable(self) -> bool:
        return self.reachable and self.authenticated and self.kserve

    @property
    def release_tuple(self) -> tuple[int, ...] | None:
        return tuple(self.release) if self.release else None

    @property
    def release_text(self) -> str:
        return release_label(self.release_tuple, exact=self.release_exact)

    @property
    def renamed_modes(self) -> bool:
        """0.16 renamed the modes Serverless/RawDeployment to Knative/Standard."""
        return self.release_tuple is None or self.release_tuple >= (0, 16)

    def mode_value(self, mode: str) -> str:
        """The annotation value this release accepts for the console's ``Knative``/``Standard``."""
        if self.renamed_modes:
            return mode
        return {"Knative": "Serverless", "Standard": "RawDeployment"}.get(mode, mode)

    def declares(self, path: str) -> bool:
        """Whether the cluster's InferenceService CRD declares ``spec.<path>`` (True when unknown)."""
        if not self.isvc_fields:
            return True
        return path in set(self.isvc_fields)

    def _config(self, key: str) -> dict[str, Any]:
        return config_section(self.isvc_config, key)

    @property
    def default_mode(self) -> str:
        mode = self._config("deploy").get("defaultDeploymentMode") or "Serverless"
        return {"Serverless": "Knative", "RawDeployment": "Standard"}.get(mode, mode)

    @property
    def ingress_domain(self) -> str:
        return self._config("ingress").get("ingressDomain", "")

    @property
    def domain_template(self) -> str:
        return self._config("ingress").get("domainTemplate", "")

    @property
    def modelcar(self) -> bool | None:
        value = self._config("storageInitializer").get("enableModelcar")
        return None if self.isvc_config is None else bool(value)

    @property
    def s3_key_names(self) -> tuple[str, str]:
        """The Secret data keys KServe reads an S3 access key id and secret from: the cluster's
        ``credentials.s3`` config, else the controller's built-in names (pkg/credentials/s3)."""
        s3 = self._config("credentials").get("s3") or {}
        return (s3.get("s3AccessKeyIDName") or "awsAccessKeyID",
                s3.get("s3SecretAccessKeyName") or "awsSecretAccessKey")

    @property
    def gcs_credential_file(self) -> str:
        gcs = self._config("credentials").get("gcs") or {}
        return gcs.get("gcsCredentialFileName") or "gcloud-application-credentials.json"

    @property
    def storage_initializer_reads_hf_token(self) -> bool:
        """KServe hands a ServiceAccount secret's ``HF_TOKEN`` to the storage initializer from 0.14
        (pkg/credentials/hf); 0.13 skips such a secret. True when the release is unknown."""
        return self.release_tuple is None or self.release_tuple >= (0, 14)

    @property
    def disallowed_annotations(self) -> list[str]:
        return list(self._config("inferenceService").get("serviceAnnotationDisallowedList") or [])

    @property
    def logger_default_url(self) -> str:
        return self._config("logger").get("defaultUrl", "")

    @property
    def bookkeeping_kept_off_pods(self) -> bool:
        """Whether KServe keeps the console's per-generation annotations off the pods (True when unknown)."""
        if self.isvc_config is None:
            return True
        return all(a in self.disallowed_annotations for a in BOOKKEEPING_ANNOTATIONS)

    def placement_problem(self, resource: str, tolerations) -> str | None:
        """Why no node could take a pod asking for ``resource`` with ``tolerations`` (None: some
        node could, or the nodes are not readable)."""
        if not resource or self.accelerators is None:
            return None
        if resource not in self.accelerators:
            offered = ", ".join(sorted(self.accelerators)) or "none"
            return f"no node offers {resource} (accelerators offered: {offered})"
        nodes = self.accelerator_taints.get(resource) or []
        if nodes and all(any(not tolerates(taint, tolerations or ()) for taint in taints) for taints in nodes):
            shown = sorted({f"{t.get('key')}{'=' + t['value'] if t.get('value') else ''}:{t.get('effect')}"
                            for taints in nodes for t in taints if not tolerates(t, tolerations or ())})
            return f"every node offering {resource} is tainted ({', '.join(shown)}) and the pods tolerate none of it"
        return None

    def knative_allows(self, pod_field: str) -> bool:
        """Whether Knative accepts ``pod_field`` (``nodeSelector`` …) in a Service's PodSpec."""
        if self.knative is False:
            return True  # no Knative, nothing refuses it (Knative mode itself cannot work then)
        flag = KNATIVE_FLAGS.get(pod_field)
        if flag is None:
            return True
        return self.knative_features.get(flag, "disabled").strip().lower() in ("enabled", "allowed")

    def _knative_default(self, key: str, shipped: int) -> int:
        """An integer of ``config-defaults``, or what Knative ships when absent or unreadable."""
        try:
            return int(self.knative_defaults.get(key, shipped))
        except (TypeError, ValueError):
            return shipped

    @property
    def max_revision_timeout(self) -> int:
        return self._knative_default("max-revision-timeout-seconds", KNATIVE_DEFAULT_MAX_TIMEOUT)

    @property
    def max_container_concurrency(self) -> int:
        return self._knative_default("container-concurrency-max-limit", KNATIVE_DEFAULT_MAX_CONCURRENCY)

    @property
    def mode_values(self) -> tuple[str, str]:
        return self.mode_value("Knative"), self.mode_value("Standard")

    @property
    def all_runtimes(self) -> list[dict[str, Any]]:
        """Namespace runtimes (by namespace) then cluster runtimes, for listing."""
        return [*(r for ns in sorted(self.namespace_runtimes) for r in self.namespace_runtimes[ns]),
                *self.cluster_runtimes]

    def runtimes_for(self, namespace: str | None) -> list[dict[str, Any]]:
        """The runtimes an InferenceService in ``namespace`` can use: the namespace's first."""
        return [*(self.namespace_runtimes.get(namespace or "") or []), *self.cluster_runtimes]

    def runtime_specs(self, namespace: str | None, known: dict[str, RuntimeSpec] | None = None) -> list[RuntimeSpec]:
        """The runtimes an InferenceService in ``namespace`` can use on this cluster, as KServe sees
        them (formats, versions, protocols, priorities as installed *there*), with what only the
        console knows (display name, OpenAI routes, container defaults) taken from ``known`` by name."""
        known = known or {}
        out = []
        for summary in self.runtimes_for(namespace):
            base = known.get(summary["name"])
            created = None
            if summary.get("created"):
                try:
                    created = datetime.fromisoformat(summary["created"].replace("Z", "+00:00"))
                except ValueError:
                    created = None
            out.append(RuntimeSpec(
                name=summary["name"],
                display_name=base.display_name if base else summary["name"],
                formats=tuple(SupportedFormat(name=f.get("name", ""), version=str(f.get("version") or ""),
                                              auto_select=bool(f.get("autoSelect")), priority=f.get("priority"))
                              for f in summary.get("formats") or []),
                protocols=tuple(summary.get("protocols") or ()),
                multinode=bool(summary.get("multi_node")),
                openai_compatible=base.openai_compatible if base else False,
                openai_route_prefix=base.openai_route_prefix if base else "",
                description=base.description if base else "",
                container_defaults=base.container_defaults if base else None,
                namespaced=bool(summary.get("namespace")),
                disabled=bool(summary.get("disabled")),
                multi_model=bool(summary.get("multi_model")),
                created_at=created,
            ))
        return out

    def implications(self) -> list[str]:
        """What this reading means for endpoints, in words, for the cluster page."""
        if not self.reachable:
            return [f"The console cannot reach this cluster: {self.error or 'no answer'}."]
        if not self.authenticated:
            return [f"The cluster refuses the console's credentials: {self.error or 'unauthorized'}."]
        if not self.kserve:
            return ["KServe is not installed (no InferenceService CRD): nothing can be deployed here."]
        out = []
        knative_name, standard_name = self.mode_value("Knative"), self.mode_value("Standard")
        out.append(f"KServe {self.release_text}: deployment modes are written {knative_name} and {standard_name}.")
        if self.release_tuple and self.release_tuple < (0, 15, 1):
            out.append("Payload logging without metadata annotations "
                       + ("or headers " if self.release_tuple < (0, 14) else "")
                       + "(this KServe release's logger does not have them).")
        if self.knative is False:
            out.append("Knative Serving is not installed: only Standard mode works.")
        elif self.knative:
            refused = [f for f in KNATIVE_FLAGS if not self.knative_allows(f)]
            if refused:
                keys = ", ".join(KNATIVE_FLAGS[f] for f in refused)
                out.append(f"In Knative mode, Knative refuses {', '.join(refused)} ({keys} disabled in "
                           "knative-serving/config-features): hardware profiles that place pods need "
                           "Standard mode, or an admin enables those keys.")
            out.append(f"Knative caps request timeouts at {self.max_revision_timeout} s "
                       "(config-defaults max-revision-timeout-seconds).")
        if self.modelcar is False:
            out.append("oci:// model URIs cannot be used: storageInitializer.enableModelcar is false in "
                       "kserve/inferenceservice-config.")
        if self.accelerators is None:
            out.append("Nodes are not readable with the console's credentials, so accelerator capacity is unknown.")
        elif self.accelerators:
            listed = ", ".join(f"{count} × {name}" for name, count in sorted(self.accelerators.items()))
            out.append(f"Accelerators offered by the nodes: {listed}.")
        else:
            out.append("No node offers an accelerator.")
        if self.isvc_config is not None and not self.bookkeeping_kept_off_pods:
            out.append("The console's bookkeeping annotations (" + ", ".join(BOOKKEEPING_ANNOTATIONS) + ") are not "
                       "in serviceAnnotationDisallowedList of kserve/inferenceservice-config, so every change rolls "
                       "the pods: merge deploy/kserve/inferenceservice-config-patch.yaml (docs/deploy.md).")
        out.extend(self.problems)
        return out


def tolerates(taint: dict, tolerations) -> bool:
    """Whether one of ``tolerations`` tolerates ``taint`` (Kubernetes' matching rules)."""
    for toleration in tolerations:
        if toleration.get("effect") and toleration["effect"] != taint.get("effect"):
            continue
        operator = toleration.get("operator") or "Equal"
        if not toleration.get("key"):
            if operator == "Exists":
                return True
            continue
        if toleration["key"] != taint.get("key"):
            continue
        if operator == "Exists" or (toleration.get("value") or "") == (taint.get("value") or ""):
            return True
    return False


def parse_read_at(caps: Capabilities) -> datetime | None:
    try:
        return datetime.fromisoformat(caps.read_at) if caps.read_at else None
    except ValueError:
        return None
