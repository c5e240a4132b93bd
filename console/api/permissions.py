"""DRF permission classes built on the chokepoint (console/permissions.py).

Stock ``DjangoObjectPermissions``/guardian know nothing of project inheritance or grant
expiry, so API views use these instead:

- ``ChokepointPermission`` checks the object's action per method: ``view`` for safe
  methods, ``view.write_action`` (default ``deploy``) otherwise; a view may map its DRF
  actions with ``action_permissions = {"revoke": "manage"}``. The rows are scoped before
  that by the base viewsets (``console.api.viewsets``), so an invisible object is already a
  404 and a visible one without the action is a 403.
- ``IsPlatformAdmin``: platform admins only.
"""

from __future__ import annotations

from rest_framework.permissions import SAFE_METHODS, BasePermission

from console.permissions import can, is_platform_admin


def required_action(request, view) -> str:
    mapped = getattr(view, "action_permissions", {}).get(getattr(view, "action", None))
    if mapped:
        return mapped
    return "view" if request.method in SAFE_METHODS else getattr(view, "write_action", "deploy")


class ChokepointPermission(BasePermission):
    """Object-level check through the chokepoint (project grants and expiry included)."""

    message = "You may not do this on this object."

    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.is_authenticated)

    def has_object_permission(self, request, view, obj) -> bool:
        action = required_action(request, view)
        return action == "view" or can(request.user, obj, action)


class IsPlatformAdmin(BasePermission):
    message = "Only platform admins may do this."

    def has_permission(self, request, view) -> bool:
        return is_platform_admin(request.user)
