"""``/api/v1/alerts/``: reconciler alerts with their lifecycle, and acknowledging or resolving
one (platform admins only; ``docs/signals.md``)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers
from rest_framework.decorators import action
from rest_framework.response import Response

from console.api.permissions import ChokepointPermission, IsPlatformAdmin
from console.api.viewsets import ProtectedGenericViewSet
from endpoints.models import ReconcileAlert
from endpoints.services.alerts import alert_acknowledge, alert_resolve


class ReconcileAlertSerializer(serializers.ModelSerializer):
    cluster = serializers.CharField(source="cluster.name", read_only=True)
    acknowledged_by = serializers.CharField(source="acknowledged_by.username", read_only=True, default=None)
    resolved_by = serializers.CharField(source="resolved_by.username", read_only=True, default=None)

    class Meta:
        model = ReconcileAlert
        fields = ["id", "cluster", "kind", "state", "message", "details", "first_seen_at", "last_seen_at",
                  "acknowledged_at", "acknowledged_by", "resolved_at", "resolved_by"]
        read_only_fields = fields


class AlertActionSerializer(serializers.Serializer):
    changed = serializers.BooleanField(help_text="False when the alert was already in that state (nothing recorded).")
    alert = ReconcileAlertSerializer()


class ReconcileAlertViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ProtectedGenericViewSet):
    """Reconciler alerts, newest first; ``?state=open|acknowledged|resolved``."""

    serializer_class = ReconcileAlertSerializer
    permission_classes = [ChokepointPermission, IsPlatformAdmin]

    def get_base_queryset(self):
        queryset = ReconcileAlert.objects.select_related("cluster", "acknowledged_by", "resolved_by").order_by(
            "-last_seen_at", "-pk")
        state = self.request.query_params.get("state")
        return queryset.filter(state=state) if state in ReconcileAlert.State.values else queryset

    def _answer(self, changed: bool, alert: ReconcileAlert) -> Response:
        alert.refresh_from_db()
        return Response({"changed": changed, "alert": ReconcileAlertSerializer(alert).data})

    @extend_schema(request=None, responses=AlertActionSerializer)
    @action(detail=True, methods=["post"])
    def acknowledge(self, request, pk=None):
        alert = self.get_object()
        return self._answer(alert_acknowledge(actor=request.user, alert=alert), alert)

    @extend_schema(request=None, responses=AlertActionSerializer)
    @action(detail=True, methods=["post"])
    def resolve(self, request, pk=None):
        alert = self.get_object()
        return self._answer(alert_resolve(actor=request.user, alert=alert), alert)


def register(router) -> None:
    router.register("alerts", ReconcileAlertViewSet, basename="api-alert")


extra_urlpatterns: list = []
