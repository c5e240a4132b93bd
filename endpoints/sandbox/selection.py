"""Which ServingRuntime the simulated KServe controller uses for an InferenceService.

Written for the sandbox from KServe's own rules (shared/docs/kserve.md §3; in kserve/kserve
``ModelSpec.GetSupportingRuntimes`` and ``RuntimeSupportsModel`` in
``pkg/apis/serving/v1beta1/predictor_model.go``, ``reconcileModel`` in
``pkg/controller/v1beta1/inferenceservice/components/predictor.go``). It works on the runtime
objects as stored, and shares no code with the console's ``endpoints.runtimes``: the sandbox is
the cluster the console is checked against, and tests cross-check the two
(tests/endpoints/test_sandbox_profile.py).

Explicit runtime (``predictor.model.runtime`` set), in KServe's order:

1. a namespace ServingRuntime of that name, else a ClusterServingRuntime; neither →
   ``RuntimeNotRecognized``;
2. ``spec.disabled`` → ``RuntimeDisabled``;
3. a protocolVersion the model sets explicitly and the runtime does not list (a runtime listing
   none accepts any) → ``NoSupportingRuntime``; an unset protocol is not checked here;
4. no ``supportedModelFormats`` entry with the model's format name (and version, compared as an
   exact string, when the model gives one) → ``NoSupportingRuntime``; ``autoSelect`` does not
   matter for an explicit choice.
   The sandbox also refuses, with ``NoSupportingRuntime``, a multi-model (ModelMesh) runtime and
   a runtime whose multi-node-ness (``workerSpec``) differs from the InferenceService's.

Auto-selection (no runtime named): candidates are the runtimes that are not disabled, not
multi-model, multi-node exactly when the InferenceService has a ``workerSpec``, list the model's
protocol (unset counts as v1) or no protocol at all, and have an ``autoSelect: true`` entry
matching the format as above. Namespace ServingRuntimes come before ClusterServingRuntimes.
Each group is ordered by the lowest protocol the runtime lists (by the profile's protocol
order), then newest ``creationTimestamp``, then name; then, keeping that order among equals, by
the priority of the runtime's first entry with the format's name (higher first, none last).
The first candidate wins; none → ``NoSupportingRuntime``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

NAMESPACED_KIND = "ServingRuntime"
CLUSTER_KIND = "ClusterServingRuntime"
UNSET_PROTOCOL_MATCHES_AS = "v1"  # KServe's ModelSpec.GetProtocol


@dataclass(frozen=True)
class ModelRequest:
    """What an InferenceService's predictor asks of a runtime."""

    format: str
    version: str | None = None  # None: not given, any version of the format will do
    protocol: str | None = None  # None: not given
    runtime: str | None = None  # predictor.model.runtime, None for auto-selection
    multinode: bool = False  # the predictor has a workerSpec

    @classmethod
    def from_predictor(cls, predictor: dict) -> ModelRequest:
        model = predictor.get("model") or {}
        fmt = model.get("modelFormat") or {}
        version = fmt.get("version")
        return cls(
            format=str(fmt.get("name") or ""),
            # KServe matches a given version, even "", as an exact string.
            version=None if version is None else str(version),
            protocol=model.get("protocolVersion") or None,
            runtime=model.get("runtime") or None,
            multinode=bool(predictor.get("workerSpec")),
        )


@dataclass(frozen=True)
class Selection:
    """The runtime chosen (``name``/``kind``) or why none was (``reason``/``message``, as the
    controller writes them into ``modelStatus.lastFailureInfo``)."""

    name: str | None = None
    kind: str | None = None
    reason: str = ""
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.name is not None


def _spec(runtime: dict) -> dict:
    return runtime.get("spec") or {}


def _name(runtime: dict) -> str:
    return (runtime.get("metadata") or {}).get("name", "")


def _formats(runtime: dict) -> list[dict]:
    return [f for f in _spec(runtime).get("supportedModelFormats") or [] if isinstance(f, dict)]


def _protocols(runtime: dict) -> list[str]:
    return list(_spec(runtime).get("protocolVersions") or [])


def is_disabled(runtime: dict) -> bool:
    return _spec(runtime).get("disabled") is True


def is_multi_model(runtime: dict) -> bool:
    return _spec(runtime).get("multiModel") is True


def is_multinode(runtime: dict) -> bool:
    return _spec(runtime).get("workerSpec") is not None


def supports_protocol(runtime: dict, protocol: str | None) -> bool:
    """A runtime that lists no protocol versions accepts any."""
    listed = _protocols(runtime)
    return not listed or not protocol or protocol in listed


def supports_format(runtime: dict, name: str, version: str | None, *, auto_select_only: bool) -> bool:
    """KServe's ``mt:<name>[:<version>]`` label match: a runtime offers ``mt:<name>`` and
    ``mt:<name>:<version>`` for each entry (only ``autoSelect: true`` ones when auto-selecting)
    and the model asks for ``mt:<name>`` or, when it gives a version, ``mt:<name>:<version>``."""
    for entry in _formats(runtime):
        if auto_select_only and entry.get("autoSelect") is not True:
            continue
        if entry.get("name") != name:
            continue
        if version is None:
            return True
        if entry.get("version") is not None and str(entry["version"]) == version:
            return True
    return False


def priority(runtime: dict, format_name: str) -> int | None:
    """The priority of the runtime's first entry with the format's name, whatever its version
    (KServe's ``GetPriority``)."""
    for entry in _formats(runtime):
        if entry.get("name") == format_name:
            value = entry.get("priority")
            return value if isinstance(value, int) else None
    return None


def _lowest_protocol_rank(runtime: dict, protocol_order: Sequence[str]) -> int:
    unknown = len(protocol_order)  # after every known protocol
    ranks = [protocol_order.index(p) if p in protocol_order else unknown for p in _protocols(runtime)]
    return min(ranks, default=unknown)


def _created(runtime: dict) -> float:
    stamp = (runtime.get("metadata") or {}).get("creationTimestamp")
    if stamp:
        try:
            return datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp()
        except ValueError:
            pass
    return float("-inf")  # unknown: oldest


def _order(group: Iterable[dict], format_name: str, protocol_order: Sequence[str]) -> list[dict]:
    # KServe first sorts each list by lowest protocol, newest first, name; then sorts the
    # candidates by priority alone. Python's sort is stable, so runtimes of equal priority
    # keep the first order (KServe's sort.Slice is not stable; this is the order it means).
    listed = sorted(group, key=lambda r: (_lowest_protocol_rank(r, protocol_order), -_created(r), _name(r)))

    def by_priority(runtime: dict) -> tuple[int, int]:
        value = priority(runtime, format_name)
        return (1, 0) if value is None else (0, -value)

    return sorted(listed, key=by_priority)


def _candidate(runtime: dict, request: ModelRequest) -> bool:
    return (not is_disabled(runtime)
            and not is_multi_model(runtime)
            and is_multinode(runtime) == request.multinode
            and supports_protocol(runtime, request.protocol or UNSET_PROTOCOL_MATCHES_AS)
            and supports_format(runtime, request.format, request.version, auto_select_only=True))


def supporting_runtimes(request: ModelRequest, namespaced: Iterable[dict], cluster: Iterable[dict],
                        protocol_order: Sequence[str]) -> list[tuple[str, dict]]:
    """Every runtime auto-selection would consider, best first, as (kind, runtime object)."""
    out = [(NAMESPACED_KIND, r) for r in _order((r for r in namespaced if _candidate(r, request)),
                                                 request.format, protocol_order)]
    out += [(CLUSTER_KIND, r) for r in _order((r for r in cluster if _candidate(r, request)),
                                              request.format, protocol_order)]
    return out


def select_runtime(request: ModelRequest, namespaced: Iterable[dict], cluster: Iterable[dict],
                   protocol_order: Sequence[str]) -> Selection:
    """The runtime the controller uses for ``request`` among the namespace's ServingRuntimes
    and the ClusterServingRuntimes, or the failure it reports."""
    namespaced, cluster = list(namespaced), list(cluster)
    if request.runtime:
        return _explicit(request, namespaced, cluster)
    found = supporting_runtimes(request, namespaced, cluster, protocol_order)
    if found:
        kind, runtime = found[0]
        return Selection(name=_name(runtime), kind=kind)
    described = request.format + (f" (version {request.version})" if request.version is not None else "")
    protocol = request.protocol or UNSET_PROTOCOL_MATCHES_AS
    return Selection(reason="NoSupportingRuntime",
                     message=f"No runtime found to support specified framework/version: {described} "
                             f"with protocol {protocol}")


def _explicit(request: ModelRequest, namespaced: list[dict], cluster: list[dict]) -> Selection:
    name = request.runtime
    kind, runtime = NAMESPACED_KIND, next((r for r in namespaced if _name(r) == name), None)
    if runtime is None:
        kind, runtime = CLUSTER_KIND, next((r for r in cluster if _name(r) == name), None)
    if runtime is None:
        return Selection(reason="RuntimeNotRecognized", message=f"Waiting for runtime to become available: {name}")
    if is_disabled(runtime):
        return Selection(reason="RuntimeDisabled", message=f"Runtime {name} is disabled")
    if request.protocol and not supports_protocol(runtime, request.protocol):
        return Selection(reason="NoSupportingRuntime",
                         message=f"Specified runtime does not support specified protocol version: {name} "
                                 f"supports {', '.join(_protocols(runtime))}, not {request.protocol}")
    if not supports_format(runtime, request.format, request.version, auto_select_only=False):
        wanted = request.format + (f" version {request.version}" if request.version is not None else "")
        offered = ", ".join(f"{f.get('name')}" + (f" version {f['version']}" if f.get("version") is not None else "")
                            for f in _formats(runtime)) or "none"
        return Selection(reason="NoSupportingRuntime",
                         message=f"Specified runtime does not support specified framework/version: {name} "
                                 f"supports {offered}, not {wanted}")
    if is_multi_model(runtime):
        return Selection(reason="NoSupportingRuntime",
                         message=f"Runtime {name} is a multi-model (ModelMesh) runtime, not a single-model one")
    if is_multinode(runtime) and not request.multinode:
        return Selection(reason="NoSupportingRuntime",
                         message=f"Runtime {name} is a multi-node runtime (it has a workerSpec); "
                                 "the InferenceService has none")
    if request.multinode and not is_multinode(runtime):
        return Selection(reason="NoSupportingRuntime",
                         message=f"Runtime {name} has no workerSpec; the InferenceService's workerSpec "
                                 "needs a multi-node runtime")
    return Selection(name=name, kind=kind)
