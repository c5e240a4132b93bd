"""UI routes of the monitoring app (namespace ``monitoring``): the platform overview and the
endpoint Latency, Drift and Rollout tabs, each with its JSON for auto-refresh, and the
Rollout tab's controls."""

from monitoring.rollout_views import urlpatterns as rollout_urlpatterns
from monitoring.views import urlpatterns as dashboard_urlpatterns

app_name = "monitoring"

urlpatterns = [*dashboard_urlpatterns, *rollout_urlpatterns]
