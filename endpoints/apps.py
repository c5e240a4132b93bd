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

        # Storage-connection secrets are encrypted at rest; the key-rotation command re-encrypts them.
        from console.crypto import register_encrypted_column
        from endpoints.models import Cluster, NotificationChannel, StorageConnection

        register_encrypted_column(StorageConnection, "secret_ciphertext")
        register_encrypted_column(NotificationChannel, "secret_ciphertext")
        register_encrypted_column(Cluster, "api_token_ciphertext")

        # Scrape-time metrics: unresolved reconciler alerts (console/metrics.py).
        from console.metrics import register_collector
        from endpoints.selectors import alert_metric_families

        register_collector(alert_metric_families)
