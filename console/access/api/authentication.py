"""DRF authentication with the console's API tokens (``Authorization: Bearer icn_...``).

A token is the user's identity limited by its scopes:

- ``read``: safe methods (GET, HEAD, OPTIONS);
- ``deploy``: writes (endpoints, the model registry, everything the user may change);
- ``ingest``: the ingest receivers (views that declare ``required_token_scope = "ingest"``);
- ``infer``: only the inference authorization endpoint (``console.access.authz``), never the API.

A view may name the one scope it needs with ``required_token_scope``, or refuse token
authentication for writes with ``token_writes_allowed = False`` (the token routes: a token
never mints or revokes tokens). A token lacking the scope gets 403; an unknown, expired or
revoked token, or one of a deactivated user, 401 (``WWW-Authenticate: Bearer``).
"""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions
from rest_framework.permissions import SAFE_METHODS

from console.access import tokens


def required_scope(request, view) -> str:
    declared = getattr(view, "required_token_scope", None) if view is not None else None
    if declared:
        return declared
    return "read" if request.method in SAFE_METHODS else "deploy"


class ApiTokenAuthentication(authentication.BaseAuthentication):
    """Bearer tokens for the API; scope checked against the request (403 when lacking)."""

    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header or tokens.bearer_value(header) is None:
            if header.lower().startswith("bearer"):
                raise exceptions.AuthenticationFailed("Malformed bearer token.")
            return None
        result = tokens.authenticate_bearer(header)
        if result is None:
            raise exceptions.AuthenticationFailed("Invalid, expired or revoked token.")
        user, token = result
        view = (getattr(request, "parser_context", None) or {}).get("view")
        scope = required_scope(request, view)
        if not token.has_scope(scope):
            raise exceptions.PermissionDenied(f"This token lacks the '{scope}' scope.")
        if (
            view is not None
            and request.method not in SAFE_METHODS
            and not getattr(view, "token_writes_allowed", True)
        ):
            raise exceptions.PermissionDenied("Sign in to do this; API tokens cannot.")
        return user, token

    def authenticate_header(self, request) -> str:
        return self.keyword


class ApiTokenScheme(OpenApiAuthenticationExtension):
    """How the OpenAPI document describes the token authentication."""

    target_class = "console.access.api.authentication.ApiTokenAuthentication"
    name = "apiToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A console API token (icn_...). Its scopes limit it: read for GET, deploy for writes.",
        }
