"""The release matrix (issue #16): for every KServe release in ../shared/kserve/versions, several
hundred endpoint configurations get two verdicts and they must agree both ways.

- The console's verdict: the pure path with the release's cluster reading (read once per
  release with ``read_capabilities``): ``validate_endpoint`` on a draft whose runtimes are the
  cluster's, plus the service-layer rule that an explicit runtime must be installed there; when
  accepted, the manifest is ``render(spec, reading)``.
- The cluster's verdict: the same configuration created straight in a sandbox playing that
  release with Knative's default config (``fieldValidation=Strict``), bypassing the console: the
  console's manifest when it accepts, else ``render(spec, None)`` (what a console that did not
  know the cluster would send). Then the controller settles it: Ready (with the traffic split
  asked for, for a canary), or a definite failure (API refusal, lastFailureInfo, PredictorReady
  False with a reason, Knative's refusal as an InternalError event on releases that leave the
  conditions alone, pods unschedulable).
- Agreement: console refuses <=> the cluster refuses or never makes it Ready.

The sandbox's nodes are made large enough to hold every configuration at once (capacity is not
what the matrix is about), and a node offering ``amd.com/gpu`` (untainted) is added so the
non-NVIDIA profile can be placed; the NVIDIA nodes keep their ``NoSchedule`` taint.

``RELEASE_MATRIX_OUT=<file>`` appends each release's counts (JSON lines) to that file; the table
in docs/clusters.md ("The release matrix") is made from it.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import json
import os
import random
import time

import pytest
from django.core.exceptions import ValidationError

from endpoints import catalog, reconcile
from endpoints.cluster import ClusterClient
from endpoints.models import EndpointStatus
from endpoints.sandbox.errors import ApiError
from endpoints.services.capabilities import cluster_discover, read_capabilities
from endpoints.services.endpoints import endpoint_create, endpoint_update
from endpoints.services.observation import endpoint_sync_status
from endpoints.validation import validate_endpoint
from tests.endpoints.endpoint_factories import deploy_setup
from tests.endpoints.test_render import HARDWARE, STORAGE_URIS, _combination_to_draft_and_spec
from tests.fixtures.kube import KSERVE_RELEASES, release_sandbox

pytestmark = [pytest.mark.shared, pytest.mark.slow]

NS = "team-a"
KNOWN = {spec.name: spec for spec in catalog.BUILT_IN_RUNTIMES}

# Every model format the console's catalog knows → (format version, task). The versions are the
# ones the 0.20 runtimes declare, so older releases' runtimes (xgboost 1, lightgbm 3, no vLLM or
# AutoGluon) show up as refusals.
MATRIX_FORMATS = {
    "sklearn": ("1", "classification"),
    "xgboost": ("2", "regression"),
    "lightgbm": ("4", "regression"),
    "mlflow": ("2", "regression"),
    "tensorflow": ("2", "classification"),
    "pytorch": ("1", "classification"),
    "onnx": ("1", "classification"),
    "tensorrt": ("8", "classification"),
    "triton": ("2", "classification"),
    "pmml": ("4", "classification"),
    "paddle": ("2", "classification"),
    "autogluon": ("1", "regression"),
    "huggingface": ("", "classification"),
    "vLLM": ("", "llm-completion"),
}
# The protocols where they are meaningful: OpenAI only for the LLM runtimes, vLLM only OpenAI.
PROTOCOLS = {"huggingface": ("v1", "v2", "openai"), "vLLM": ("openai",)}
MODES = ("Knative", "Standard")
HARDWARE_VALUES = (None, None, "gpu", "gpu-bare", "amd")
TIMEOUTS = (None, 300, 900)
STORAGE = tuple(STORAGE_URIS)
REPLICATES = 3  # each format × protocol × mode × runtime choice appears this many times
KNATIVE_FLAGS = ("kubernetes.podspec-nodeselector", "kubernetes.podspec-tolerations", "kubernetes.podspec-affinity")
SETTLE_SECONDS = 60.0


def matrix() -> list[dict]:
    """The configurations (the same for every release): format × protocol × mode × explicit/auto
    runtime, each ``REPLICATES`` times with the other axes drawn from a seeded generator."""
    rng = random.Random(16)
    base = [(fmt, protocol, mode, explicit)
            for fmt in MATRIX_FORMATS for protocol in PROTOCOLS.get(fmt, ("v1", "v2"))
            for mode in MODES for explicit in (False, True)]
    combos = []
    for _replicate, (fmt, protocol, mode, explicit) in itertools.product(range(REPLICATES), base):
        version, task = MATRIX_FORMATS[fmt]
        combos.append({
            "name": f"m{len(combos):03d}",
            "format": fmt, "format_version": version, "task": task,
            "protocol": protocol, "mode": mode, "explicit_runtime": explicit,
            "hardware": rng.choice(HARDWARE_VALUES),
            "logging": rng.random() < 0.5,
            "timeout": rng.choice(TIMEOUTS),
            # A canary is a Knative-mode choice (Standard mode refuses it without any cluster).
            "canary": mode == "Knative" and rng.random() < 0.2,
            "storage": rng.choice(STORAGE),
            "small": True,
        })
    return combos


MATRIX = matrix()


def test_the_matrix_has_every_value_of_every_axis():
    assert len(MATRIX) >= 300
    for axis, values in (("format", MATRIX_FORMATS), ("mode", MODES), ("hardware", HARDWARE_VALUES),
                         ("timeout", TIMEOUTS), ("storage", STORAGE), ("logging", (False, True)),
                         ("canary", (False, True)), ("explicit_runtime", (False, True)),
                         ("protocol", ("v1", "v2", "openai"))):
        assert {c[axis] for c in MATRIX} == set(values), axis
    assert set(HARDWARE) == {v for v in HARDWARE_VALUES if v}


# --- the console's verdict --------------------------------------------------------------------

# Refusal kinds, by the first words that identify the console's message (checked in order).
REFUSAL_KINDS = (
    ("old spelling", "mode spelling"),
    ("does not know spec.", "undeclared field"),
    ("config-features", "knative placement"),
    ("request timeout", "timeout"),
    ("default timeout for LLM", "timeout"),
    ("modelcar", "modelcar"),
    ("is not installed on cluster", "runtime not installed"),
    ("No runtime would be auto-selected", "no runtime"),
    ("rolled-out revision", "canary at create"),
    ("would stay Pending", "no node can take the pods"),
    ("does not support", "runtime cannot serve"),
    ("does not serve", "runtime cannot serve"),
    ("supports protocols", "runtime cannot serve"),
)


def refusal_kind(message: str) -> str:
    return next((kind for needle, kind in REFUSAL_KINDS if needle in message), "other")


def console_verdict(combo: dict, reading, available) -> tuple[list[str], dict]:
    """(the console's refusals, empty when it accepts; the manifest to apply to the cluster)."""
    draft, spec = _combination_to_draft_and_spec(combo, available_runtimes=available, capabilities=reading,
                                                 known_runtimes=catalog.BUILT_IN_RUNTIMES)
    refusals: list[str] = []
    try:
        validate_endpoint(draft)
    except ValidationError as exc:
        refusals = [f"{field}: {message}" for field, messages in exc.message_dict.items() for message in messages]
    # endpoints.services.endpoints.runtime_not_installed, on the reading (the service layer's rule).
    installed = {r["name"] for r in reading.runtimes_for(NS)}
    if draft.runtime is not None and draft.runtime.name not in installed:
        refusals.append(f"runtime: Runtime {draft.runtime.name} is not installed on cluster matrix")
    spec = {**spec, "name": combo["name"], "namespace": NS}
    manifest = reconcile.render(spec, None if refusals else reading)
    return refusals, manifest


# --- the cluster's verdict --------------------------------------------------------------------


def _enlarge(sandbox) -> None:
    """Room for every configuration at once, and an untainted node offering amd.com/gpu."""
    store = sandbox.store
    for node in store.list("nodes"):
        status = node.get("status") or {}
        big = {k: ("100000" if k in ("cpu", "pods") or "gpu" in k else "100000Gi" if k == "memory" else v)
               for k, v in (status.get("allocatable") or {}).items()}
        store.update_status("nodes", None, node["metadata"]["name"],
                            {**status, "allocatable": big, "capacity": big}, manager="kubelet")
    node = store.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "mi300-node"}})
    store.update_status("nodes", None, node["metadata"]["name"], {
        "allocatable": {"cpu": "100000", "memory": "100000Gi", "pods": "100000", "amd.com/gpu": "100000"},
        "capacity": {"cpu": "100000", "memory": "100000Gi", "pods": "100000", "amd.com/gpu": "100000"},
        "conditions": [{"type": "Ready", "status": "True"}]}, manager="kubelet")
    with contextlib.suppress(ApiError):
        store.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})


def _settled(obj: dict, internal_errors: dict[str, str], canary_percent: int | None) -> tuple[bool, str] | None:
    """(Ready?, what the cluster said) once the controller has settled, else None."""
    status = obj.get("status") or {}
    conditions = {c["type"]: c for c in status.get("conditions") or []}
    if conditions.get("Ready", {}).get("status") == "True":
        if canary_percent is not None:
            traffic = ((status.get("components") or {}).get("predictor") or {}).get("traffic") or []
            # Per revision: once the only revision is rolled out KServe "splits" it against itself
            # (10 % latest + 90 % prev, one revision), which is still all the traffic to it.
            by_revision = collections.Counter()
            for t in traffic:
                by_revision[t.get("revisionName", "")] += t.get("percent", 0)
            newest = next((t.get("revisionName", "") for t in traffic if t.get("latestRevision")), "")
            latest = by_revision[newest] if newest else 0
            if latest != canary_percent:
                return False, (f"Ready, but the canary takes {latest}% of the traffic, not the {canary_percent}% "
                               "asked for (no rolled-out revision to split against)")
        return True, "Ready"
    failure = (status.get("modelStatus") or {}).get("lastFailureInfo")
    if failure:
        return False, f"lastFailureInfo {failure.get('reason')}: {failure.get('message')}"
    predictor = conditions.get("PredictorReady") or {}
    if predictor.get("status") == "False" and predictor.get("reason"):
        return False, f"PredictorReady False {predictor['reason']}: {predictor.get('message', '')}"
    name = obj["metadata"]["name"]
    if name in internal_errors:
        return False, f"InternalError event: {internal_errors[name]}"
    return None


def cluster_verdicts(sandbox, manifests: dict[str, dict], canaries: dict[str, int | None]) -> dict[str, tuple]:
    """Create every manifest straight in the sandbox (fieldValidation=Strict) and wait for each
    to settle: name → (Ready?, what the cluster said)."""
    verdicts: dict[str, tuple[bool, str]] = {}
    for name, manifest in manifests.items():
        try:
            sandbox.store.create(manifest)
        except ApiError as exc:
            verdicts[name] = (False, f"API refusal {exc.code}: {exc}")
    deadline = time.monotonic() + SETTLE_SECONDS
    pending = [name for name in manifests if name not in verdicts]
    while pending and time.monotonic() < deadline:
        events = {e["involvedObject"]["name"]: e.get("message", "")
                  for e in sandbox.store.list("events", NS) if e.get("reason") == "InternalError"}
        still = []
        for name in pending:
            obj = sandbox.isvc(NS, name)
            verdict = _settled(obj, events, canaries[name]) if obj else (False, "vanished")
            if verdict is None:
                still.append(name)
            else:
                verdicts[name] = verdict
        pending = still
        if pending:
            time.sleep(0.05)
    for name in pending:
        verdicts[name] = (False, "never settled (no Ready, no failure) within the wait")
    return verdicts


# --- agreement --------------------------------------------------------------------------------

# Exact cases where the console and the cluster are known to disagree (documented, not hidden):
# (why, predicate on (combo, console refusals, cluster verdict)).
KNOWN_DIFFERENCES: tuple = (
    # None left. (Until the console read node taints, an NVIDIA profile without tolerations passed
    # validation and its pods stayed Pending on the tainted GPU nodes; it is now refused.)
)


def _describe(combo: dict) -> str:
    keys = ("format", "protocol", "mode", "explicit_runtime", "hardware", "logging", "timeout", "canary", "storage")
    return " ".join(f"{k}={combo[k]}" for k in keys)


def run_matrix(release: str, combos: list[dict], *, knative_flags: bool = False) -> dict:
    started = time.monotonic()
    with release_sandbox(release) as sandbox:
        _enlarge(sandbox)
        # The claim the pvc:// storage combinations serve from, as a cluster admin provides it: pods
        # wait for a missing claim, as on a cluster.
        sandbox.store.create({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                              "metadata": {"name": "models", "namespace": NS},
                              "spec": {"accessModes": ["ReadOnlyMany"], "resources": {"requests": {"storage": "1Gi"}}}})
        if knative_flags:
            sandbox.store.patch("configmaps", "knative-serving", "config-features",
                                {"data": dict.fromkeys(KNATIVE_FLAGS, "enabled")})
        with ClusterClient.for_url(sandbox.url, timeout=10.0) as client:
            reading = read_capabilities(client, namespaces=[NS])
        assert reading.usable and reading.release_text == release
        available = reading.runtime_specs(NS, KNOWN)
        console, manifests, canaries = {}, {}, {}
        for combo in combos:
            refusals, manifest = console_verdict(combo, reading, available)
            console[combo["name"]] = refusals
            manifests[combo["name"]] = manifest
            canaries[combo["name"]] = 10 if combo["canary"] else None
        cluster = cluster_verdicts(sandbox, manifests, canaries)
    disagreements, known = [], []
    for combo in combos:
        refusals, (ready, said) = console[combo["name"]], cluster[combo["name"]]
        if bool(refusals) != (not ready):
            why = next((why for why, applies in KNOWN_DIFFERENCES if applies(combo, refusals, (ready, said))), None)
            line = (f"{combo['name']} {_describe(combo)}\n    console: {'; '.join(refusals) or 'accepts'}"
                    f"\n    cluster: {said}")
            (known if why else disagreements).append(line + (f"\n    known: {why}" if why else ""))
    refused = [name for name, refusals in console.items() if refusals]
    by_kind = collections.Counter(kind for name in refused
                                  for kind in {refusal_kind(message) for message in console[name]})
    result = {
        "release": release, "knative_flags": knative_flags, "configurations": len(combos),
        "deployed": sum(1 for ready, _ in cluster.values() if ready),
        "console_accepts": len(combos) - len(refused), "console_refuses": len(refused),
        "by_reason": dict(sorted(by_kind.items())), "disagreements": len(disagreements), "known": len(known),
        "seconds": round(time.monotonic() - started, 1),
        "console": console, "cluster": cluster,
    }
    out = os.environ.get("RELEASE_MATRIX_OUT")
    if out:
        with open(out, "a") as fh:
            fh.write(json.dumps({k: v for k, v in result.items() if k not in ("console", "cluster")}) + "\n")
    print(f"\n{release} flags={knative_flags}: {result['configurations']} configurations, "
          f"{result['deployed']} deployed, {result['console_refuses']} refused {result['by_reason']}, "
          f"{len(known)} known differences, {result['seconds']} s")
    assert not disagreements, (f"KServe {release}{' with Knative placement flags' if knative_flags else ''}: "
                               f"{len(disagreements)} disagreements:\n" + "\n".join(disagreements))
    return result


@pytest.mark.parametrize("release", KSERVE_RELEASES)
def test_the_console_and_the_cluster_agree_on_every_configuration(release):
    result = run_matrix(release, MATRIX)
    assert result["configurations"] >= 300
    # Everything the console accepts deploys, except the listed known differences.
    assert result["deployed"] == result["console_accepts"] - result["known"]


@pytest.mark.parametrize("release", KSERVE_RELEASES)
def test_with_knative_placement_flags_gpu_profiles_deploy_in_knative_mode(release):
    """The same matrix with Knative's placement flags enabled."""
    combos = MATRIX
    result = run_matrix(release, combos, knative_flags=True)
    assert result["configurations"] >= 300
    placed = [c for c in combos if c["mode"] == "Knative" and c["hardware"] == "gpu"]
    assert placed
    for combo in placed:
        refusals = result["console"][combo["name"]]
        assert not any(refusal_kind(m) == "knative placement" for m in refusals), (combo, refusals)
    # Where nothing else stands in the way, the GPU profile in Knative mode is Ready.
    deployed = [c for c in placed if not result["console"][c["name"]]]
    assert deployed and all(result["cluster"][c["name"]][0] for c in deployed)


# --- a canary started later, through the console ------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("release", KSERVE_RELEASES)
def test_a_canary_started_after_the_primary_rolled_out_splits_on_every_release(
        release, alice, django_capture_on_commit_callbacks):
    """The other half of "canary at create": once the primary is rolled out, the console's canary
    is a real split on the cluster, and the console shows the split the cluster does."""
    with release_sandbox(release) as sandbox:
        setup = deploy_setup(actor=alice, api_url=sandbox.url, project_name="fraud")
        cluster_discover(cluster=setup.cluster)
        with django_capture_on_commit_callbacks(execute=True):
            endpoint = endpoint_create(actor=alice, project=setup.project, name="scorer", model_version=setup.v1,
                                       deployment_mode="Knative")
        sandbox.wait_ready("fraud", "scorer")
        with django_capture_on_commit_callbacks(execute=True):
            endpoint_update(actor=alice, endpoint=endpoint, canary_version=setup.v2, canary_traffic_percent=10)

        def split():
            traffic = (((sandbox.isvc("fraud", "scorer") or {}).get("status") or {}).get("components") or {}) \
                .get("predictor", {}).get("traffic") or []
            return len({t["revisionName"] for t in traffic}) == 2 and traffic
        traffic = sandbox.wait_for(split, message="the canary split")
        assert sorted(t["percent"] for t in traffic) == [10, 90]
        endpoint_sync_status(endpoint_id=endpoint.pk)
        shown = EndpointStatus.objects.get(endpoint=endpoint).traffic
        assert sorted(row["percent"] for row in shown) == [10, 90], shown
