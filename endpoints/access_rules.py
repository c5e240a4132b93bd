"""What the chokepoint protects in this app, and how (registered from ``EndpointsConfig.ready``).

Projects, registered models and endpoints are granted per object; a model and an endpoint
also inherit their project's grants. Actions shared by all three: view, deploy, infer, manage
(``console/permissions.py``).
"""

from __future__ import annotations

from console.permissions import protect


def register() -> None:
    from endpoints import models as m

    protect(m.Project, user_perms=m.ProjectUserObjectPermission, group_perms=m.ProjectGroupObjectPermission)
    protect(
        m.RegisteredModel,
        user_perms=m.RegisteredModelUserObjectPermission,
        group_perms=m.RegisteredModelGroupObjectPermission,
        parent_field="project",
    )
    protect(
        m.Endpoint,
        user_perms=m.EndpointUserObjectPermission,
        group_perms=m.EndpointGroupObjectPermission,
        parent_field="project",
    )
