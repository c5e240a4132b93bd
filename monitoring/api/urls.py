"""``/api/v1/`` routes of the monitoring app."""

from django.urls import path

from monitoring.api import views

urlpatterns = [
    path("endpoints/<id:pk>/latency/", views.EndpointLatencyView.as_view(), name="api-endpoint-latency"),
    path("endpoints/<id:pk>/drift/", views.EndpointDriftView.as_view(), name="api-endpoint-drift"),
    path("endpoints/<id:pk>/monitoring/", views.EndpointMonitoringConfigView.as_view(),
         name="api-endpoint-monitoring"),
]
