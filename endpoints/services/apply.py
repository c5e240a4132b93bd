"""Applying to the cluster (run by workers): server-side apply of the current generation's
manifest under a claim, so concurrent or repeated deliveries apply a generation once; and the
removal of an endpoint marked for deletion."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from audit import services as audit
from console import metrics
from endpoints import reconcile
from endpoints.cluster import PermanentClusterError
from endpoints.models import Endpoint, EndpointStatus, Revision, ServingRuntime
from endpoints.services import connections, notifications
from endpoints.services.endpoints import cluster_reading
from endpoints.services.observation import observe_live, status_fields


def _claim(endpoint: Endpoint, generation: int, claimant: str) -> bool:
    """Claim ``generation`` for this worker with a conditional UPDATE (works on SQLite too,
    where SELECT ... FOR UPDATE is ignored). A claim is free when it is for an older
    generation, when it is this claimant's own (a redelivered task keeps its id), or when it
    is older than the task time limit (its worker is gone)."""
    now = timezone.now()
    stale = now - timezone.timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT)
    claimable = (Q(reconcile_claimed_generation__lt=generation) | Q(reconcile_claimed_by=claimant)
                 | Q(reconcile_claimed_at__lt=stale) | Q(reconcile_claimed_at__isnull=True))
    return bool(EndpointStatus.objects.filter(Q(pk=endpoint.pk) & claimable).update(
        reconcile_claimed_generation=generation, reconcile_claimed_at=now, reconcile_claimed_by=claimant[:64]))


def _release(endpoint: Endpoint, generation: int, claimant: str) -> None:
    EndpointStatus.objects.filter(pk=endpoint.pk, reconcile_claimed_generation=generation,
                                  reconcile_claimed_by=claimant[:64]).update(
        reconcile_claimed_generation=generation - 1, reconcile_claimed_at=None, reconcile_claimed_by="")


def _finish_claim(endpoint: Endpoint, claimant: str) -> None:
    """The work is done: later passes (drift repair) may claim the generation again."""
    EndpointStatus.objects.filter(pk=endpoint.pk, reconcile_claimed_by=claimant[:64]).update(
        reconcile_claimed_at=None, reconcile_claimed_by="")


def endpoint_apply(*, endpoint_id: int, claimant: str = "", force: bool = False, reason: str = "") -> str:
    """Apply the endpoint's current generation (server-side apply of its revision's
    manifest). Returns "applied", "failed" or "skipped". Transient cluster errors propagate
    so the task retries; permanent ones mark the endpoint Failed with the API's message."""
    claimant = claimant or uuid.uuid4().hex
    endpoint = (Endpoint.objects.select_related("project", "project__cluster", "runtime",
                                                "model_version__connection", "canary_version__connection")
                .filter(pk=endpoint_id).first())
    if endpoint is None or endpoint.state == Endpoint.State.DELETING:
        return "skipped"
    generation = endpoint.generation
    revision = endpoint.revisions.filter(generation=generation).first()
    if revision is None:
        return "skipped"
    status, _ = EndpointStatus.objects.get_or_create(endpoint=endpoint)
    if not force and status.applied_generation >= generation and status.last_reconcile_result == "applied":
        return "skipped"
    if not _claim(endpoint, generation, claimant):
        return "skipped"  # another worker is applying this generation right now
    client = endpoint.project.cluster.client()
    now = timezone.now()
    used_connections: list[str] = []
    try:
        used_connections = connections.apply_for_endpoint(client, endpoint, cluster_reading(endpoint.project))
        runtime = endpoint.runtime
        if runtime is not None and runtime.console_installs:
            if runtime.nim and (cache := _nim_cache_manifest(runtime, endpoint.project.namespace)):
                client.apply(cache)  # the NIM's model cache, when its install asked for it (docs/nim.md)
            client.apply_serving_runtime(serving_runtime_manifest(runtime, endpoint.project.namespace))
        live = client.apply(revision.manifest)
    except PermanentClusterError as exc:
        with transaction.atomic():
            EndpointStatus.objects.filter(pk=endpoint.pk).update(
                phase=EndpointStatus.Phase.FAILED, ready=False, last_reconcile_at=now,
                last_reconcile_result="failed", last_error=str(exc))
            _finish_claim(endpoint, claimant)
            Revision.objects.filter(pk=revision.pk).update(outcome=Revision.Outcome.FAILED, message=str(exc))
            audit.record(action="endpoint.apply", actor=None, actor_name="reconciler", target=endpoint,
                         project=endpoint.project, outcome=audit.FAILURE,
                         details={"generation": generation, "error": str(exc)})
            notifications.endpoint_failure_changed(
                endpoint, failed=True, generation=generation,
                reason=f"The cluster refused generation {generation}: {exc}")
        metrics.RECONCILE_APPLIES.labels(endpoint.project.cluster.name, "failed").inc()
        return "failed"
    except Exception as exc:
        # Transient: let the next attempt (a retry, or the periodic pass) claim it again.
        metrics.RECONCILE_APPLIES.labels(endpoint.project.cluster.name, "error").inc()
        _release(endpoint, generation, claimant)
        EndpointStatus.objects.filter(pk=endpoint.pk).update(
            last_reconcile_at=now, last_reconcile_result="retrying", last_error=str(exc)[:2000])
        raise
    observed = observe_live(live, stopped_desired=endpoint.state == Endpoint.State.STOPPED)
    with transaction.atomic():
        # Only record the generation this pass applied if nothing newer was applied meanwhile.
        EndpointStatus.objects.filter(pk=endpoint.pk, applied_generation__lte=generation).update(
            applied_generation=generation, applied_spec_hash=reconcile.spec_hash(revision.manifest),
            last_reconcile_at=now, last_reconcile_result="applied", last_error="",
            last_synced_at=now, **status_fields(observed, deploying=True),
        )
        _finish_claim(endpoint, claimant)
        Revision.objects.filter(pk=revision.pk).update(outcome=Revision.Outcome.APPLIED, message="")
        Revision.objects.filter(endpoint=endpoint, generation__lt=generation,
                                outcome__in=[Revision.Outcome.APPLIED, Revision.Outcome.PENDING]).update(
            outcome=Revision.Outcome.SUPERSEDED)
        audit.record(action="endpoint.apply", actor=None, actor_name="reconciler", target=endpoint,
                     project=endpoint.project,
                     details={"generation": generation, "reason": reason or "desired state changed",
                              "resource_version": ((live or {}).get("metadata") or {}).get("resourceVersion"),
                              **({"connections": used_connections} if used_connections else {})})
    metrics.RECONCILE_APPLIES.labels(endpoint.project.cluster.name, "applied").inc()
    return "applied"


def _nim_cache_manifest(runtime: ServingRuntime, namespace: str) -> dict | None:
    from endpoints.services import nim

    return nim.cache_manifest(runtime, namespace)


def serving_runtime_manifest(runtime: ServingRuntime, namespace: str) -> dict:
    """The namespaced ServingRuntime object of a custom runtime (a NIM runtime as NVIDIA's layout
    writes it, docs/nim.md)."""
    labels = {"app.kubernetes.io/managed-by": "inference-console",
              "inference-console.io/instance": settings.CONSOLE_INSTANCE}
    if runtime.nim:
        from endpoints.services import nim

        return nim.runtime_manifest(runtime, namespace, labels)
    spec: dict = {
        "supportedModelFormats": runtime.supported_formats,
        "containers": [{"name": "kserve-container", "image": runtime.container_image,
                        "args": list(runtime.container_args or [])}],
        "disabled": runtime.disabled,
    }
    if runtime.protocols:
        spec["protocolVersions"] = list(runtime.protocols)
    return {
        "apiVersion": "serving.kserve.io/v1alpha1",
        "kind": "ServingRuntime",
        "metadata": {"name": runtime.name, "namespace": namespace,
                     "labels": {"app.kubernetes.io/managed-by": "inference-console",
                                "inference-console.io/instance": settings.CONSOLE_INSTANCE}},
        "spec": spec,
    }


def is_managed_by_this_console(labels: dict) -> bool:
    """Only objects carrying this console instance's labels are ever deleted: a restored
    database or a second console must not remove what it does not own."""
    return (labels.get("app.kubernetes.io/managed-by") == "inference-console"
            and labels.get("inference-console.io/instance") == settings.CONSOLE_INSTANCE)


def endpoint_remove(*, endpoint_id: int) -> str:
    """Delete the InferenceService (only one this console manages), then the endpoint row."""
    endpoint = Endpoint.objects.select_related("project", "project__cluster").filter(pk=endpoint_id).first()
    if endpoint is None:
        return "gone"
    if endpoint.state != Endpoint.State.DELETING:
        return "skipped"
    client = endpoint.project.cluster.client()
    live = client.get("InferenceService", endpoint.project.namespace, endpoint.name)
    labels = ((live or {}).get("metadata") or {}).get("labels") or {}
    if live is not None and is_managed_by_this_console(labels):
        client.delete("InferenceService", endpoint.project.namespace, endpoint.name)
    with transaction.atomic():
        audit.record(action="endpoint.deleted", actor=None, actor_name="reconciler", target=endpoint,
                     project=endpoint.project, details={"isvc_deleted": live is not None})
        endpoint.delete()
    return "deleted"
