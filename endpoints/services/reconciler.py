"""The periodic reconcile pass: one list call per project namespace, then every endpoint's
observed status, re-applies of what is missing, unapplied or drifted (drift audited), and the
deletion of managed objects without an endpoint — within a safety cap (``docs/reconciler.md``)."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import F
from django.utils import timezone

from audit import services as audit
from console import metrics
from console.redaction import redact_ingest_keys
from endpoints import reconcile
from endpoints.cluster import ClusterError
from endpoints.models import Cluster, Endpoint, EndpointStatus, ReconcileAlert, Revision
from endpoints.services import connections, nim
from endpoints.services.alerts import alert_clear, alert_raise, isolated
from endpoints.services.apply import endpoint_apply, endpoint_remove, is_managed_by_this_console
from endpoints.services.capabilities import capabilities_for
from endpoints.services.observation import STATUS_COLUMNS, observation_fields, phase_changed

logger = logging.getLogger(__name__)


def managed_selector() -> str:
    """The label selector of the InferenceServices this console instance manages."""
    return ("app.kubernetes.io/managed-by=inference-console,"
            f"inference-console.io/instance={settings.CONSOLE_INSTANCE}")


def reconcile_cluster(*, cluster: Cluster, max_deletions: int | None = None) -> dict:
    """One level-triggered pass over a cluster: ONE list call per project namespace, then
    record every endpoint's observed status, re-apply what drifted (audited), apply what is
    missing or was never applied, and delete managed objects that have no endpoint — unless
    that would delete more than ``max_deletions`` objects, in which case nothing is deleted
    and an alert is raised. An unchanged fleet costs one list call per namespace and no
    writes to the cluster.

    Returns the pass's report: namespaces listed, endpoints applied and drift-corrected,
    orphans found and deleted, and the errors met (the pass goes on after each)."""
    started = time.perf_counter()
    try:
        report = _reconcile_cluster(cluster, max_deletions)
    finally:
        metrics.RECONCILE_PASSES.labels(cluster.name).inc()
        metrics.RECONCILE_PASS_SECONDS.labels(cluster.name).observe(time.perf_counter() - started)
    if report["errors"]:
        metrics.RECONCILE_PASS_ERRORS.labels(cluster.name).inc(len(report["errors"]))
    return report


def _reconcile_cluster(cluster: Cluster, max_deletions: int | None) -> dict:
    if max_deletions is None:
        max_deletions = settings.RECONCILE_MAX_DELETIONS
    report = {"listed": 0, "applied": 0, "drift_corrected": 0, "deleted": 0, "orphans": 0, "errors": []}
    client = cluster.client()
    orphans: list[tuple[str, str]] = []
    connection_orphans: list[tuple[object, str, str]] = []
    to_apply: list[tuple[int, str]] = []
    now = timezone.now()
    reading = capabilities_for(cluster)
    reading = reading if reading is not None and reading.usable else None
    projects = list(cluster.projects.all().order_by("pk"))
    for project in projects:
        connection_orphans += _sync_connections(client, project, reading, report=report)
        _sync_nim_runtimes(client, project, report=report)
        project_work, project_orphans = _reconcile_namespace(client, project, now=now, report=report)
        to_apply += project_work
        orphans += project_orphans
    _apply_pending(to_apply, report=report)
    _cluster_reachability_alert(cluster, projects, report)
    report["orphans"] = len(orphans) + len(connection_orphans)
    if report["orphans"] > max_deletions:
        _refuse_deletions(cluster, orphans, connection_orphans, max_deletions=max_deletions)
        return report
    if projects and report["listed"] == len(projects):
        # Every namespace was read, so the count is complete: a deletion-cap alert is over.
        alert_clear(cluster=cluster, kind=ReconcileAlert.Kind.DELETION_CAP,
                    reason=f"A reconcile pass found {report['orphans']} managed objects without an endpoint, "
                           f"within the safety cap of {max_deletions}.")
    if orphans:
        _delete_orphans(client, orphans, report=report)
    for project, kind, name in connection_orphans:
        try:
            report["deleted"] += connections.delete_orphans(client, project, [(kind, name)])
        except ClusterError as exc:
            report["errors"].append(f"{project.namespace}/{name}: {exc}")
    return report


def _cluster_reachability_alert(cluster: Cluster, projects: list, report: dict) -> None:
    """No namespace of the cluster could be listed: raise an alert; one could: clear it."""
    if not projects:
        return
    if report["listed"] == 0:
        alert_raise(cluster=cluster, kind=ReconcileAlert.Kind.CLUSTER_UNREACHABLE,
                    message=f"The reconciler could not list any of the cluster's {len(projects)} project namespaces: "
                            f"{report['errors'][0] if report['errors'] else 'no answer'}. Endpoint statuses are "
                            "Unknown until it can.",
                    details={"errors": report["errors"][:20]})
    else:
        alert_clear(cluster=cluster, kind=ReconcileAlert.Kind.CLUSTER_UNREACHABLE,
                    reason=f"A reconcile pass listed {report['listed']} of {len(projects)} project namespaces.")


def _sync_connections(client, project, reading, *, report: dict) -> list[tuple[object, str, str]]:
    """The namespace's connection Secrets and ServiceAccounts: missing ones applied, edited ones
    repaired; returns the managed ones no endpoint needs any more, for the deletion cap."""
    try:
        stale = connections.sync_namespace(client, project, reading, report=report)
    except ClusterError as exc:
        report["errors"].append(f"{project.namespace} (connections): {exc}")
        return []
    return [(project, kind, name) for kind, name in stale]


def _sync_nim_runtimes(client, project, *, report: dict) -> None:
    """NIM runtimes the namespace's endpoints use: missing ones applied, edited ones repaired."""
    try:
        nim.sync_namespace_runtimes(client, project, report=report)
    except ClusterError as exc:
        report["errors"].append(f"{project.namespace} (NIM runtimes): {exc}")


def _reconcile_namespace(client, project, *, now, report: dict) -> tuple[list[tuple[int, str]], list[tuple[str, str]]]:
    """One project's namespace: record what the list says of each endpoint; returns the work
    for later in the pass — (endpoint id, reason) pairs — and the orphans (namespace, name)."""
    endpoints = list(project.endpoints.select_related("status").all())
    try:
        items, _rv = client.list(project.namespace, managed_selector())
    except ClusterError as exc:
        report["errors"].append(f"{project.namespace}: {exc}")
        EndpointStatus.objects.filter(endpoint__project=project).exclude(
            endpoint__state=Endpoint.State.DELETING).update(
            phase=EndpointStatus.Phase.UNKNOWN, ready=False, last_error=f"cluster unreachable: {exc}"[:2000])
        return [], []
    report["listed"] += 1
    live_by_name = {item["metadata"]["name"]: item for item in items}
    changed_statuses: list[EndpointStatus] = []
    revisions = {r.endpoint_id: r for r in Revision.objects.filter(
        endpoint__project=project).filter(generation=F("endpoint__generation"))}
    to_apply = []
    for endpoint in endpoints:
        live = live_by_name.pop(endpoint.name, None)
        if endpoint.state == Endpoint.State.DELETING:
            if live is not None:
                to_apply.append((endpoint.pk, "delete"))
            continue
        if _observe(endpoint, live):
            changed_statuses.append(endpoint.status)
        reason = _work_needed(endpoint, live, revisions.get(endpoint.pk))
        if reason:
            to_apply.append((endpoint.pk, reason))
    _save_statuses(project, changed_statuses, now=now)
    orphans = [(project.namespace, name) for name, item in live_by_name.items()
               if is_managed_by_this_console((item.get("metadata") or {}).get("labels") or {})]
    return to_apply, orphans


def _observe(endpoint: Endpoint, live: dict | None) -> bool:
    """Set the endpoint's status row (created when missing) to what ``live`` says; returns
    whether the reading changed (only then is the row written back)."""
    status = getattr(endpoint, "status", None)
    if status is None:
        status = EndpointStatus.objects.create(endpoint=endpoint)
        endpoint.status = status
    fields = observation_fields(endpoint, live)
    if not any(getattr(status, name) != value for name, value in fields.items()):
        return False
    old_phase = status.phase
    for name, value in fields.items():
        setattr(status, name, value)
    phase_changed(endpoint, old_phase, status.phase, status.explanation or [])
    return True


def _work_needed(endpoint: Endpoint, live: dict | None, revision: Revision | None) -> str | None:
    """Why the endpoint's current generation must be applied again (None: it need not)."""
    if revision is None:
        return None
    status = endpoint.status
    if live is None:
        return "missing from the cluster"
    if status.applied_generation < endpoint.generation and status.last_reconcile_result != "failed":
        return "generation not applied yet"
    if status.applied_generation == endpoint.generation:
        drifted = reconcile.drifted_paths(live, revision.manifest)
        if drifted:
            _audit_drift(endpoint, live, revision.manifest, drifted)
            return "drift"
    return None


def _save_statuses(project, changed: list[EndpointStatus], *, now) -> None:
    """Status rows are written only when what the cluster reports changed; the sync time of
    the whole namespace is one UPDATE."""
    if changed:
        # One plain UPDATE per changed row: bulk_update's CASE expressions over JSON
        # columns cost far more to build than the statements themselves.
        with transaction.atomic():
            for status in changed:
                EndpointStatus.objects.filter(pk=status.pk).update(
                    **{name: getattr(status, name) for name in STATUS_COLUMNS})
    EndpointStatus.objects.filter(endpoint__project=project).update(last_synced_at=now)


def _apply_pending(to_apply: list[tuple[int, str]], *, report: dict) -> None:
    for endpoint_id, reason in to_apply:
        try:
            if reason == "delete":
                endpoint_remove(endpoint_id=endpoint_id)
                continue
            result = endpoint_apply(endpoint_id=endpoint_id, force=True, reason=reason)
        except ClusterError as exc:
            report["errors"].append(f"endpoint {endpoint_id}: {exc}")
            continue
        if result == "applied":
            report["drift_corrected" if reason == "drift" else "applied"] += 1


def _refuse_deletions(cluster: Cluster, orphans: list[tuple[str, str]], connection_orphans: list,
                      *, max_deletions: int) -> None:
    """More managed objects without an owner than the cap: delete none and raise an alert — a
    restored database or a second console sharing the instance label must not wipe a cluster."""
    total = len(orphans) + len(connection_orphans)
    listed = [f"InferenceService {ns}/{name}" for ns, name in orphans]
    listed += [f"{kind} {project.namespace}/{name}" for project, kind, name in connection_orphans]
    alert_raise(
        cluster=cluster, kind=ReconcileAlert.Kind.DELETION_CAP,
        message=f"The reconciler found {total} objects labelled as managed by this console with nothing in its "
                f"database that needs them ({len(orphans)} InferenceServices, {len(connection_orphans)} connection "
                f"Secrets, ServiceAccounts or ConfigMaps), more than the safety cap of {max_deletions}. Nothing "
                "was deleted: check whether the database was restored from an old backup or another "
                "console shares the instance label, then delete them by hand or raise the cap.",
        details={"orphans": listed[:100], "cap": max_deletions})


def _delete_orphans(client, orphans: list[tuple[str, str]], *, report: dict) -> None:
    """Delete managed InferenceServices without an endpoint (audited)."""
    for namespace, name in orphans:
        try:
            client.delete("InferenceService", namespace, name)
        except ClusterError as exc:
            report["errors"].append(f"{namespace}/{name}: {exc}")
            continue
        report["deleted"] += 1
        audit.record(action="isvc.delete_orphan", actor=None, actor_name="reconciler",
                     target_type="inferenceservice", target_id=f"{namespace}/{name}",
                     target_repr=f"{namespace}/{name}",
                     details={"reason": "managed by this console but no endpoint exists"})


def _audit_drift(endpoint: Endpoint, live: dict, manifest: dict, paths: list[str]) -> None:
    before = redact_ingest_keys({path: _path_value(live, path) for path in paths})
    after = redact_ingest_keys({path: _path_value(manifest, path) for path in paths})
    with transaction.atomic():
        EndpointStatus.objects.filter(pk=endpoint.pk).update(drift_corrections=F("drift_corrections") + 1)
        audit.record(action="endpoint.drift_corrected", actor=None, actor_name="reconciler", target=endpoint,
                     project=endpoint.project,
                     details={"old": before, "new": after,
                              "reason": "the live InferenceService was changed outside the console"})


def _path_value(obj: dict, path: str):
    node = obj
    for key in reconcile.split_path(path):
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


# The advisory-lock namespace of reconcile passes (the second key is the cluster's id).
PASS_LOCK_NAMESPACE = 0x1C0_0001


@contextlib.contextmanager
def cluster_pass(cluster: Cluster) -> Iterator[bool]:
    """Whether this pass may reconcile ``cluster`` now: False while another pass over it runs.

    Beat sends a pass every ``RECONCILE_INTERVAL_SECONDS`` and the workers run several tasks at
    once, so a slow cluster would otherwise be reconciled by two passes at the same time — each
    correcting the same drift (two ``endpoint.drift_corrected`` events for one change) and
    raising the same alert. On PostgreSQL a session advisory lock per cluster says which pass
    has it (released at the end, or by the database when the worker holding it dies); SQLite
    serialises writers anyway and runs only the demo's single worker."""
    if connection.vendor != "postgresql":
        yield True
        return
    key = [PASS_LOCK_NAMESPACE, cluster.pk]
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", key)
        held = bool(cursor.fetchone()[0])
    try:
        yield held
    finally:
        if held:
            try:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s, %s)", key)
            except DatabaseError:  # the connection is gone, and the lock with it
                logger.warning("could not release the reconcile lock of cluster %s", cluster.name, exc_info=True)


def _reconcile_one(cluster: Cluster) -> dict | None:
    with cluster_pass(cluster) as mine:
        if not mine:
            logger.info("reconcile pass skipped on cluster %s: another pass is running", cluster.name)
            return {"skipped": "another reconcile pass over this cluster is running"}
        return isolated(cluster, kind=ReconcileAlert.Kind.RECONCILE_FAILED, what="reconcile pass",
                        work=lambda: reconcile_cluster(cluster=cluster))


def reconcile_all() -> dict[str, dict | None]:
    """Reconcile every enabled cluster. A cluster whose pass fails (an error that is not the
    cluster answering badly, which ``reconcile_cluster`` already records and goes on from) gets a
    ``reconcile_failed`` alert and None in the report; the pass goes on with the next cluster. A
    cluster another pass is still reconciling is skipped (``cluster_pass``)."""
    return {cluster.name: _reconcile_one(cluster) for cluster in Cluster.objects.filter(enabled=True)}
