"""Dashboard pages and their JSON (namespace ``monitoring``).

Each dashboard is one page (server-rendered, with its figures embedded through
``json_script``) and one JSON URL returning the same figures, which ``static/js/dashboards.js``
polls for auto-refresh and the range picker. Both go through the same selector, so a user who
cannot see an endpoint gets 404 from either.

Content-Security-Policy: the console forbids inline styles. plotly.js needs two narrow
exceptions, granted on dashboard pages only: EMPTY ``<style>`` elements (it creates them empty,
then fills them through the CSSOM, which CSP does not govern) and EMPTY ``style`` attributes
(it clears colour-bar styles with ``style=""``). Both are the hash of the empty string with
``'unsafe-hashes'``, so no inline style with any content can apply. Scripts stay
``'self'`` only. The stylesheet plotly.js would inject for map traces is skipped through its
own id guard (``monitoring.staticfiles``).
"""

from __future__ import annotations

from csp.decorators import csp_update
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import ValidationError
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import path, reverse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.views import View

from console.views.base import ProtectedDetailView
from endpoints.views.endpoint import EndpointPageMixin, endpoint_frame
from monitoring import figures, selectors, services
from monitoring.forms import MonitoringConfigForm
from monitoring.staticfiles import PLOTLY_JS, plotly_style_guard_ids

EMPTY_INLINE_STYLE = "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='"  # SHA-256 of ""
dashboard_csp = method_decorator(csp_update({"style-src": ["'unsafe-hashes'", EMPTY_INLINE_STYLE]}), name="get")

def _panel(name: str, title: str, data: dict, description: str = "", *, wide: bool = False) -> dict | None:
    if name not in data["figures"]:
        return None
    return {"name": name, "title": title, "description": description, "wide": wide,
            "has_figure": data["figures"][name] is not None, "empty": data["empty"].get(name, "")}


def _dashboard_context(request, data: dict, data_url: str, range_key: str) -> dict:
    return {
        "dashboard_data": data,
        "data_url": data_url,
        "ranges": [(key, option.label) for key, option in selectors.RANGES.items()],
        "range_key": range_key,
        "refresh_seconds": settings.MONITORING_REFRESH_SECONDS,
        "plotly_js": PLOTLY_JS,
        "plotly_style_guard_ids": plotly_style_guard_ids(),
    }


def _json(data: dict, fragments: dict[str, str]) -> JsonResponse:
    return JsonResponse({**data, "fragments": fragments, "updated": timezone.now().isoformat()},
                        headers={"Cache-Control": "no-store"})


def _range_key(request) -> str:
    key = request.GET.get("range", "")
    return key if key in selectors.RANGES else selectors.DEFAULT_RANGE


class EndpointDashboardView(EndpointPageMixin, ProtectedDetailView):
    """A monitoring tab of the endpoint the URL names, found among those the user may see
    (404 otherwise, for the page and its JSON alike); ``json``: the JSON twin."""

    json = False


@dashboard_csp
class EndpointLatencyView(EndpointDashboardView):
    """Latency tab: p50/p95/p99, requests per second and error rate per model version."""

    def get(self, request, project, name):
        range_key = _range_key(request)
        dashboard = selectors.latency_dashboard(endpoint=self.get_object(), range_key=range_key)
        data = figures.latency_figures(dashboard)
        summary = render_to_string("monitoring/_latency_summary.html", {"dashboard": dashboard}, request=request)
        if self.json:
            return _json(data, {"summary": summary})
        kwargs = {"project": project, "name": name}
        panels = [
            _panel("latency", "Latency percentiles", data,
                   "p50, p95 and p99 of the time between the logged request and response, per model version "
                   "(primary and canary side by side).", wide=True),
            _panel("throughput", "Requests per second", data, "Logged requests per model version."),
            _panel("errors", "Error rate", data,
                   "Requests the model never answered with HTTP 200 (the payload logger logs only those responses)."),
            _panel("prometheus", "From Prometheus", data,
                   "The same measures from KServe / Knative metrics, for comparison.", wide=True),
        ]
        context = {
            **endpoint_frame(request, dashboard.endpoint),
            **_dashboard_context(request, data, reverse("monitoring:endpoint-latency-data", kwargs=kwargs), range_key),
            "dashboard": dashboard, "summary": summary, "panels": [p for p in panels if p],
            "dashboard_kind": "latency",
        }
        return render(request, "monitoring/endpoint_latency.html", context)


def drift_page(request, endpoint, *, json: bool = False, config_form=None, status=200):
    """The Drift tab (or its JSON); ``config_form``: the drift settings as just submitted, with
    their errors."""
    range_key = _range_key(request)
    dashboard = selectors.drift_dashboard(endpoint=endpoint, range_key=range_key,
                                          version_id=request.GET.get("version"), feature=request.GET.get("feature"))
    data = figures.drift_figures(dashboard)
    kwargs = {"project": endpoint.project.name, "name": endpoint.name}
    summary = render_to_string("monitoring/_drift_summary.html", {"dashboard": dashboard}, request=request)
    if json:
        return _json(data, {"summary": summary})
    frame = endpoint_frame(request, dashboard.endpoint)
    panels = [
        _panel("heatmap", "PSI per feature and window", data,
               "Population stability index of each feature against the reference, one column per window.",
               wide=True),
        _panel("top_features", "Top drifting features", data, "Latest window with enough rows, highest PSI first."),
        _panel("distribution", "Reference vs live distribution", data,
               "Share of rows per reference bin, over the chosen range."),
        _panel("prediction_trend", "Prediction drift", data, "PSI and Jensen–Shannon distance of the prediction."),
        _panel("prediction_distribution", "Prediction distribution", data,
               "Share of predictions per reference bin, over the chosen range."),
    ]
    form = config_form
    if form is None and frame["can_deploy"]:
        form = MonitoringConfigForm(instance=dashboard.config)
    context = {
        **frame,
        **_dashboard_context(request, data, reverse("monitoring:endpoint-drift-data", kwargs=kwargs), range_key),
        "dashboard": dashboard, "summary": summary, "panels": [p for p in panels if p], "config_form": form,
        "dashboard_kind": "drift",
    }
    return render(request, "monitoring/endpoint_drift.html", context, status=status)


@dashboard_csp
class EndpointDriftView(EndpointDashboardView):
    """Drift tab: feature × window heatmap of PSI, top drifting features, reference vs live
    distribution of a chosen feature, and drift of the prediction."""

    def get(self, request, project, name):
        return drift_page(request, self.get_object(), json=self.json)


@method_decorator(csp_update({"style-src": ["'unsafe-hashes'", EMPTY_INLINE_STYLE]}), name="post")
class EndpointDriftSettingsView(EndpointPageMixin, ProtectedDetailView):
    """Change an endpoint's drift thresholds and window (needs deploy on the endpoint). A
    refused change shows the tab again with the values as typed and the errors beside them."""

    permission_action = "deploy"
    http_method_names = ["post"]

    def post(self, request, project, name):
        endpoint = self.get_object()
        form = MonitoringConfigForm(request.POST, instance=services.config_for(endpoint))
        target = reverse("monitoring:endpoint-drift", kwargs={"project": project, "name": name})
        if form.is_valid():
            try:
                services.monitoring_config_update(actor=request.user, endpoint=endpoint, **{
                    field: form.cleaned_data[field] for field in services.CONFIG_FIELDS})
            except ValidationError as exc:
                form.add_error(None, exc)
        if form.errors:
            messages.error(request, "The drift settings were not saved: see the errors below.")
            return drift_page(request, endpoint, config_form=form, status=400)
        messages.success(request, "Drift settings saved; stored windows are recomputed within a minute.")
        return redirect(target)


@dashboard_csp
class OverviewView(LoginRequiredMixin, View):
    """Platform overview: endpoints by phase, accelerators requested vs capacity, busiest
    endpoints, endpoints in drift alert — over the endpoints the user may see."""

    json = False

    def get(self, request):
        range_key = _range_key(request)
        overview = selectors.platform_overview(user=request.user, range_key=range_key)
        data = figures.overview_figures(overview)
        alerts = render_to_string("monitoring/_overview_alerts.html", {"overview": overview}, request=request)
        if self.json:
            return _json(data, {"summary": alerts})
        scope = "every endpoint" if overview.all_endpoints else "the endpoints you can see"
        panels = [
            _panel("phases", "Endpoints by phase", data, f"Observed phase of {scope}."),
            _panel("accelerators", "Accelerators requested vs capacity", data,
                   f"Accelerators requested by {scope} at their minimum and maximum replicas, per hardware profile, "
                   "against the profile's capacity."),
            _panel("busiest", "Busiest endpoints", data, "Logged requests in the range (hourly totals).", wide=True),
        ]
        context = {
            **_dashboard_context(request, data, reverse("monitoring:overview-data"), range_key),
            "title": "Platform overview", "overview": overview, "summary": alerts,
            "panels": [p for p in panels if p], "dashboard_kind": "overview",
        }
        return render(request, "monitoring/overview.html", context)


_ENDPOINT = "endpoints/<slug:project>/<slug:name>/"

urlpatterns = [
    path("dashboards/", OverviewView.as_view(), name="overview"),
    path("dashboards/data/", OverviewView.as_view(json=True), name="overview-data"),
    path(_ENDPOINT + "latency/", EndpointLatencyView.as_view(), name="endpoint-latency"),
    path(_ENDPOINT + "latency/data/", EndpointLatencyView.as_view(json=True), name="endpoint-latency-data"),
    path(_ENDPOINT + "drift/", EndpointDriftView.as_view(), name="endpoint-drift"),
    path(_ENDPOINT + "drift/data/", EndpointDriftView.as_view(json=True), name="endpoint-drift-data"),
    path(_ENDPOINT + "drift/settings/", EndpointDriftSettingsView.as_view(), name="endpoint-drift-settings"),
]
