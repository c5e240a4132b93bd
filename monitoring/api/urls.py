"""``/api/v1/`` routes of the monitoring app."""

from django.urls import path

from monitoring.api import rollouts, views

urlpatterns = [
    path("endpoints/<id:pk>/latency/", views.EndpointLatencyView.as_view(), name="api-endpoint-latency"),
    path("endpoints/<id:pk>/drift/", views.EndpointDriftView.as_view(), name="api-endpoint-drift"),
    path("endpoints/<id:pk>/monitoring/", views.EndpointMonitoringConfigView.as_view(),
         name="api-endpoint-monitoring"),
    path("endpoints/<id:pk>/rollouts/", rollouts.EndpointRolloutsView.as_view(), name="api-endpoint-rollouts"),
    path("endpoints/<id:pk>/rollouts/pause/", rollouts.RolloutPauseView.as_view(), name="api-endpoint-rollout-pause"),
    path("endpoints/<id:pk>/rollouts/resume/", rollouts.RolloutResumeView.as_view(),
         name="api-endpoint-rollout-resume"),
    path("endpoints/<id:pk>/rollouts/abort/", rollouts.RolloutAbortView.as_view(), name="api-endpoint-rollout-abort"),
    path("endpoints/<id:pk>/rollouts/skip/", rollouts.RolloutSkipView.as_view(), name="api-endpoint-rollout-skip"),
    path("endpoints/<id:pk>/rollout-policy/", rollouts.EndpointRolloutPolicyView.as_view(),
         name="api-endpoint-rollout-policy"),
    path("projects/<id:pk>/rollout-policy/", rollouts.ProjectRolloutPolicyView.as_view(),
         name="api-project-rollout-policy"),
]
