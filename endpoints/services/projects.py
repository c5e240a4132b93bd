"""Projects: a tenant is one namespace on one cluster. Creating one checks (and creates) the
namespace; quotas cap the accelerators its endpoints may request; rotating the payload-logger
key re-points every logging endpoint."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction

from audit import services as audit
from endpoints.cluster import ClusterError
from endpoints.models import Cluster, Endpoint, HardwareProfile, Project, ProjectQuota, new_ingest_key
from endpoints.services.endpoints import new_generation
from endpoints.validation import NAME_RE

# Names a project cannot take because its page would sit on a console route (/projects/new/).
RESERVED_PROJECT_NAMES = frozenset({"new"})
CONSOLE_NAMESPACE_LABELS = {"app.kubernetes.io/managed-by": "inference-console"}


def _onboard_namespace(cluster: Cluster, namespace: str, project_name: str) -> None:
    """The namespace must exist (or is created) and must not carry KServe's ``control-plane``
    label: KServe's pod webhook skips such namespaces, so models there never get downloaded."""
    # Imported here: the kubernetes client costs ~0.4 s to import, and page views import this module.

    try:
        client = cluster.client()
        existing = client.get_namespace(namespace)
        if existing is None:
            client.ensure_namespace(namespace, labels={**CONSOLE_NAMESPACE_LABELS,
                                                       "inference-console.io/project": project_name})
            return
    except ClusterError as exc:
        raise ValidationError({"namespace": [f"Cluster {cluster.name} could not be reached to check the "
                                             f"namespace: {exc}"]}) from exc
    labels = (existing.get("metadata") or {}).get("labels") or {}
    if "control-plane" in labels:
        raise ValidationError({"namespace": [
            f"Namespace {namespace} carries the 'control-plane' label; KServe's pod webhook skips such "
            "namespaces, so models deployed there would never be downloaded. Choose another namespace."]})


def project_onboard(*, project: Project) -> None:
    """Make sure the project's namespace exists on its cluster (created when missing, e.g. on a
    cluster rebuilt empty such as the in-memory sandbox after a restart); refuses, like project
    creation, a namespace KServe's pod webhook skips. Idempotent; changes nothing in the console."""
    _onboard_namespace(project.cluster, project.namespace, project.name)


@transaction.atomic
def project_create(*, actor, name: str, cluster: Cluster, namespace: str = "", display_name: str = "",
                   description: str = "", quotas: dict | None = None, onboard: bool = True) -> Project:
    namespace = namespace or name
    errors = {}
    if not NAME_RE.match(name) or len(name) > 63:
        errors["name"] = ["Use a DNS label: lowercase letters, digits and '-', starting with a letter."]
    elif name in RESERVED_PROJECT_NAMES:
        errors["name"] = [f"{name} is reserved: /projects/{name}/ is the console's own page. Choose another name."]
    if not NAME_RE.match(namespace) or len(namespace) > 63:
        errors["namespace"] = ["Use a DNS label: lowercase letters, digits and '-', starting with a letter."]
    elif namespace.startswith("kube-") or namespace in {"default", "kserve", "knative-serving", "istio-system"}:
        errors["namespace"] = [f"{namespace} is a system namespace; endpoints need a namespace of their own."]
    if errors:
        raise ValidationError(errors)
    if Project.objects.filter(cluster=cluster, namespace=namespace).exists():
        raise ValidationError({"namespace": [f"Namespace {namespace} on {cluster} already belongs to a project."]})
    if Project.objects.filter(name=name).exists():
        raise ValidationError({"name": [f"A project named {name} already exists."]})
    if onboard:
        _onboard_namespace(cluster, namespace, name)
    project = Project.objects.create(name=name, cluster=cluster, namespace=namespace, display_name=display_name,
                                     description=description, created_by=actor)
    for profile, limit in (quotas or {}).items():
        ProjectQuota.objects.create(project=project, hardware_profile=profile, max_accelerators=limit)
    audit.record(action="project.create", actor=actor, target=project, project=project,
                 details={"new": {"name": name, "cluster": cluster.name, "namespace": namespace,
                                  "quotas": {p.name: q for p, q in (quotas or {}).items()}}})
    return project


@transaction.atomic
def project_set_quota(*, actor, project: Project, profile: HardwareProfile, max_accelerators: int | None) -> None:
    existing = ProjectQuota.objects.filter(project=project, hardware_profile=profile).first()
    old = existing.max_accelerators if existing else None
    if max_accelerators is None:
        if existing:
            existing.delete()
    elif existing:
        existing.max_accelerators = max_accelerators
        existing.save(update_fields=["max_accelerators"])
    else:
        ProjectQuota.objects.create(project=project, hardware_profile=profile, max_accelerators=max_accelerators)
    audit.record(action="project.quota", actor=actor, target=project, project=project,
                 details={"profile": profile.name, "old": old, "new": max_accelerators})


@transaction.atomic
def project_rotate_ingest_key(*, actor, project: Project) -> Project:
    """A new payload-logger key: the old URL stops working at once, and every endpoint of the
    project gets a new generation so its logger is re-pointed."""
    project.ingest_key = new_ingest_key()
    project.save(update_fields=["ingest_key"])
    audit.record(action="project.rotate_ingest_key", actor=actor, target=project, project=project)
    for endpoint in project.endpoints.exclude(state=Endpoint.State.DELETING).filter(logging_mode__in=["all", "request", "response"]):
        new_generation(endpoint, actor=actor, summary="payload logger key rotated", action=None,
                       pauses_rollout=False)
    return project
