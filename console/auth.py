"""Authentication backend: Django's model backend, minus service accounts."""

from __future__ import annotations

from django.contrib.auth.backends import ModelBackend


class ConsoleModelBackend(ModelBackend):
    """Password logins for people only.

    Service accounts exist for automation and authenticate with API tokens; refusing them
    here means a leaked or guessed password can never open an interactive session.
    """

    def user_can_authenticate(self, user) -> bool:
        return super().user_can_authenticate(user) and not getattr(user, "is_service_account", False)
