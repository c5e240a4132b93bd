"""UI routes of the monitoring app (namespace ``monitoring``): the platform overview and the
endpoint Latency and Drift tabs, each with its JSON for auto-refresh."""

from monitoring.views import urlpatterns as dashboard_urlpatterns

app_name = "monitoring"

urlpatterns = [*dashboard_urlpatterns]
