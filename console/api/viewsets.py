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
from console.permissions import ChokepointScoped


class ProtectedViewSetMixin(ChokepointScoped):
    """``visibility_action``: what a row must allow to be listed (``view``)."""

    visibility_action = "view"
    _scoping_base = True
    permission_classes = [ChokepointPermission]

    def get_queryset(self):
        return self.restrict_rows(self.get_base_queryset(), self.visibility_action)


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
