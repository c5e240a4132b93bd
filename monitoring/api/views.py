"""``/api/v1/endpoints/<id>/latency/``, ``.../drift/`` and ``.../monitoring/``: what the
dashboards show, as data, through the same selectors. Each view finds the endpoint with the
framework's scoped base (``ProtectedViewSetMixin``): 404 for an endpoint the caller cannot
see; changing the drift settings needs deploy on it (403 otherwise)."""

from __future__ import annotations

import math

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response

from console.api.viewsets import ProtectedViewSetMixin
from endpoints.selectors import endpoint_queryset
from monitoring import selectors, services
from monitoring.api.serializers import DriftSerializer, LatencySerializer, MonitoringConfigSerializer
from monitoring.models import FeatureDrift

RANGE = OpenApiParameter("range", OpenApiTypes.STR, enum=list(selectors.RANGES),
                         description=f"Time range ending now (default {selectors.DEFAULT_RANGE}).")


def _number(value) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def _range(request) -> str:
    key = request.query_params.get("range", "")
    return key if key in selectors.RANGES else selectors.DEFAULT_RANGE


class EndpointMonitoringView(ProtectedViewSetMixin, GenericAPIView):
    """A monitoring answer about the endpoint the URL names (``pk``), found among those the
    caller may see; writes need ``deploy`` on it."""

    queryset = endpoint_queryset()


class EndpointLatencyView(EndpointMonitoringView):
    """Requests, errors and latency percentiles per model version (from rollups)."""

    @extend_schema(summary="Latency of an endpoint", parameters=[RANGE], responses=LatencySerializer)
    def get(self, request, pk: int):
        range_key = _range(request)
        dashboard = selectors.latency_dashboard(endpoint=self.get_object(), range_key=range_key)
        window = dashboard.window
        versions = []
        for version in dashboard.versions:
            totals = version.totals
            versions.append({
                "model_version": version.key or None, "role": version.role, "label": version.label,
                "totals": {"requests": totals["requests"], "errors": totals["errors"],
                           "error_rate_percent": totals["error_rate"], "requests_per_second": totals["rps"],
                           "p50_ms": totals["p50"], "p95_ms": totals["p95"], "p99_ms": totals["p99"],
                           "mean_ms": totals["mean"], "prompt_tokens": totals["prompt_tokens"],
                           "completion_tokens": totals["completion_tokens"]},
                "series": [
                    {"time": moment, "requests": int(version.requests[i]), "errors": int(version.errors[i]),
                     "p50_ms": _number(version.percentiles[i, 0]), "p95_ms": _number(version.percentiles[i, 1]),
                     "p99_ms": _number(version.percentiles[i, 2])}
                    for i, moment in enumerate(window.times) if version.requests[i]
                ],
            })
        data = {"endpoint": dashboard.endpoint.pk, "range": range_key, "start": window.start, "end": window.end,
                "step_seconds": window.step, "logger_note": dashboard.note, "versions": versions,
                "cold_starts": [{"time": c.time, "revision": c.revision, "seconds": c.seconds, "message": c.message}
                                for c in dashboard.cold_starts],
                "cold_start_error": dashboard.cold_start_error}
        return Response(LatencySerializer(data).data)


def _window(window, features) -> dict:
    return {"start": window.start, "end": window.end, "rows": window.rows, "status": window.status,
            "max_psi": window.max_psi, "top_feature": window.top_feature,
            "features": [{"feature": f.feature, "is_prediction": f.is_prediction, "psi": f.psi, "js": f.js,
                          "ks": f.ks, "rows": f.rows, "status": f.status} for f in features]}


class EndpointDriftView(EndpointMonitoringView):
    """Drift windows of the endpoint's primary version (or ``?version=`` its canary)."""

    @extend_schema(summary="Drift of an endpoint", parameters=[
        RANGE, OpenApiParameter("version", OpenApiTypes.INT, description="ModelVersion id (primary or canary)."),
    ], responses=DriftSerializer)
    def get(self, request, pk: int):
        range_key = _range(request)
        dashboard = selectors.drift_dashboard(endpoint=self.get_object(), range_key=range_key,
                                              version_id=request.query_params.get("version"))
        by_window: dict[int, list] = {w.pk: [] for w in dashboard.windows}
        for feature in FeatureDrift.objects.filter(window__in=list(by_window)).order_by("-psi"):
            by_window[feature.window_id].append(feature)
        data = {
            "endpoint": dashboard.endpoint.pk, "model_version": dashboard.version.pk, "role": dashboard.role,
            "range": range_key, "config": MonitoringConfigSerializer(dashboard.config).data,
            "latest": _window(dashboard.latest, by_window[dashboard.latest.pk]) if dashboard.latest else None,
            "windows": [_window(w, by_window[w.pk]) for w in dashboard.windows],
        }
        return Response(DriftSerializer(data).data)


class EndpointMonitoringConfigView(EndpointMonitoringView):
    """An endpoint's drift thresholds, window and minimum rows per window."""

    @extend_schema(summary="Monitoring settings of an endpoint", responses=MonitoringConfigSerializer)
    def get(self, request, pk: int):
        return Response(MonitoringConfigSerializer(services.config_for(self.get_object())).data)

    @extend_schema(summary="Change the monitoring settings of an endpoint", request=MonitoringConfigSerializer,
                   responses=MonitoringConfigSerializer)
    def patch(self, request, pk: int):
        endpoint = self.get_object()
        serializer = MonitoringConfigSerializer(services.config_for(endpoint), data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        config = services.monitoring_config_update(actor=request.user, endpoint=endpoint, **serializer.validated_data)
        return Response(MonitoringConfigSerializer(config).data)
