"""``user.has_perm(perm, obj)`` that agrees with the permission chokepoint.

Guardian's ``ObjectPermissionBackend`` reads its tables directly and knows nothing of grant
expiry or project inheritance, so a call such as ``user.has_perm("endpoints.deploy_endpoint",
endpoint)`` would answer differently from every page and API. This backend answers object
permissions of protected models with ``console.permissions.can`` instead; model-level
permissions (no ``obj``) are left to Django's model backend.
"""

from __future__ import annotations

from console.permissions import actions_of, can, is_protected, is_signed_in


class GrantPermissionBackend:
    """Authenticates nobody; answers ``has_perm`` for objects of protected models."""

    def authenticate(self, request, **credentials):
        return None

    def has_perm(self, user_obj, perm: str, obj=None) -> bool:
        if obj is None or not is_protected(type(obj)) or not is_signed_in(user_obj):
            return False
        app_label, _, codename = perm.partition(".")
        meta = type(obj)._meta
        suffix = f"_{meta.model_name}"
        if app_label != meta.app_label or not codename.endswith(suffix):
            return False
        return can(user_obj, obj, codename[: -len(suffix)])

    def get_all_permissions(self, user_obj, obj=None) -> set[str]:
        if obj is None or not is_protected(type(obj)) or not is_signed_in(user_obj):
            return set()
        meta = type(obj)._meta
        return {f"{meta.app_label}.{a}_{meta.model_name}" for a in actions_of(type(obj)) if can(user_obj, obj, a)}
