from django.apps import AppConfig


class EndpointsConfig(AppConfig):
    name = "endpoints"
    verbose_name = "Endpoints and model registry"

    def ready(self) -> None:
        from endpoints import access_rules

        access_rules.register()
