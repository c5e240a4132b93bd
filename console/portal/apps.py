from django.apps import AppConfig


class PortalConfig(AppConfig):
    """The top layer: the home page by persona, the admin overview, the demo seed and the
    local stack (``make run``), and the root URLconf that puts every app's routes together."""

    name = "console.portal"
    label = "portal"
    verbose_name = "Portal"

    def ready(self) -> None:
        # The Django admin: read-only, no page that changes access (console/portal/django_admin.py).
        from console.portal import django_admin

        django_admin.lock_down()
