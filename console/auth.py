"""Authentication backend: Django's model backend, minus service accounts."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.backends import ModelBackend

from console.permissions import is_platform_admin

# Who may sign in with a console password (LOCAL_PASSWORD_SIGN_IN): everyone, or only the
# break-glass admins (superusers and Platform admins) once sign-in goes through a provider.
LOCAL_PASSWORDS_EVERYONE = "everyone"
LOCAL_PASSWORDS_ADMINS = "admins"


def local_passwords_allowed_for(user) -> bool:
    if getattr(settings, "LOCAL_PASSWORD_SIGN_IN", LOCAL_PASSWORDS_EVERYONE) == LOCAL_PASSWORDS_EVERYONE:
        return True
    return bool(user.is_superuser or is_platform_admin(user))


class ConsoleModelBackend(ModelBackend):
    """Password logins for people only.

    Service accounts exist for automation and authenticate with API tokens; refusing them
    here means a leaked or guessed password can never open an interactive session. With
    ``LOCAL_PASSWORD_SIGN_IN=admins`` only superusers and Platform admins keep password sign-in
    (break glass when the identity provider is down); everyone else signs in through it.
    """

    def user_can_authenticate(self, user) -> bool:
        return (super().user_can_authenticate(user) and not getattr(user, "is_service_account", False)
                and local_passwords_allowed_for(user))


# Bearer tokens are issued and checked by the access app; framework code and lower layers
# (the audit trail's ingest receivers) authenticate through this hook without importing it.
_bearer_authenticator = None


def register_bearer_authenticator(authenticator) -> None:
    """``authenticator(authorization_header) -> (user, token) | None``; ``token.has_scope(name)``
    tells what the token may do. Called once by the access app at startup."""
    global _bearer_authenticator
    _bearer_authenticator = authenticator


def authenticate_bearer(authorization_header: str | None):
    """The (user, token) an ``Authorization: Bearer …`` header stands for, or None."""
    if _bearer_authenticator is None or not authorization_header:
        return None
    return _bearer_authenticator(authorization_header)
