"""Base API viewsets that apply the permission chokepoint themselves (NetBox's shape).

``ProtectedViewSetMixin`` scopes ``get_queryset()`` through ``console.permissions.restrict``
for the request's user before list, retrieve or any detail action runs, and checks the
object's action with ``ChokepointPermission`` (invisible → 404, visible without the action →
403). A viewset written the default way — ``queryset = …`` or ``get_base_queryset()`` — is
therefore scoped without calling the chokepoint; overriding ``get_queryset`` is refused when
the class is defined, and ``chokepoint_exempt = "<why>"`` is the explicit, greppable opt-out.
"""

from __future__ import annotations

from rest_framework import mixins, viewsets

from console.api.permissions import ChokepointPermission
from console.permissions import restrict


class ProtectedViewSetMixin:
    """``visibility_action``: what a row must allow to be listed (``view``)."""

    visibility_action = "view"
    chokepoint_exempt: str | None = None
    permission_classes = [ChokepointPermission]

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "get_queryset" in cls.__dict__ and not cls.__dict__.get("chokepoint_exempt"):
            raise TypeError(
                f"{cls.__qualname__} overrides get_queryset(), which would bypass the permission "
                "chokepoint: override get_base_queryset() instead, or set chokepoint_exempt = '<why>'."
            )

    def get_base_queryset(self):
        """The rows before scoping (``queryset``)."""
        return super().get_queryset()

    def get_queryset(self):
        rows = self.get_base_queryset()
        if self.chokepoint_exempt:
            return rows
        return restrict(rows, self.request.user, self.visibility_action)


class ProtectedReadOnlyViewSet(ProtectedViewSetMixin, viewsets.ReadOnlyModelViewSet):
    """List and retrieve, scoped."""


class ProtectedGenericViewSet(ProtectedViewSetMixin, viewsets.GenericViewSet):
    """Scoped base to compose with DRF's mixins (``mixins.ListModelMixin`` …)."""


class ProtectedModelViewSet(ProtectedViewSetMixin, viewsets.ModelViewSet):
    """All of DRF's actions, scoped; writes still go through the app's services."""


__all__ = [
    "ProtectedGenericViewSet",
    "ProtectedModelViewSet",
    "ProtectedReadOnlyViewSet",
    "ProtectedViewSetMixin",
    "mixins",
]
