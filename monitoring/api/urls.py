"""``/api/v1/`` routes of the monitoring app."""

from django.urls import path

from monitoring.api import rollouts, views

urlpatterns = [
    path("endpoints/<id:pk>/latency/", views.EndpointLatencyView.as_view(), name="api-endpoint-latency"),
    path("endpoints/<id:pk>/drift/", views.EndpointDriftView.as_view(), name="api-endpoint-drift"),
    path("endpoints/<id:pk>/monitoring/", views.EndpointMonitoringConfigView.as_view(),
         name="api-endpoint-monitoring"),
    path("endpoints/<int:pk>/rollouts/", rollouts.EndpointRolloutsView.as_view(), name="api-endpoint-rollouts"),
    path("endpoints/<int:pk>/rollouts/pause/", rollouts.RolloutPauseView.as_view(), name="api-endpoint-rollout-pause"),
    path("endpoints/<int:pk>/rollouts/resume/", rollouts.RolloutResumeView.as_view(),
         name="api-endpoint-rollout-resume"),
    path("endpoints/<int:pk>/rollouts/abort/", rollouts.RolloutAbortView.as_view(), name="api-endpoint-rollout-abort"),
    path("endpoints/<int:pk>/rollouts/skip/", rollouts.RolloutSkipView.as_view(), name="api-endpoint-rollout-skip"),
    path("endpoints/<int:pk>/rollout-policy/", rollouts.EndpointRolloutPolicyView.as_view(),
         name="api-endpoint-rollout-policy"),
    path("projects/<int:pk>/rollout-policy/", rollouts.ProjectRolloutPolicyView.as_view(),
         name="api-project-rollout-policy"),
]
