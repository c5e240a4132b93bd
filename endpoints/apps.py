from django.apps import AppConfig


class EndpointsConfig(AppConfig):
    name = "endpoints"
    verbose_name = "Endpoints and model registry"

    def ready(self) -> None:
        from endpoints import access_rules

        access_rules.register()

        # Audit is a lower layer: it learns about projects and endpoints from this directory.
        from audit.directory import register_directory
        from endpoints.audit_directory import ProjectDirectory

        register_directory(ProjectDirectory())
