from django.apps import AppConfig
from django.db.models.signals import post_migrate


class ConsoleConfig(AppConfig):
    name = "console"
    verbose_name = "Console"

    def ready(self) -> None:
        from console import roles, signals  # noqa: F401  (connects the auth audit receivers)

        post_migrate.connect(roles.ensure_global_roles_after_migrate, sender=self)
        # Changes made outside the services (Django admin, guardian shortcuts) drop cached
        # inference-authorization decisions too.
        from console import authz

        authz.connect_signals()
