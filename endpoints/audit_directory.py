"""The audit trail's directory of projects and endpoints (``audit.directory``), answered from
this app's models and registered from ``EndpointsConfig.ready``.

Audit is a lower layer and never imports these models; it asks through this class with
whole sets of keys, and each method runs one query.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import ClassVar

from django.db.models import Q

from audit.directory import EndpointRef, ProjectIds, ProjectRef
from console.permissions import visible
from endpoints.models import Endpoint, Project


class ProjectDirectory:
    """``audit.directory.Directory`` over ``Project`` and ``Endpoint``."""

    PROJECT_FIELDS: ClassVar[tuple[str, ...]] = (
        "pk", "name", "namespace", "cluster__name", "keep_payload_bodies", "payload_body_limit",
    )

    @staticmethod
    def _project(row: dict) -> ProjectRef:
        return ProjectRef(
            pk=row["pk"], name=row["name"], namespace=row["namespace"], cluster_name=row["cluster__name"],
            keep_payload_bodies=row["keep_payload_bodies"], payload_body_limit=row["payload_body_limit"],
        )

    def _projects(self, queryset) -> list[ProjectRef]:
        return [self._project(row) for row in queryset.values(*self.PROJECT_FIELDS)]

    def project_for_ingest_key(self, key: str) -> ProjectRef | None:
        found = self._projects(Project.objects.filter(ingest_key=key))
        return found[0] if found else None

    def projects_by_id(self, ids: Collection[int]) -> dict[int, ProjectRef]:
        if not ids:
            return {}
        return {p.pk: p for p in self._projects(Project.objects.filter(pk__in=set(ids)))}

    def projects_in_namespaces(self, namespaces: Collection[str], *, cluster_name: str = "") -> list[ProjectRef]:
        if not namespaces:
            return []
        projects = Project.objects.filter(namespace__in=set(namespaces))
        if cluster_name:
            projects = projects.filter(cluster__name=cluster_name)
        return self._projects(projects)

    def endpoint_ids(self, names: Collection[tuple[int, str]]) -> dict[tuple[int, str], int]:
        if not names:
            return {}
        # One query for every (project, name) asked: candidates by both columns, then the exact
        # pairs (a project's endpoint names are unique).
        wanted = set(names)
        rows = Endpoint.objects.filter(
            project_id__in={project_id for project_id, _ in wanted}, name__in={name for _, name in wanted},
        ).values_list("project_id", "name", "pk")
        return {(project_id, name): pk for project_id, name, pk in rows if (project_id, name) in wanted}

    def owned_project_ids(self, user) -> ProjectIds:
        return visible(Project.objects.all(), user, "manage").values_list("pk", flat=True)

    def projects(self, *, within: ProjectIds | None = None) -> list[ProjectRef]:
        projects = Project.objects.all() if within is None else Project.objects.filter(pk__in=within)
        return self._projects(projects.order_by("name"))

    def endpoints(self, *, within: ProjectIds | None = None, ids: Collection[int] | None = None,
                  labels: Collection[tuple[str, str]] | None = None) -> list[EndpointRef]:
        endpoints = Endpoint.objects.all()
        if within is not None:
            endpoints = endpoints.filter(project_id__in=within)
        if ids is not None:
            endpoints = endpoints.filter(pk__in=set(ids))
        if labels is not None:
            named = Q(pk__in=[])
            for project_name, name in set(labels):
                named |= Q(project__name=project_name, name=name)
            endpoints = endpoints.filter(named)
        rows = endpoints.order_by("project__name", "name").values_list(
            "pk", "name", "project_id", "project__name", "project__namespace")
        return [EndpointRef(pk=pk, name=name, project_id=project_id, project_name=project_name, namespace=namespace)
                for pk, name, project_id, project_name, namespace in rows]
