from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    name = "monitoring"

    def ready(self) -> None:
        from monitoring import access_rules

        access_rules.register()

        # Scrape-time metrics: endpoints whose latest drift verdict is an alert (console/metrics.py).
        from console.metrics import register_collector
        from monitoring.selectors import drift_alert_metric_families

        register_collector(drift_alert_metric_families)
