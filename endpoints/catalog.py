"""The runtime catalog shipped with the console: KServe's default ClusterServingRuntimes as
plain Python data.

These are the runtimes a default KServe install (``config/runtimes/kustomization.yaml``)
creates cluster-wide. The console needs their supported model formats, protocols and
capabilities to explain which runtime KServe will pick (``endpoints.runtimes``) and to refuse
combinations KServe would reject only after the apply. ``kserve-openvino`` is deliberately
absent: its file ships in KServe's repository but the default kustomization does not install
it.

``tests/endpoints/test_catalog.py`` checks this data against KServe's own runtime YAML, so the
values below must stay exactly as KServe declares them (format versions are strings and are
compared as exact strings by KServe; a missing ``priority`` is ``None``; a missing
``autoSelect`` is ``False``, as KServe treats a nil pointer).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class SupportedFormat:
    """One ``supportedModelFormats[]`` entry of a (Cluster)ServingRuntime."""

    name: str
    version: str = ""  # "" = the runtime declares no version for this format
    auto_select: bool = False
    priority: int | None = None

    def as_kserve(self) -> dict:
        """The entry spelled as in KServe's YAML (and in ``ServingRuntime.supported_formats``)."""
        data: dict = {"name": self.name}
        if self.version:
            data["version"] = self.version
        data["autoSelect"] = self.auto_select
        if self.priority is not None:
            data["priority"] = self.priority
        return data


@dataclass(frozen=True)
class ContainerResources:
    """The cpu/memory requests and limits a runtime's ``kserve-container`` declares. The
    model's own resources are merged over them key by key, so they matter when a user sets
    only a request or only a limit."""

    cpu_request: str = ""
    cpu_limit: str = ""
    memory_request: str = ""
    memory_limit: str = ""


@dataclass(frozen=True)
class RuntimeSpec:
    """What the console knows about one serving runtime, built-in or custom.

    The last four fields describe where and how the runtime exists on a cluster rather than
    what it is; they drive KServe's auto-selection order (``endpoints.runtimes``).
    """

    name: str
    display_name: str
    formats: tuple[SupportedFormat, ...]
    # Ordered as declared. Empty = the runtime accepts any protocol (KServe's rule).
    protocols: tuple[str, ...] = ()
    # True when the runtime has a ``workerSpec``: KServe then picks it only for an
    # InferenceService that has a ``workerSpec`` too.
    multinode: bool = False
    openai_compatible: bool = False
    # Path prefix of the OpenAI-compatible routes ("/openai" for KServe's HF server,
    # "" for upstream vLLM which serves /v1/... directly).
    openai_route_prefix: str = ""
    description: str = ""
    container_defaults: ContainerResources | None = None
    namespaced: bool = False  # a namespace ServingRuntime (tried before cluster ones)
    disabled: bool = False
    multi_model: bool = False  # ModelMesh runtimes; never used for single-model serving
    created_at: datetime | None = field(default=None, compare=False)

    def priority_for(self, format_name: str) -> int | None:
        """The priority KServe sorts by: that of the *first* entry with the format's name,
        whatever its version (``ServingRuntimeSpec.GetPriority``)."""
        for fmt in self.formats:
            if fmt.name == format_name:
                return fmt.priority
        return None

    @property
    def openai_only(self) -> bool:
        """Serves nothing but the OpenAI-compatible API (upstream vLLM): it declares no
        KServe protocol, so KServe matches it with any, but V1/V2 requests would 404."""
        return self.openai_compatible and not self.protocols


_DEFAULT_RESOURCES = ContainerResources(cpu_request="1", cpu_limit="1", memory_request="2Gi", memory_limit="2Gi")


def _fmt(name: str, version: str, auto_select: bool = True, priority: int | None = None) -> SupportedFormat:
    return SupportedFormat(name=name, version=version, auto_select=auto_select, priority=priority)


# Facts from KServe's config/runtimes/*.yaml at the commit documented in docs/kserve.md.
BUILT_IN_RUNTIMES: tuple[RuntimeSpec, ...] = (
    RuntimeSpec(
        name="kserve-sklearnserver",
        display_name="scikit-learn (KServe)",
        formats=(_fmt("sklearn", "1", priority=1),),
        protocols=("v1", "v2"),
        description="KServe's Python server for scikit-learn pickles/joblib files (V1 and V2).",
        container_defaults=_DEFAULT_RESOURCES,
    ),
    RuntimeSpec(
        name="kserve-xgbserver",
        display_name="XGBoost (KServe)",
        formats=(_fmt("xgboost", "2", priority=1),),
        protocols=("v1", "v2"),
        description="KServe's Python server for XGBoost boosters (V1 and V2).",
        container_defaults=_DEFAULT_RESOURCES,
    ),
    RuntimeSpec(
        name="kserve-lgbserver",
        display_name="LightGBM (KServe)",
        formats=(_fmt("lightgbm", "4", priority=1),),
        protocols=("v1", "v2"),
        description="KServe's Python server for LightGBM boosters (V1 and V2).",
        container_defaults=_DEFAULT_RESOURCES,
    ),
    RuntimeSpec(
        name="kserve-mlserver",
        display_name="Seldon MLServer",
        formats=(
            _fmt("sklearn", "0", priority=2),
            _fmt("sklearn", "1", priority=2),
            _fmt("xgboost", "1", priority=2),
            _fmt("xgboost", "2", priority=2),
            _fmt("lightgbm", "3", priority=2),
            _fmt("lightgbm", "4", priority=2),
            _fmt("mlflow", "1", priority=1),
            _fmt("mlflow", "2", priority=1),
        ),
        protocols=("v2",),
        description="Seldon MLServer for sklearn, XGBoost, LightGBM and MLflow models; Open Inference Protocol only.",
        container_defaults=_DEFAULT_RESOURCES,
    ),
    RuntimeSpec(
        name="kserve-predictiveserver",
        display_name="Predictive server (KServe)",
        formats=(
            _fmt("sklearn", "1", auto_select=False, priority=3),
            _fmt("xgboost", "2", auto_select=False, priority=3),
            _fmt("lightgbm", "4", auto_select=False, priority=3),
        ),
        protocols=("v1", "v2"),
        description="One KServe server for sklearn, XGBoost and LightGBM; never auto-selected, choose it explicitly.",
        container_defaults=_DEFAULT_RESOURCES,
    ),
    RuntimeSpec(
        name="kserve-tensorflow-serving",
        display_name="TensorFlow Serving",
        formats=(_fmt("tensorflow", "1", priority=2), _fmt("tensorflow", "2", priority=2)),
        protocols=("v1", "grpc-v1"),
        description="Google's TensorFlow Serving for SavedModels (V1 REST and gRPC).",
        container_defaults=_DEFAULT_RESOURCES,
    ),
    RuntimeSpec(
        name="kserve-torchserve",
        display_name="TorchServe",
        formats=(_fmt("pytorch", "1", priority=2),),
        protocols=("v1", "v2", "grpc-v2"),
        description="PyTorch's TorchServe for model archives (.mar) from a model store.",
        container_defaults=_DEFAULT_RESOURCES,
    ),
    RuntimeSpec(
        name="kserve-tritonserver",
        display_name="NVIDIA Triton",
        formats=(
            _fmt("tensorrt", "8", priority=1),
            _fmt("tensorflow", "1", priority=1),
            _fmt("tensorflow", "2", priority=1),
            _fmt("onnx", "1", priority=1),
            _fmt("pytorch", "1", auto_select=False),
            _fmt("triton", "2", priority=1),
        ),
        protocols=("v2", "grpc-v2"),
        description="NVIDIA Triton Inference Server for TensorRT, ONNX, TensorFlow and Triton model repositories (V2).",
        container_defaults=_DEFAULT_RESOURCES,
    ),
    RuntimeSpec(
        name="kserve-pmmlserver",
        display_name="PMML (KServe)",
        formats=(_fmt("pmml", "3", priority=1), _fmt("pmml", "4", priority=1)),
        protocols=("v1", "v2"),
        description="KServe's Python server for PMML documents (V1 and V2).",
        container_defaults=_DEFAULT_RESOURCES,
    ),
    RuntimeSpec(
        name="kserve-paddleserver",
        display_name="PaddlePaddle (KServe)",
        formats=(_fmt("paddle", "2", priority=1),),
        protocols=("v1", "v2"),
        description="KServe's Python server for PaddlePaddle inference models (V1 and V2).",
        container_defaults=_DEFAULT_RESOURCES,
    ),
    RuntimeSpec(
        name="kserve-autogluonserver",
        display_name="AutoGluon (KServe)",
        formats=(_fmt("autogluon", "1", priority=1),),
        protocols=("v1", "v2"),
        description="KServe's Python server for AutoGluon tabular predictors (V1 and V2).",
        container_defaults=_DEFAULT_RESOURCES,
    ),
    RuntimeSpec(
        name="kserve-huggingfaceserver",
        display_name="Hugging Face (KServe)",
        formats=(_fmt("huggingface", "1", priority=1),),
        protocols=("v2", "v1"),
        openai_compatible=True,
        openai_route_prefix="/openai",
        description="KServe's Hugging Face server: vLLM backend for LLMs (OpenAI API under /openai), "
        "transformers for encoder tasks (V1/V2).",
        container_defaults=_DEFAULT_RESOURCES,
    ),
    RuntimeSpec(
        name="kserve-huggingfaceserver-multinode",
        display_name="Hugging Face multi-node (KServe)",
        formats=(_fmt("huggingface", "1", priority=2),),
        protocols=("v2", "v1"),
        multinode=True,
        openai_compatible=True,
        openai_route_prefix="/openai",
        description="The Hugging Face server spread over several nodes with Ray; needs a workerSpec.",
        container_defaults=ContainerResources(cpu_request="2", cpu_limit="4", memory_request="6Gi", memory_limit="12Gi"),
    ),
    RuntimeSpec(
        name="kserve-vllmserver",
        display_name="vLLM",
        formats=(_fmt("vLLM", "1", priority=1),),
        protocols=(),
        openai_compatible=True,
        openai_route_prefix="",
        description="Upstream vLLM's OpenAI-compatible server (/v1/chat/completions, /v1/completions, ...).",
        container_defaults=_DEFAULT_RESOURCES,
    ),
)

_BY_NAME = {runtime.name: runtime for runtime in BUILT_IN_RUNTIMES}


def by_name(name: str) -> RuntimeSpec | None:
    """The built-in runtime called ``name``, or None."""
    return _BY_NAME.get(name)


def as_model_fields(runtime: RuntimeSpec) -> dict:
    """The ``endpoints.models.ServingRuntime`` fields a built-in catalog row mirrors.
    ``name``, ``built_in`` and ``disabled`` are left to the caller: disabling a built-in
    runtime is an admin's choice the catalog must not overwrite."""
    return {
        "display_name": runtime.display_name,
        "description": runtime.description,
        "supported_formats": [fmt.as_kserve() for fmt in runtime.formats],
        "protocols": list(runtime.protocols),
        "openai_compatible": runtime.openai_compatible,
        "openai_route_prefix": runtime.openai_route_prefix,
        "multi_model": runtime.multi_model,
    }


def container_defaults_for(runtime: RuntimeSpec) -> ContainerResources | None:
    """The runtime container's own requests/limits when known: from the spec itself, or from
    the catalog for a cluster runtime built from a database row of a built-in one."""
    if runtime.container_defaults is not None:
        return runtime.container_defaults
    if not runtime.namespaced:
        built_in = by_name(runtime.name)
        if built_in is not None:
            return built_in.container_defaults
    return None
