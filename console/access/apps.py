from django.apps import AppConfig


class AccessConfig(AppConfig):
    name = "console.access"
    label = "access"
    verbose_name = "Access control"

    def ready(self) -> None:
        from console import permissions
        from console.access.evaluation import GuardianGrantEvaluator

        permissions.register_grant_evaluator(GuardianGrantEvaluator())

        from console import auth, tokens

        auth.register_bearer_authenticator(tokens.authenticate_bearer)
