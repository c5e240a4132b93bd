from django.apps import AppConfig


class EndpointsConfig(AppConfig):
    name = "endpoints"
    verbose_name = "Endpoints and model registry"

    def ready(self) -> None:
        from console.permissions import protect
        from endpoints import models as m

        # Actions shared by all three: view, deploy, infer, manage (console/permissions.py).
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
