"""Placing the sandbox's pods on its simulated nodes, and KServe's GPU image choice.

Nodes are ordinary ``v1`` Node objects in the store (a release profile seeds its pool; kubectl
can add, label, taint or cordon them). A pod fits a node when the node is Ready and schedulable,
carries every label of the pod's ``nodeSelector``, has no ``NoSchedule``/``NoExecute`` taint the
pod does not tolerate, and still has room for the pod's requests (requests default to limits, as
the API server defaults them) after the pods already bound to it. A pod that fits nowhere stays
Pending with the scheduler's message, e.g. ``0/5 nodes are available: 2 Insufficient
nvidia.com/gpu, 3 node(s) didn't match Pod's node affinity/selector. preemption: 0/5 nodes are
available: 2 No preemption victims found for incoming pod, 3 Preemption is not helpful for
scheduling.``
"""

from __future__ import annotations

import re
from collections import Counter
from decimal import Decimal, InvalidOperation

NVIDIA_GPU = "nvidia.com/gpu"
NVIDIA_MIG_PREFIX = "nvidia.com/mig-"

_SUFFIXES = {
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
    "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": 1,
    "k": 10**3, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
}
_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|K|M|G|T|P|E)?$")


def quantity(value) -> Decimal:
    """A Kubernetes quantity (``500m``, ``2Gi``, ``1``) as a number; 0 when unreadable."""
    match = _QUANTITY.match(str(value).strip())
    if not match:
        return Decimal(0)
    try:
        return Decimal(match.group(1)) * Decimal(_SUFFIXES[match.group(2) or ""])
    except (InvalidOperation, KeyError):
        return Decimal(0)


def is_gpu_enabled(resources: dict | None) -> bool:
    """KServe's IsGPUEnabled: only NVIDIA GPUs and MIG slices in the limits count."""
    limits = (resources or {}).get("limits") or {}
    return NVIDIA_GPU in limits or any(key.startswith(NVIDIA_MIG_PREFIX) for key in limits)


def container_image(image: str, resources: dict | None, server_type: str, runtime_version: str | None) -> str:
    """The image KServe 0.20 runs for a runtime image (UpdateImageTag): ``runtimeVersion``
    replaces the tag; with an NVIDIA GPU TF Serving, TorchServe and the Hugging Face server get
    their ``-gpu`` build; without one vLLM gets its ``-cpu`` build. Digests are left alone."""
    if "@sha256:" in image:
        return image
    tag_match = re.search(r"(:([\w.\-_]*))$", image)
    if runtime_version:
        return (image[:tag_match.start()] if tag_match else image) + ":" + runtime_version
    if not tag_match:
        return image
    without_tag = image[:tag_match.start()]
    if is_gpu_enabled(resources):
        if server_type in ("tensorflow-serving", "torchserve", "huggingfaceserver") and not image.endswith("-gpu"):
            return image + "-gpu"
    elif server_type == "vllmserver" and not without_tag.endswith("-cpu"):
        return without_tag + "-cpu" + tag_match.group(1)
    return image


def pod_requests(pod: dict) -> dict[str, Decimal]:
    """What a pod asks of a node: each container's requests, or its limits where it gives none."""
    total: Counter = Counter()
    for container in (pod.get("spec") or {}).get("containers") or []:
        resources = container.get("resources") or {}
        asked = {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
        for name, value in asked.items():
            total[name] += quantity(value)
    return dict(total)


def _tolerated(taint: dict, tolerations: list[dict]) -> bool:
    for toleration in tolerations:
        if toleration.get("effect") and toleration["effect"] != taint.get("effect"):
            continue
        if toleration.get("operator") == "Exists" and not toleration.get("key"):
            return True
        if toleration.get("key") != taint.get("key"):
            continue
        if toleration.get("operator") == "Exists" or toleration.get("value", "") == taint.get("value", ""):
            return True
    return False


def _node_ready(node: dict) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (node.get("status") or {}).get("conditions") or [])


class Placement:
    """The outcome of scheduling one pod: a node name, or the scheduler's message."""

    def __init__(self, node: str | None, message: str = ""):
        self.node = node
        self.message = message


def schedule(pod: dict, nodes: list[dict], bound: list[dict]) -> Placement:
    """Pick a node for ``pod`` given the pods already ``bound`` to nodes (``spec.nodeName``)."""
    if not nodes:
        return Placement(None, "no nodes available to schedule pods")
    spec = pod.get("spec") or {}
    wanted = pod_requests(pod)
    used: dict[str, Counter] = {}
    for other in bound:
        name = (other.get("spec") or {}).get("nodeName")
        if name and (other.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
            used.setdefault(name, Counter()).update(pod_requests(other))
    reasons: Counter = Counter()
    resource_only: set[str] = set()
    for node in sorted(nodes, key=lambda n: n["metadata"]["name"]):
        name = node["metadata"]["name"]
        labels = node["metadata"].get("labels") or {}
        failures = []
        if not _node_ready(node):
            failures.append("node(s) were not ready")
        elif (node.get("spec") or {}).get("unschedulable"):
            failures.append("node(s) were unschedulable")
        if any(labels.get(k) != v for k, v in (spec.get("nodeSelector") or {}).items()):
            failures.append("node(s) didn't match Pod's node affinity/selector")
        for taint in (node.get("spec") or {}).get("taints") or []:
            if taint.get("effect") in ("NoSchedule", "NoExecute") and not _tolerated(taint,
                                                                                     spec.get("tolerations") or []):
                value = f": {taint['value']}" if taint.get("value") else ""
                failures.append(f"node(s) had untolerated taint {{{taint.get('key')}{value}}}")
                break
        insufficient = []
        allocatable = (node.get("status") or {}).get("allocatable") or {}
        for resource, amount in wanted.items():
            if amount <= 0:
                continue
            free = quantity(allocatable.get(resource, 0)) - used.get(name, Counter())[resource]
            if amount > free:
                insufficient.append(f"Insufficient {resource}")
        failures.extend(sorted(insufficient))
        if not failures:
            return Placement(name)
        if insufficient and len(insufficient) == len(failures):
            resource_only.add(name)
        reasons.update(failures)
    total = len(nodes)
    # Like the scheduler's FitError, "<count> <reason>" strings sorted as strings.
    summary = ", ".join(sorted(f"{count} {reason}" for reason, count in reasons.items()))
    preemption = {"No preemption victims found for incoming pod": len(resource_only),
                  "Preemption is not helpful for scheduling": total - len(resource_only)}
    preempt_text = ", ".join(sorted(f"{count} {reason}" for reason, count in preemption.items() if count))
    return Placement(None, f"0/{total} nodes are available: {summary}. "
                           f"preemption: 0/{total} nodes are available: {preempt_text}.")
