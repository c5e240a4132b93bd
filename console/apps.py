from django.apps import AppConfig


class ConsoleConfig(AppConfig):
    """The framework: settings, middleware, the permission chokepoint's interface, base views
    and viewsets, the API's error shape, Celery, health checks and the user model. It imports
    no other app of the project (docs/architecture.md, tests/test_layers.py)."""

    name = "console"
    verbose_name = "Console"

    def ready(self) -> None:
        from console import checks  # noqa: F401  (registers the encryption-key check)
