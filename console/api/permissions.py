"""DRF permission class and filter backend built on the chokepoint (console/permissions.py).

Stock ``DjangoObjectPermissions``/guardian filters know nothing of project inheritance or
grant expiry, so API views use these instead:

- ``ChokepointFilterBackend`` filters the queryset to the rows the user may
  ``view.visibility_action`` (default ``view``) in SQL, before pagination;
- ``ChokepointPermission`` checks the object's action per method: ``view`` for safe
  methods, ``view.write_action`` (default ``deploy``) otherwise; a view may map its DRF
  actions with ``action_permissions = {"revoke": "manage"}``. Because the object was found
  through the filter backend, an invisible object is already a 404 and a visible one without
  the action is a 403.
- ``IsPlatformAdmin``: platform admins only.
"""

from __future__ import annotations

from rest_framework.filters import BaseFilterBackend
from rest_framework.permissions import SAFE_METHODS, BasePermission

from console.permissions import can, is_platform_admin, visible


class ChokepointFilterBackend(BaseFilterBackend):
    """Rows the user may see (or ``view.visibility_action``)."""

    def filter_queryset(self, request, queryset, view):
        return visible(queryset, request.user, getattr(view, "visibility_action", "view"))


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
