"""PersistentVolumeClaims as a cluster treats them, for what the sandbox serves from a claim
(``storageUri: pvc://<claim>/<path>``, NVIDIA NIMs' model cache).

- The PV controller binds a new claim: the sandbox has a provisioner for every storage class, so
  each claim is ``Bound`` at once to a volume ``pvc-<uid>`` of the size and access modes asked.
- KServe mounts the claim into the predictor pod (volume ``kserve-pvc-source``, read-only, at
  ``/mnt/pvc``); the scheduler does not place a pod whose claim does not exist: it stays
  ``Pending`` with ``FailedScheduling`` ``persistentvolumeclaim "<claim>" not found`` until the
  claim is created.

Imports no console module: the sandbox is a second program.
"""

from __future__ import annotations

PVC_VOLUME = "kserve-pvc-source"
PVC_MOUNT = "/mnt/pvc"
BINDER = "persistentvolume-binder-controller"


def claim_of(storage_uri: str) -> str | None:
    """The claim a ``pvc://<claim>/<path>`` URI names (None for any other URI)."""
    if not (storage_uri or "").startswith("pvc://"):
        return None
    return storage_uri[len("pvc://"):].split("/", 1)[0] or None


def pod_volume(claim: str) -> dict:
    return {"name": PVC_VOLUME, "persistentVolumeClaim": {"claimName": claim, "readOnly": True}}


def missing_claim_message(claim: str, nodes: int) -> str:
    """The scheduler's words for a pod whose claim does not exist."""
    return (f'0/{nodes} nodes are available: persistentvolumeclaim "{claim}" not found. '
            f"preemption: 0/{nodes} nodes are available: {nodes} Preemption is not helpful for scheduling.")


def bind(store, claim: dict) -> None:
    """Bind an unbound claim (a dynamically provisioned volume of the size asked)."""
    meta, spec = claim.get("metadata") or {}, claim.get("spec") or {}
    if meta.get("deletionTimestamp") or (claim.get("status") or {}).get("phase") == "Bound":
        return
    namespace, name = meta.get("namespace"), meta.get("name")
    if not spec.get("volumeName"):
        store.patch("persistentvolumeclaims", namespace, name, {"spec": {"volumeName": f"pvc-{meta.get('uid')}"}},
                    manager=BINDER)
    requested = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
    store.update_status("persistentvolumeclaims", namespace, name,
                        {"phase": "Bound", "accessModes": list(spec.get("accessModes") or []),
                         **({"capacity": {"storage": requested}} if requested else {})}, manager=BINDER)
