"""Reading what a cluster can do (``endpoints.capabilities``) and keeping the reading fresh.

``cluster_discover`` asks the cluster, with the console's own credentials, for: its version;
the InferenceService CRD (the fields it declares, hence the KServe release); the KServe
controller's image when its pods are readable; ``kserve/inferenceservice-config``; Knative's
``config-features`` and ``config-defaults`` when Knative is installed; the accelerators its
nodes offer (optional: listing nodes needs the ClusterRole in deploy/kubernetes/base, and
without it only accelerator capacity is unknown); the ClusterServingRuntimes, and the
ServingRuntimes of every project namespace on that cluster. Each part that cannot be read is
named in ``problems`` and the rest is still used.

Readings are stored per cluster (``ClusterCapabilities``) and refreshed on "Test connection", on
cluster create/update, by the periodic task, and before a plan when older than
``CLUSTER_CAPABILITIES_MAX_AGE`` seconds.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit import services as audit
from endpoints import capabilities as caps
from endpoints.cluster import ClusterError, PermanentClusterError
from endpoints.models import Cluster, ClusterCapabilities, Project, ReconcileAlert, ServingRuntime
from endpoints.services.alerts import isolated

CONTROLLER_SELECTOR = "control-plane=kserve-controller-manager"
DEFAULT_MAX_AGE = 600


def max_age() -> int:
    return int(getattr(settings, "CLUSTER_CAPABILITIES_MAX_AGE", DEFAULT_MAX_AGE))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ClusterError):
        return exc.message or exc.reason or str(exc)
    return str(exc) or exc.__class__.__name__


def _optional(reading: caps.Capabilities, what: str, fn, *, missing_ok: bool = True):
    """Run one read; a refusal or absence becomes a named problem instead of an error."""
    try:
        return fn()
    except PermanentClusterError as exc:
        if exc.status == 404 and missing_ok:
            return None
        if exc.status in (401, 403):
            reading.problems.append(f"Cannot read {what}: the console's credentials are not allowed to "
                                    f"({exc.status}).")
            return None
        reading.problems.append(f"Cannot read {what}: {_describe(exc)}")
        return None
    except ClusterError as exc:
        reading.problems.append(f"Cannot read {what}: {_describe(exc)}")
        return None


def read_capabilities(client, *, namespaces: list[str]) -> caps.Capabilities:
    """One reading of the cluster behind ``client`` (no database access)."""
    reading = caps.Capabilities(read_at=timezone.now().isoformat())
    try:
        version = client.server_version()
    except PermanentClusterError as exc:
        reading.reachable = True
        reading.error = _describe(exc)
        return reading
    except ClusterError as exc:
        reading.error = _describe(exc)
        return reading
    reading.reachable = True
    reading.server_version = version.get("gitVersion", "")
    try:
        crd = client.get("CustomResourceDefinition", None, caps.ISVC_CRD)
    except PermanentClusterError as exc:
        if exc.status == 401:
            reading.error = _describe(exc)
            return reading
        reading.authenticated = True
        reading.problems.append(f"Cannot read the InferenceService CRD ({exc.status}): the release and the fields "
                                "it declares are unknown.")
        crd = None
        reading.kserve = _can_list_isvcs(client, reading)
    except ClusterError as exc:
        reading.error = _describe(exc)
        return reading
    else:
        reading.authenticated = True
        reading.kserve = crd is not None
    if crd is not None:
        reading.release = list(caps.release_from_crd(crd) or ())
        reading.isvc_fields = caps.declared_fields(crd)
    if not reading.kserve:
        return reading

    pods = _optional(reading, "the KServe controller's pods",
                     lambda: client.list(caps.KSERVE_NAMESPACE, CONTROLLER_SELECTOR, kind="Pod")[0])
    for pod in pods or []:
        image = next((c.get("image", "") for c in (pod.get("spec") or {}).get("containers") or []
                      if c.get("name") == "manager"), "")
        if image:
            reading.controller_image = image
            exact = caps.release_from_image(image)
            if exact:
                reading.release, reading.release_exact = list(exact), True
            break
    reading.isvc_config = _optional(reading, "kserve/inferenceservice-config",
                                    lambda: client.get("ConfigMap", caps.KSERVE_NAMESPACE, caps.ISVC_CONFIG))
    if reading.isvc_config is None and not any("inferenceservice-config" in p for p in reading.problems):
        reading.problems.append("kserve/inferenceservice-config was not found: KServe's defaults are assumed.")
    features = _optional(reading, "knative-serving/config-features",
                         lambda: client.get("ConfigMap", caps.KNATIVE_NAMESPACE, "config-features"))
    defaults = _optional(reading, "knative-serving/config-defaults",
                         lambda: client.get("ConfigMap", caps.KNATIVE_NAMESPACE, "config-defaults"))
    if features is not None or defaults is not None:
        reading.knative = True
        reading.knative_features = dict((features or {}).get("data") or {})
        reading.knative_defaults = dict((defaults or {}).get("data") or {})
    elif any("knative-serving" in p for p in reading.problems):
        reading.knative = None
    else:
        namespace = _optional(reading, "the knative-serving namespace",
                              lambda: client.get("Namespace", None, caps.KNATIVE_NAMESPACE))
        reading.knative = namespace is not None
    nodes = _optional(reading, "nodes (optional: accelerator capacity)", lambda: client.list(None, kind="Node")[0])
    if nodes is not None:
        totals: Counter = Counter()
        for node in nodes:
            taints = [{k: str(v) for k, v in t.items() if k in ("key", "value", "effect")}
                      for t in (node.get("spec") or {}).get("taints") or []
                      if t.get("effect") in ("NoSchedule", "NoExecute")]
            for resource, amount in ((node.get("status") or {}).get("allocatable") or {}).items():
                if resource.startswith(caps.GPU_RESOURCE_PREFIXES):
                    try:
                        count = int(str(amount))
                    except ValueError:
                        continue
                    if count > 0:
                        totals[resource] += count
                        reading.accelerator_taints.setdefault(resource, []).append(taints)
        reading.accelerators = dict(totals)
    runtimes = _optional(reading, "ClusterServingRuntimes",
                         lambda: client.list(None, kind="ClusterServingRuntime")[0])
    reading.cluster_runtimes = [caps.runtime_summary(r) for r in runtimes or []]
    for namespace in namespaces:
        items = _optional(reading, f"ServingRuntimes in {namespace}",
                          lambda ns=namespace: client.list(ns, kind="ServingRuntime")[0])
        if items:
            reading.namespace_runtimes[namespace] = [caps.runtime_summary(r) for r in items]
    return reading


def _can_list_isvcs(client, reading: caps.Capabilities) -> bool:
    try:
        client.list(None, kind="InferenceService", label_selector="inference-console.io/probe=none")
        return True
    except PermanentClusterError as exc:
        return exc.status != 404
    except ClusterError:
        return False


def connection_summary(reading: caps.Capabilities) -> str:
    """One sentence on whether the console can use the cluster, and if not, why."""
    if not reading.reachable:
        return f"the cluster did not answer ({reading.error or 'no response'})."
    if not reading.authenticated:
        return f"the cluster refused the console's credentials ({reading.error or 'unauthorized'})."
    if not reading.kserve:
        return "the cluster answered, but KServe is not installed (no InferenceService CRD)."
    missing = f" Not readable: {'; '.join(reading.problems)}" if reading.problems else ""
    return f"KServe {reading.release_text} found.{missing}"


def verify_connection(cluster: Cluster) -> caps.Capabilities:
    """Read a cluster that may not be saved yet (the admin's form), without storing anything."""
    namespaces = (sorted(Project.objects.filter(cluster=cluster).values_list("namespace", flat=True))
                  if cluster.pk else [])
    try:
        client = cluster.client()
    except Exception as exc:  # a kubeconfig that cannot be read, no in-cluster credentials
        return caps.Capabilities(read_at=timezone.now().isoformat(), error=str(exc))
    try:
        return read_capabilities(client, namespaces=namespaces)
    finally:
        client.close()


def cluster_discover(*, cluster: Cluster, actor=None, record: bool = False) -> ClusterCapabilities:
    """Read ``cluster`` and store the reading; ``record`` audits it (an admin's "Test connection")."""
    reading = verify_connection(cluster)
    return store_reading(cluster=cluster, reading=reading, actor=actor, record=record)


@transaction.atomic
def store_reading(*, cluster: Cluster, reading: caps.Capabilities, actor=None,
                  record: bool = False) -> ClusterCapabilities:
    row, _ = ClusterCapabilities.objects.update_or_create(
        cluster=cluster, defaults={"data": reading.to_json(), "read_at": timezone.now(), "usable": reading.usable})
    if reading.usable:
        sync_discovered_runtimes(cluster=cluster, reading=reading)
    if record:
        audit.record(action="cluster.test_connection", actor=actor, target=cluster, details={
            "reachable": reading.reachable, "authenticated": reading.authenticated, "kserve": reading.kserve,
            "release": reading.release_text if reading.kserve else "", "error": reading.error,
            "problems": reading.problems})
    return row


def sync_discovered_runtimes(*, cluster: Cluster, reading: caps.Capabilities) -> dict[str, list[str]]:
    """Make the runtimes someone else installed on ``cluster`` choosable in the console: a
    catalog row (``installed_on`` = the cluster) for each runtime the console does not know by
    name, kept in step with what the cluster declares; one that left the cluster is disabled.
    Built-in and console-installed runtimes are not touched. Audited as ``runtime.discovered``."""
    changes: dict[str, list[str]] = {"added": [], "updated": [], "gone": []}
    seen = set()
    for summary in reading.all_runtimes:
        name = summary["name"]
        seen.add(name)
        fields = {
            "supported_formats": [{k: v for k, v in f.items() if k in ("name", "version", "autoSelect", "priority")}
                                  for f in summary.get("formats") or []],
            "protocols": list(summary.get("protocols") or []),
            "multi_model": bool(summary.get("multi_model")),
            "disabled": bool(summary.get("disabled")),
            "container_image": summary.get("image", "")[:300],
            "installed_namespace": summary.get("namespace", ""),
        }
        row = ServingRuntime.objects.filter(name=name).first()
        if row is None:
            where = f"namespace {fields['installed_namespace']} of " if fields["installed_namespace"] else ""
            ServingRuntime.objects.create(
                name=name, display_name=name, built_in=False, installed_on=cluster,
                description=(f"Installed in {where}cluster {cluster.name} outside the console (read from the "
                             "cluster; the console offers it there and never changes it).")[:300],
                **fields)
            changes["added"].append(name)
        elif row.installed_on_id == cluster.pk and any(getattr(row, k) != v for k, v in fields.items()):
            ServingRuntime.objects.filter(pk=row.pk).update(**fields)
            changes["updated"].append(name)
    for row in ServingRuntime.objects.filter(installed_on=cluster, disabled=False).exclude(name__in=seen):
        ServingRuntime.objects.filter(pk=row.pk).update(disabled=True)
        changes["gone"].append(row.name)
    if any(changes.values()):
        audit.record(action="runtime.discovered", target=cluster,
                     details={k: sorted(v) for k, v in changes.items() if v})
    return changes


def _stale(row: ClusterCapabilities | None) -> bool:
    """Never read, or read longer ago than ``max_age()``."""
    return row is None or timezone.now() - row.read_at > dt.timedelta(seconds=max_age())


def capabilities_for(cluster: Cluster, *, refresh_if_older: bool = True) -> caps.Capabilities | None:
    """The cluster's latest reading, re-read first when older than ``max_age()`` (None when the
    cluster is disabled and was never read)."""
    row = ClusterCapabilities.objects.filter(cluster=cluster).first()
    if refresh_if_older and _stale(row) and cluster.enabled:
        row = cluster_discover(cluster=cluster)
    return row.capabilities if row is not None else None


def refresh_all() -> int:
    """Re-read every enabled cluster whose reading is older than ``max_age()``; how many were read.
    A cluster whose reading fails gets a ``capabilities_failed`` alert and the others are read."""
    count = 0
    for cluster in Cluster.objects.filter(enabled=True):
        if not _stale(ClusterCapabilities.objects.filter(cluster=cluster).first()):
            continue
        if isolated(cluster, kind=ReconcileAlert.Kind.CAPABILITIES_FAILED, what="capability reading",
                    work=lambda cluster=cluster: cluster_discover(cluster=cluster)) is not None:
            count += 1
    return count
