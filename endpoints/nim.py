"""NVIDIA NIM microservices on KServe, as plain data: the catalog the console ships
(``endpoints/nim_catalog.json``), the ServingRuntime of one NIM, the model-cache PVC, which GPU
shapes a hardware profile satisfies, which Knative flags a NIM needs, and the OpenAI-style request
of a NIM's API (docs/nim.md).

A NIM is a (model, version, GPU type × count) triple: one nvcr.io image per model and version
that downloads its optimised engine with an NGC API key, serves an OpenAI-compatible API on port
8000 and needs shared memory. The console installs one runtime per NIM (NVIDIA's KServe layout);
an endpoint names the runtime and the model format, and serves from the NIM cache
(``storageUri: pvc://<cache>/``).

Pure functions: no database, no cluster. The secret names come in from the NGC connection
(``endpoints.connections``): the runtime reads the key from a Secret and pulls with a pull secret,
it never carries a value.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

CATALOG_FILE = Path(__file__).with_name("nim_catalog.json")
FORMAT_PREFIX = "nvidia-nim-"
GPU_RESOURCE = "nvidia.com/gpu"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
NIM_PORT = 8000
SHM_VOLUME = "dshm"
NGC_KEY = "NGC_API_KEY"
HF_TOKEN_KEY = "HF_TOKEN"  # noqa: S105 - the Secret key a NIM reads
SHM_PATH = "/dev/shm"  # noqa: S108 - the container's shared memory mount, not a temp file
APIS = ("chat", "completions", "embeddings", "ranking")
# The Knative config-features flags NIM pods need in Knative mode: the GPU product's node
# selector and the /dev/shm memory emptyDir (NVIDIA's setup script enables both).
KNATIVE_FLAGS = ("kubernetes.podspec-nodeselector", "kubernetes.podspec-volumes-emptydir")
# What KServe reads for Prometheus scraping of a NIM's /metrics on its serving port.
RUNTIME_ANNOTATIONS = {
    "prometheus.kserve.io/path": "/metrics",
    "prometheus.kserve.io/port": str(NIM_PORT),
    "serving.kserve.io/enable-metric-aggregation": "true",
    "serving.kserve.io/enable-prometheus-scraping": "true",
}
LABEL_NIM = "inference-console.io/nim"
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|Ki|Mi|Gi|Ti|k|M|G|T)?$")


class NimError(ValueError):
    """A catalog entry or a choice the rules refuse; ``field`` names what to fix."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class GpuShape:
    gpu_count: int
    min_gpu_memory_gib: int
    gpu_product: str = ""  # empty: any product with enough memory

    def describe(self) -> str:
        what = self.gpu_product or f"GPU with ≥ {self.min_gpu_memory_gib} GiB"
        return f"{self.gpu_count} × {what}"


@dataclass(frozen=True)
class NimEntry:
    key: str
    display_name: str
    version: str
    image: str
    model_format: str
    api: str
    model_id: str
    cpu_request: str
    cpu_limit: str
    memory_request: str
    memory_limit: str
    shm_size: str
    shm_mount_path: str
    cache_path: str
    shapes: tuple[GpuShape, ...]

    @property
    def runtime_name(self) -> str:
        """The runtime's name: ``nvidia-nim-<model>-<version>``, as NVIDIA names most of them."""
        return f"{FORMAT_PREFIX}{self.key}-{self.version}"[:63].rstrip("-.")

    @property
    def task(self) -> str:
        """The registered model's task (the console's task names)."""
        return {"chat": "llm-chat", "completions": "llm-completion", "embeddings": "embedding"}.get(self.api, "other")

    def to_json(self) -> dict:
        data = {name: getattr(self, name) for name in self.__dataclass_fields__ if name != "shapes"}
        data["shapes"] = [{"gpu_count": s.gpu_count, "min_gpu_memory_gib": s.min_gpu_memory_gib,
                           "gpu_product": s.gpu_product} for s in self.shapes]
        return data


def entry_from_json(data: dict) -> NimEntry:
    """A checked ``NimEntry`` from its JSON form (catalog file, admin form, API, import);
    raises NimError naming the field."""
    if not isinstance(data, dict):
        raise NimError("__all__", "A NIM entry is a JSON object.")

    def text(name: str, *, required: bool = True) -> str:
        value = data.get(name)
        value = "" if value is None else str(value).strip()
        if required and not value:
            raise NimError(name, f"{name.replace('_', ' ').capitalize()} is required.")
        return value

    key = text("key")
    if not _NAME.match(key) or len(key) > 40:
        raise NimError("key", "The key is lowercase letters, digits, '-' and '.', at most 40 characters.")
    version = text("version")
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,30}$", version):
        raise NimError("version", "The version is the image tag, e.g. 1.0.0.")
    image = text("image")
    if "://" in image or " " in image or ":" not in image.rsplit("/", 1)[-1]:
        raise NimError("image", "The image is a reference with a tag, e.g. nvcr.io/nim/meta/llama3-8b-instruct:1.0.0.")
    model_format = text("model_format", required=False) or f"{FORMAT_PREFIX}{key}"
    if not model_format.startswith(FORMAT_PREFIX):
        raise NimError("model_format", f"A NIM's model format starts with {FORMAT_PREFIX}.")
    api = text("api")
    if api not in APIS:
        raise NimError("api", f"The API is one of {', '.join(APIS)}.")
    values = {}
    for name in ("cpu_request", "cpu_limit", "memory_request", "memory_limit", "shm_size"):
        values[name] = text(name)
        if not _QUANTITY.match(values[name]):
            raise NimError(name, f"{values[name]!r} is not a Kubernetes quantity (e.g. 12, 4000m, 32Gi).")
    for name in ("shm_mount_path", "cache_path"):
        values[name] = text(name, required=False) or {"shm_mount_path": SHM_PATH,
                                                        "cache_path": "/mnt/models/cache"}[name]
        if not values[name].startswith("/"):
            raise NimError(name, "A path in the container starts with /.")
    raw_shapes = data.get("shapes")
    if not isinstance(raw_shapes, list) or not raw_shapes:
        raise NimError("shapes", "Give at least one GPU shape (GPU count, minimum GPU memory, optional product).")
    shapes = []
    for index, raw in enumerate(raw_shapes):
        try:
            count, memory = int(raw.get("gpu_count")), int(raw.get("min_gpu_memory_gib") or 0)
        except (AttributeError, TypeError, ValueError):
            raise NimError("shapes", f"Shape {index + 1}: GPU count and minimum GPU memory are whole numbers.") from None
        if count < 1 or memory < 0:
            raise NimError("shapes", f"Shape {index + 1}: at least 1 GPU, and a minimum memory of 0 GiB or more.")
        shapes.append(GpuShape(count, memory, str(raw.get("gpu_product") or "").strip()))
    entry = NimEntry(key=key, display_name=text("display_name", required=False) or key, version=version, image=image,
                     model_format=model_format, api=api, model_id=text("model_id", required=False) or key,
                     shapes=tuple(shapes), **values)
    if not _NAME.match(entry.runtime_name):
        raise NimError("key", f"{entry.runtime_name} is not a valid Kubernetes object name.")
    return entry


@cache
def _catalog_document() -> dict:
    return json.loads(CATALOG_FILE.read_text())


def builtin_entries() -> list[NimEntry]:
    """The NIMs the console ships (no download at run time)."""
    return [entry_from_json(item) for item in _catalog_document()["nims"]]


def gpu_memory_gib(product: str) -> int | None:
    """The memory of one GPU of ``product`` (its ``nvidia.com/gpu.product`` label value), or None."""
    return _catalog_document()["gpu_products"].get(product or "")


# --- GPU matching ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hardware:
    """What matching needs of a hardware profile."""

    name: str
    accelerator_resource: str
    accelerator_product: str
    node_selector: dict
    max_accelerators: int

    @property
    def product(self) -> str:
        return self.accelerator_product or str((self.node_selector or {}).get(GPU_PRODUCT_LABEL) or "")


def shape_problem(shape: GpuShape, hardware: Hardware, count: int) -> str | None:
    """Why ``count`` GPUs of ``hardware`` do not satisfy ``shape`` (None: they do)."""
    if hardware.accelerator_resource != GPU_RESOURCE:
        return f"it does not request {GPU_RESOURCE}"
    if count != shape.gpu_count:
        return f"{shape.describe()} needs {shape.gpu_count} GPUs, not {count}"
    if shape.gpu_product and hardware.product != shape.gpu_product:
        return f"{shape.describe()} needs {shape.gpu_product} GPUs, not {hardware.product or 'an unnamed product'}"
    memory = gpu_memory_gib(hardware.product)
    if memory is None:
        return (f"its GPU product ({hardware.product or 'not named'}) has no known memory size, and "
                f"{shape.describe()} needs at least {shape.min_gpu_memory_gib} GiB per GPU")
    if memory < shape.min_gpu_memory_gib:
        return f"{shape.describe()} needs {shape.min_gpu_memory_gib} GiB per GPU; {hardware.product} has {memory} GiB"
    return None


def fitting_shape(entry: NimEntry, hardware: Hardware, count: int) -> GpuShape | None:
    return next((s for s in entry.shapes if shape_problem(s, hardware, count) is None), None)


def fit_problem(entry: NimEntry, hardware: Hardware | None, count: int) -> str | None:
    """Why a hardware profile with ``count`` GPUs cannot run the NIM (None: one of its shapes fits)."""
    shapes = "; ".join(s.describe() for s in entry.shapes)
    if hardware is None:
        return f"NIM {entry.key} {entry.version} needs a GPU hardware profile ({shapes})."
    if fitting_shape(entry, hardware, count) is not None:
        return None
    reasons = "; ".join(sorted({shape_problem(s, hardware, count) or "" for s in entry.shapes}))
    return (f"Hardware profile {hardware.name} with {count} GPU(s) fits none of NIM {entry.key} {entry.version}'s "
            f"GPU shapes ({shapes}): {reasons}.")


def profile_can_fit(entry: NimEntry, hardware: Hardware) -> bool:
    """Whether some GPU count the profile allows satisfies one of the NIM's shapes (the wizard
    offers only such profiles)."""
    return any(shape.gpu_count <= hardware.max_accelerators and shape_problem(shape, hardware, shape.gpu_count) is None
               for shape in entry.shapes)


# --- the cluster's Knative ------------------------------------------------------------------


def knative_problem(features: dict | None, *, cluster: str = "the cluster") -> str | None:
    """Why Knative (its ``config-features``) refuses a NIM's pods, or None."""
    features = features or {}
    missing = [flag for flag in KNATIVE_FLAGS
               if str(features.get(flag, "disabled")).strip().lower() not in ("enabled", "allowed")]
    if not missing:
        return None
    return (f"NIMs need Knative's {' and '.join(missing)} on {cluster} (knative-serving/config-features: the GPU "
            "product's node selector and the /dev/shm memory volume), and "
            f"{'it is' if len(missing) == 1 else 'they are'} disabled: choose Standard mode, or ask an admin to "
            "enable them.")


# --- what the console applies ------------------------------------------------------------------


def runtime_manifest(entry: NimEntry, *, name: str, secret_name: str, pull_secret_name: str,
                     namespace: str | None, labels: dict | None = None) -> dict:
    """The NIM's ServingRuntime (``namespace`` given) or ClusterServingRuntime, as NVIDIA's KServe
    layout writes it: the NGC key (and an optional Hugging Face token) from ``secret_name``, the
    image pulled with ``pull_secret_name``, port 8000, /dev/shm as a memory emptyDir, and the
    NIM's model format and version."""
    secret_env = [{"name": key, "valueFrom": {"secretKeyRef": {"name": secret_name, "key": key}}}
                  for key in (HF_TOKEN_KEY, NGC_KEY)]
    container = {
        "name": "kserve-container",
        "image": entry.image,
        "env": [{"name": "NIM_CACHE_PATH", "value": entry.cache_path}, *secret_env],
        "ports": [{"containerPort": NIM_PORT, "protocol": "TCP"}],
        "resources": {"limits": {"cpu": entry.cpu_limit, "memory": entry.memory_limit},
                      "requests": {"cpu": entry.cpu_request, "memory": entry.memory_request}},
        "volumeMounts": [{"mountPath": entry.shm_mount_path, "name": SHM_VOLUME}],
    }
    metadata: dict = {"name": name, "labels": {**(labels or {}), LABEL_NIM: f"{entry.key}.{entry.version}"}}
    if namespace is not None:
        metadata["namespace"] = namespace
    return {
        "apiVersion": "serving.kserve.io/v1alpha1",
        "kind": "ServingRuntime" if namespace is not None else "ClusterServingRuntime",
        "metadata": metadata,
        "spec": {
            "annotations": dict(RUNTIME_ANNOTATIONS),
            "containers": [container],
            "imagePullSecrets": [{"name": pull_secret_name}],
            "protocolVersions": ["v2", "grpc-v2"],
            "supportedModelFormats": [{"autoSelect": True, "name": entry.model_format, "priority": 1,
                                       "version": entry.version}],
            "volumes": [{"name": SHM_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": entry.shm_size}}],
        },
    }


def cache_pvc_manifest(*, name: str, namespace: str, size: str, storage_class: str = "",
                       access_mode: str = "ReadWriteMany", labels: dict | None = None) -> dict:
    """The NIM model cache: a PVC created outside the InferenceService, because KServe mounts a
    ``pvc://`` storage URI read-only and the NIM writes its downloaded engine there."""
    spec: dict = {"accessModes": [access_mode], "resources": {"requests": {"storage": size}}}
    if storage_class:
        spec["storageClassName"] = storage_class
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": name, "namespace": namespace, "labels": dict(labels or {})}, "spec": spec}


def quantity_is_zero(value: str) -> bool:
    """Whether a quantity that matches ``_QUANTITY`` is zero (a claim of size 0 is refused)."""
    return float(re.match(r"^[0-9]+(\.[0-9]+)?", value).group(0)) == 0


def storage_uri(cache_pvc: str) -> str:
    return f"pvc://{cache_pvc}/"


def entry_from_runtime(obj: dict) -> NimEntry | None:
    """A catalog entry read back from a (Cluster)ServingRuntime whose format is ``nvidia-nim-*``
    (an admin imports the NIMs already on a cluster), or None when it is not a NIM runtime."""
    spec = obj.get("spec") or {}
    fmt = next((f for f in spec.get("supportedModelFormats") or [] if str(f.get("name", "")).startswith(FORMAT_PREFIX)),
               None)
    container = next((c for c in spec.get("containers") or [] if c.get("name") == "kserve-container"), None)
    if fmt is None or container is None:
        return None
    image = str(container.get("image") or "")
    tag = image.rsplit(":", 1)[-1] if ":" in image.rsplit("/", 1)[-1] else ""
    version = str(fmt.get("version") or tag)
    key = image.rsplit("/", 1)[-1].split(":", 1)[0] or fmt["name"][len(FORMAT_PREFIX):]
    env = {e.get("name"): e.get("value") for e in container.get("env") or []}
    mounts = {m.get("name"): m.get("mountPath") for m in container.get("volumeMounts") or []}
    volumes = {v.get("name"): v for v in spec.get("volumes") or []}
    shm_name = next((n for n, v in volumes.items() if (v.get("emptyDir") or {}).get("medium") == "Memory"), SHM_VOLUME)
    resources = container.get("resources") or {}
    limits, requests = resources.get("limits") or {}, resources.get("requests") or {}
    name = (obj.get("metadata") or {}).get("name", key)
    api = "embeddings" if "embed" in key else "ranking" if "rerank" in key else "chat"
    return entry_from_json({
        "key": key, "display_name": name, "version": version, "image": image, "model_format": fmt["name"],
        "api": api, "model_id": key,
        "cpu_request": str(requests.get("cpu") or limits.get("cpu") or "1"),
        "cpu_limit": str(limits.get("cpu") or requests.get("cpu") or "1"),
        "memory_request": str(requests.get("memory") or limits.get("memory") or "1Gi"),
        "memory_limit": str(limits.get("memory") or requests.get("memory") or "1Gi"),
        "shm_size": str((volumes.get(shm_name, {}).get("emptyDir") or {}).get("sizeLimit") or "16Gi"),
        "shm_mount_path": mounts.get(shm_name) or SHM_PATH,
        "cache_path": env.get("NIM_CACHE_PATH") or "/mnt/models/cache",
        # The runtime says nothing of GPUs: one GPU of at least 24 GiB until the admin edits it.
        "shapes": [{"gpu_count": 1, "min_gpu_memory_gib": 24}],
    })


# --- how to call it ----------------------------------------------------------------------------


def openai_request(entry: NimEntry) -> tuple[str, dict]:
    """(route, JSON body) of an example request for the NIM's API; ``model`` is the NIM's model id."""
    if entry.api == "embeddings":
        return "/v1/embeddings", {"model": entry.model_id, "input": ["What is a GPU?"], "input_type": "query"}
    if entry.api == "ranking":
        return "/v1/ranking", {"model": entry.model_id, "query": {"text": "What is a GPU?"},
                               "passages": [{"text": "A GPU is a processor for parallel work."},
                                            {"text": "Bread is baked from flour."}]}
    if entry.api == "completions":
        return "/v1/completions", {"model": entry.model_id, "prompt": "Say hello.", "max_tokens": 64}
    return "/v1/chat/completions", {"model": entry.model_id,
                                    "messages": [{"role": "user", "content": "Hello!"}], "max_tokens": 64}
