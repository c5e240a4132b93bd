"""The directory: what the audit trail may know of projects and endpoints, filled by the domain.

Audit sits below the domain (docs/architecture.md): its rows store references (project id
and name, target type and id) and it never imports the domain's models. When it needs more —
which project an ingest key or a namespace belongs to, whether a project keeps payload
bodies, which endpoint an InferenceService name stands for, which projects a user owns, what
the trail's project and endpoint filters offer — it asks the ``Directory`` the domain
registered at startup (``register_directory`` from ``EndpointsConfig.ready``).

Every method takes a whole set of keys and answers with one query, so callers look up a
batch or a page at once, never row by row.

Without a registered directory (audit running without the domain: a stripped-down
installation, a unit test) audit still records, seals, verifies and exports; it just knows
no projects (``NO_PROJECTS``): every ingest key is unknown (404), Kubernetes events are
stored without a project, inference I/O events keep no bodies, project owners see no events
(auditors still see every event) and the project and endpoint filters offer nothing.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class ProjectRef:
    """A project as audit sees it. ``pk`` and ``name`` are what ``audit.services.record``
    copies into a row, so a ``ProjectRef`` can be passed as its ``project``."""

    pk: int
    name: str
    namespace: str
    cluster_name: str = ""
    keep_payload_bodies: bool = False  # inference I/O events keep request/response bodies
    payload_body_limit: int = 0  # bytes of each body kept


@dataclass(frozen=True)
class EndpointRef:
    """An endpoint as the trail's endpoint filter needs it: its own events are found by id,
    its Kubernetes calls and inference I/O by its InferenceService (namespace/name)."""

    pk: int
    name: str
    project_id: int
    project_name: str
    namespace: str

    @property
    def label(self) -> str:
        return f"{self.project_name}/{self.name}"


# The ids of some projects: a collection of ints, or a lazy query of ids (a values queryset),
# which audit only ever puts into ``project_id__in`` lookups, so it stays one SQL statement.
ProjectIds = Iterable[int]


class Directory(Protocol):
    """What audit asks the domain about projects and endpoints."""

    def project_for_ingest_key(self, key: str) -> ProjectRef | None:
        """The project whose payload loggers post with ``key`` (the KServe receiver's only
        authentication), or None."""

    def projects_by_id(self, ids: Collection[int]) -> dict[int, ProjectRef]:
        """The projects among ``ids`` that exist, by id."""

    def projects_in_namespaces(self, namespaces: Collection[str], *, cluster_name: str = "") -> list[ProjectRef]:
        """Projects using any of ``namespaces`` (on the cluster named ``cluster_name``, when
        given; otherwise on any cluster, so a namespace may have several)."""

    def endpoint_ids(self, names: Collection[tuple[int, str]]) -> dict[tuple[int, str], int]:
        """Endpoint ids by (project id, endpoint name) — the name is the InferenceService's —
        for the pairs in ``names`` that exist."""

    def owned_project_ids(self, user) -> ProjectIds:
        """The projects ``user`` may manage (whose events the user reads as their owner),
        decided by the permission chokepoint. A lazy query is best: audit filters events
        with it."""

    def projects(self, *, within: ProjectIds | None = None) -> list[ProjectRef]:
        """Projects offered by the trail's project filter, by name: all (``within`` None) or
        those among ``within``."""

    def endpoints(self, *, within: ProjectIds | None = None, ids: Collection[int] | None = None,
                  labels: Collection[tuple[str, str]] | None = None) -> list[EndpointRef]:
        """Endpoints the trail's endpoint filter may name, by project and name: of all
        projects (``within`` None) or of those among ``within``; only ``ids`` (or the
        (project name, endpoint name) ``labels``) when given."""


class _NoProjects:
    """The directory in force until the domain registers one: audit knows no projects."""

    def project_for_ingest_key(self, key: str) -> ProjectRef | None:
        return None

    def projects_by_id(self, ids: Collection[int]) -> dict[int, ProjectRef]:
        return {}

    def projects_in_namespaces(self, namespaces: Collection[str], *, cluster_name: str = "") -> list[ProjectRef]:
        return []

    def endpoint_ids(self, names: Collection[tuple[int, str]]) -> dict[tuple[int, str], int]:
        return {}

    def owned_project_ids(self, user) -> ProjectIds:
        return ()

    def projects(self, *, within: ProjectIds | None = None) -> list[ProjectRef]:
        return []

    def endpoints(self, *, within: ProjectIds | None = None, ids: Collection[int] | None = None,
                  labels: Collection[tuple[str, str]] | None = None) -> list[EndpointRef]:
        return []


NO_PROJECTS: Directory = _NoProjects()
_registered: Directory | None = None


def register_directory(directory: Directory | None) -> None:
    """Called once by the domain at startup (``None`` unregisters: audit then knows no
    projects)."""
    global _registered
    _registered = directory


def get_directory() -> Directory:
    """The registered directory, or ``NO_PROJECTS``."""
    return _registered if _registered is not None else NO_PROJECTS
