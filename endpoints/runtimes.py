"""Which serving runtime KServe will use for a model, following KServe's own rules.

KServe picks a runtime only when ``predictor.model.runtime`` is unset, and records its choice
in status, never in the spec (docs/kserve.md §3; ``ModelSpec.GetSupportingRuntimes`` and
``sortSupportedRuntimeByPriority`` in ``pkg/apis/serving/v1beta1/predictor_model.go``). The
console reproduces those rules so it can tell a user *before* the apply which runtime will
serve their model, or that none will.

It also maps the console's protocol choice (v1, v2, openai) to KServe's ``protocolVersion``.
"openai" is not a KServe protocol: the OpenAI-compatible API is a capability of a runtime
(KServe's Hugging Face server, upstream vLLM), whatever protocolVersion says.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from endpoints.catalog import RuntimeSpec

# KServe's ordering of protocols (constants.GetProtocolVersionInt): a runtime's "lowest
# supported protocol" is the smallest rank among those it lists; a runtime listing none ranks
# after all of them (constants.Unknown).
_PROTOCOL_RANK = {"v1": 1, "v2": 2, "grpc-v1": 3, "grpc-v2": 4}
_UNKNOWN_RANK = 5

KSERVE_PROTOCOLS = tuple(_PROTOCOL_RANK)
CONSOLE_PROTOCOLS = ("v1", "v2", "openai")

# Formats for which KServe's mutating webhook writes ``protocolVersion: v2`` when it is unset
# (inference_service_defaults.go). Writing that same value ourselves keeps re-applies clean.
WEBHOOK_V2_FORMATS = frozenset({"triton", "vLLM"})


def _model_protocol(protocol: str | None) -> str:
    """KServe's ``ModelSpec.GetProtocol``: an unset protocol counts as v1 for matching."""
    return protocol or "v1"


def protocol_supported(runtime: RuntimeSpec, protocol: str | None) -> bool:
    """``IsProtocolVersionSupported``: a runtime listing no protocols accepts any."""
    return not runtime.protocols or _model_protocol(protocol) in runtime.protocols


def format_supported(runtime: RuntimeSpec, fmt_name: str, fmt_version: str | None, *, auto_select: bool) -> bool:
    """KServe's ``mt:<name>[:<version>]`` label match. For auto-selection only entries with
    ``autoSelect: true`` count; an explicitly named runtime may use any entry. A model format
    version, when given, must equal an entry's version as a string ("1" ≠ "1.3")."""
    for fmt in runtime.formats:
        if auto_select and not fmt.auto_select:
            continue
        if fmt.name != fmt_name:
            continue
        if not fmt_version or fmt.version == fmt_version:
            return True
    return False


def _lowest_protocol_rank(runtime: RuntimeSpec) -> int:
    if not runtime.protocols:
        return _UNKNOWN_RANK
    return min(_PROTOCOL_RANK.get(p, _UNKNOWN_RANK) for p in runtime.protocols)


def _sort_key(runtime: RuntimeSpec, fmt_name: str) -> tuple:
    priority = runtime.priority_for(fmt_name)
    created = runtime.created_at.timestamp() if isinstance(runtime.created_at, datetime) else float("-inf")
    return (
        0 if runtime.namespaced else 1,  # namespace runtimes are always tried first
        -(priority or 0),  # higher priority first
        0 if priority is not None else 1,  # any priority beats none
        _lowest_protocol_rank(runtime),  # lowest supported protocol first
        -created,  # newest first (unknown creation time sorts as oldest)
        runtime.name,
    )


def supporting_runtimes(
    fmt_name: str,
    fmt_version: str | None,
    protocol: str | None,
    runtimes: Iterable[RuntimeSpec],
    *,
    multinode: bool = False,
) -> list[RuntimeSpec]:
    """Every runtime KServe would consider for auto-selection, best first.

    ``protocol`` is the KServe protocolVersion the manifest carries (None = unset, counts as
    v1). ``multinode`` says whether the InferenceService has a ``workerSpec`` (the console
    never sets one, hence the default).
    """
    candidates = [
        runtime
        for runtime in runtimes
        if not runtime.disabled
        and not runtime.multi_model
        and runtime.multinode == multinode
        and protocol_supported(runtime, protocol)
        and format_supported(runtime, fmt_name, fmt_version, auto_select=True)
    ]
    # KServe sorts each group with sort.Slice (not stable); the full key above makes the
    # console's order deterministic and equal to KServe's whenever KServe's is well defined.
    return sorted(candidates, key=lambda runtime: _sort_key(runtime, fmt_name))


def select_runtime(
    fmt_name: str,
    fmt_version: str | None,
    protocol: str | None,
    runtimes: Iterable[RuntimeSpec],
    *,
    multinode: bool = False,
) -> RuntimeSpec | None:
    """The runtime KServe auto-selects, or None (KServe then reports ``NoSupportingRuntime``)."""
    found = supporting_runtimes(fmt_name, fmt_version, protocol, runtimes, multinode=multinode)
    return found[0] if found else None


def runtime_supports(
    runtime: RuntimeSpec,
    fmt_name: str,
    fmt_version: str | None,
    protocol: str | None,
    *,
    multinode: bool = False,
) -> tuple[bool, str]:
    """Whether an explicitly named runtime can serve the model, and if not why, in the words
    of KServe's own failure reasons. ``autoSelect`` is not required for an explicit choice."""
    if runtime.disabled:
        return False, f"Runtime {runtime.name} is disabled (KServe would report RuntimeDisabled)."
    if runtime.multi_model:
        return False, f"Runtime {runtime.name} is a multi-model (ModelMesh) runtime; endpoints need a single-model one."
    if runtime.multinode and not multinode:
        return False, (
            f"Runtime {runtime.name} is a multi-node runtime (it has a workerSpec); it only serves "
            "InferenceServices with a workerSpec, which the console does not manage."
        )
    if not runtime.multinode and multinode:
        return False, f"Runtime {runtime.name} is not a multi-node runtime."
    if not format_supported(runtime, fmt_name, fmt_version, auto_select=False):
        declared = ", ".join(_describe_format(f.name, f.version) for f in runtime.formats) or "none"
        return False, (
            f"Runtime {runtime.name} does not support format {_describe_format(fmt_name, fmt_version)} "
            f"(it supports {declared}; KServe compares versions as exact strings, so \"1\" does not match \"1.3\")."
        )
    if not protocol_supported(runtime, protocol):
        shown = protocol or "v1 (unset protocols count as v1)"
        return False, (
            f"Runtime {runtime.name} does not support protocol {shown}; it supports {', '.join(runtime.protocols)}."
        )
    return True, ""


def _describe_format(name: str, version: str | None) -> str:
    return f"{name} version {version}" if version else name


def kserve_protocol(console_protocol: str, runtime: RuntimeSpec | None, *, model_format: str = "") -> str | None:
    """The ``predictor.model.protocolVersion`` to write for the console's protocol choice
    (None = omit the field).

    - ``v1`` / ``v2``: written as is, always explicitly, so the webhook's defaulting (v2 for
      triton and vLLM formats, the runtime's lowest protocol otherwise) never applies.
    - ``openai``: not a KServe protocol. The OpenAI routes exist because the runtime serves
      them, whatever protocolVersion says. We write what keeps the object stable:
        * a vLLM- or triton-format model (given as ``model_format``, or implied by a runtime
          whose every format is one of those, like kserve-vllmserver) → ``v2``, exactly what
          the webhook would write if the field were unset, so server-side re-applies never
          fight the webhook (docs/kserve.md §10);
        * otherwise the runtime's first declared HTTP protocol (KServe's HF server declares
          ``v2, v1`` → ``v2``, which its encoder tasks also serve);
        * a runtime declaring no protocols and no such format → None (the webhook adds nothing).
      With ``runtime=None`` (auto-selection, runtime not resolved yet) the answer is None,
      which KServe matches as v1; call again with the selected runtime for the value to write
      (``resolve_auto_runtime`` does both).

    Whether the runtime can serve OpenAI at all is ``endpoints.validation``'s concern.
    """
    if console_protocol in ("v1", "v2"):
        return console_protocol
    if console_protocol != "openai":
        raise ValueError(f"Unknown console protocol {console_protocol!r}; expected one of {', '.join(CONSOLE_PROTOCOLS)}.")
    if model_format in WEBHOOK_V2_FORMATS:
        return "v2"
    if runtime is None:
        return None
    if runtime.formats and all(fmt.name in WEBHOOK_V2_FORMATS for fmt in runtime.formats):
        return "v2"
    for protocol in runtime.protocols:
        if protocol in ("v1", "v2"):
            return protocol
    return None


def resolve_auto_runtime(
    fmt_name: str, fmt_version: str | None, console_protocol: str, runtimes: Iterable[RuntimeSpec]
) -> tuple[RuntimeSpec | None, str | None]:
    """For an endpoint without an explicit runtime: (the runtime KServe will auto-select,
    the protocolVersion to write). For ``openai`` the protocol depends on the runtime and the
    selection on the protocol, so iterate until both agree; (None, protocol) if they never do
    or nothing matches."""
    pool = list(runtimes)
    protocol = kserve_protocol(console_protocol, None, model_format=fmt_name)
    for _ in range(3):
        runtime = select_runtime(fmt_name, fmt_version, protocol, pool)
        if runtime is None:
            return None, protocol
        wanted = kserve_protocol(console_protocol, runtime, model_format=fmt_name)
        if wanted == protocol:
            return runtime, protocol
        protocol = wanted
    return None, protocol
