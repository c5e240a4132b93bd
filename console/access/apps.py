from django.apps import AppConfig
from django.db.models.signals import post_migrate


class AccessConfig(AppConfig):
    name = "console.access"
    label = "access"
    verbose_name = "Access control"

    def ready(self) -> None:
        from console import auth, permissions
        from console.access import roles, signals, tokens  # noqa: F401  (signals: sign-in audit receivers)
        from console.access.authz import cache as authz_cache
        from console.access.evaluation import GuardianGrantEvaluator

        # The framework's chokepoint and bearer hook answer through access control.
        permissions.register_grant_evaluator(GuardianGrantEvaluator())
        auth.register_bearer_authenticator(tokens.authenticate_bearer)
        post_migrate.connect(roles.ensure_global_roles_after_migrate, sender=self)
        # Changes made outside the services (Django admin, guardian shortcuts) drop cached
        # inference-authorization decisions too.
        authz_cache.connect_signals()
        from console.access.authz.allows import staged_allow_families
        from console.metrics import register_collector

        # Allows committed but not yet in the trail: a stopped drain shows on /metrics.
        register_collector(staged_allow_families)
        # A web process answers /authz/check: its allow journal's shipper starts with it and
        # takes over the journals of killed workers (console/access/authz/journal.py).
        from console.access.authz import journal
        from console.serving import on_serving

        on_serving(journal.start)
        # "Try it" on the endpoint page (the endpoints app shows panels registered here).
        from console.access import try_it
        from endpoints.views.endpoint import register_overview_panel

        register_overview_panel(try_it.overview_panel)
        from console.access.models import ExternalIdentity
        from console.crypto import register_encrypted_column

        register_encrypted_column(ExternalIdentity, "refresh_token_ciphertext")
