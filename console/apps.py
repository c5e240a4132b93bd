from django.apps import AppConfig


class ConsoleConfig(AppConfig):
    """The framework: settings, middleware, the permission chokepoint's interface, base views
    and viewsets, the API's error shape, Celery, health checks and the user model. It imports
    no other app of the project (docs/architecture.md, tests/test_layers.py)."""

    name = "console"
    verbose_name = "Console"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate
        from django.urls import register_converter

        from console.ids import IdConverter

        # <id:pk> in every URLconf: ids in the database's range only (console/ids.py).
        register_converter(IdConverter, "id")

        from console import checks  # noqa: F401  (registers the encryption-key check)

        post_migrate.connect(_store_encryption_check, sender=self)

        from console import metrics

        metrics.register_collector(metrics.task_queue_families)
        from console import heartbeats

        metrics.register_collector(heartbeats.metric_families)


def _store_encryption_check(sender, using="default", **kwargs) -> None:
    """After the first migrate, store the check value the next start-up decrypts (console/crypto.py)."""
    from console import crypto

    if using == "default":
        crypto.verify_keys()
