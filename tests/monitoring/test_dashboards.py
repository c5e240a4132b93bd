"""Dashboard pages and their JSON: what they show, who may see them, what they cost."""

from __future__ import annotations

import json
from datetime import timedelta

import numpy as np
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from monitoring import tasks
from monitoring.consumers import record_inference
from monitoring.models import MonitoringConfig
from tests.endpoints.endpoint_factories import EndpointFactory, ProjectFactory, grant
from tests.monitoring.helpers import FEATURES, monitored_endpoint, pair

pytestmark = pytest.mark.django_db


def url(name: str, endpoint, **query) -> str:
    path = reverse(f"monitoring:{name}", kwargs={"project": endpoint.project.name, "name": endpoint.name})
    return path + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")


def traffic(endpoint, *, minutes: int = 60, shift: float = 0.0, version=None, seed: int = 1, errors_every: int = 0):
    rng = np.random.default_rng(seed)
    now = timezone.now()
    pairs = []
    for minute in range(minutes):
        rows = [[float(rng.normal(5.0 + i + shift, 1.0)) for i in range(len(FEATURES))] for _ in range(3)]
        latency = None if errors_every and minute % errors_every == 0 else float(rng.lognormal(3, 0.4))
        pairs.append(pair(endpoint, at=now - timedelta(minutes=minute, seconds=30), latency_ms=latency, rows=rows,
                          predictions=[int(v) for v in rng.integers(0, 3, 3)], version=version))
    record_inference(pairs)


@pytest.fixture
def endpoint(alice):
    endpoint = monitored_endpoint(canary=True)
    grant(alice, endpoint.project, "view")
    return endpoint


def figures_of(response) -> dict:
    html = response.content.decode()
    start = html.index('<script id="dashboard-data" type="application/json">') + len(
        '<script id="dashboard-data" type="application/json">')
    return json.loads(html[start:html.index("</script>", start)])


# --- latency ----------------------------------------------------------------------------------------

def test_latency_tab_shows_percentiles_throughput_and_errors_per_version(client, alice, endpoint):
    traffic(endpoint, errors_every=10)
    traffic(endpoint, version=endpoint.canary_version, minutes=20, seed=2)
    client.force_login(alice)
    response = client.get(url("endpoint-latency", endpoint))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Primary · iris-model v1" in html and "Canary · iris-model v2 (20 %)" in html
    data = figures_of(response)
    latency = data["figures"]["latency"]
    assert [t["name"] for t in latency["data"]] == ["p50", "p95", "p99"] * 2  # primary and canary side by side
    assert latency["layout"]["yaxis"]["title"]["text"] == "Latency (ms)"
    assert all(t["type"] == "scatter" for t in latency["data"])  # SVG traces, no WebGL
    assert data["figures"]["throughput"]["layout"]["yaxis"]["title"]["text"] == "Requests per second"
    errors = data["figures"]["errors"]
    assert errors["layout"]["yaxis"]["title"]["text"] == "Requests without a response (%)"
    assert max(v for v in errors["data"][0]["y"] if v is not None) > 0
    assert "6 (10.00 %)" in html  # one minute in ten had no response
    assert "prometheus" not in data["figures"]  # no PROMETHEUS_URL


def test_latency_figures_are_the_json_plotly_itself_writes(alice, endpoint, monkeypatch):
    """The latency tab builds its figures as plain JSON (plotly's object validation was most of
    the 24-hour dashboard's time); through plotly's objects they come out the same."""
    import plotly.graph_objects as go

    from endpoints.selectors import endpoint_queryset
    from monitoring import figures, selectors

    traffic(endpoint, errors_every=10)
    traffic(endpoint, version=endpoint.canary_version, minutes=20, seed=2)
    for range_key in ("1h", "24h"):
        dashboard = selectors.latency_dashboard(endpoint=endpoint_queryset().get(pk=endpoint.pk), range_key=range_key)
        plain = json.loads(json.dumps(figures.latency_figures(dashboard)))
        with monkeypatch.context() as patched:
            patched.setattr(figures, "_plain_figure", lambda traces, **layout: figures._figure(
                [go.Scatter(**{k: v for k, v in t.items() if k != "type"}) for t in traces], **layout))
            through_plotly = json.loads(json.dumps(figures.latency_figures(dashboard)))
        assert plain == through_plotly, range_key
        assert len(plain["figures"]["latency"]["data"]) == 6


def test_latency_json_returns_the_same_figures_and_the_summary(client, alice, endpoint):
    traffic(endpoint)
    client.force_login(alice)
    response = client.get(url("endpoint-latency-data", endpoint, range="6h"))
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    body = response.json()
    assert set(body["figures"]) == {"latency", "throughput", "errors"}
    assert "p95" in body["fragments"]["summary"] and body["updated"]
    assert len(body["figures"]["throughput"]["data"][0]["x"]) == 72  # 6 h in 5-minute steps


def test_a_scale_to_zero_endpoint_whose_cluster_cannot_be_read_still_shows_its_latency(client, alice):
    """Cold starts come from the cluster's events, only for minReplicas 0; a cluster nothing
    listens on is a line in the tab and a field of the API, never a 500."""
    endpoint = monitored_endpoint(min_replicas=0)
    grant(alice, endpoint.project, "view")
    traffic(endpoint, minutes=5)
    client.force_login(alice)
    response = client.get(url("endpoint-latency", endpoint))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Cold starts could not be read" in html and "could not be reached" in html
    assert figures_of(response)["figures"]["latency"] is not None
    api = client.get(reverse("api-endpoint-latency", kwargs={"pk": endpoint.pk})).json()
    assert api["cold_starts"] == [] and "could not be reached" in api["cold_start_error"]
    assert api["versions"][0]["totals"]["requests"] > 0


def test_longer_ranges_read_hour_rollups(client, alice, endpoint):
    traffic(endpoint, minutes=180)
    client.force_login(alice)
    body = client.get(url("endpoint-latency-data", endpoint, range="7d")).json()
    requests_per_hour = [v * 3600 for v in body["figures"]["throughput"]["data"][0]["y"] if v]
    assert sum(requests_per_hour) == pytest.approx(180)


@pytest.mark.parametrize(("mode", "message"), [
    ("request", "logger mode (Requests only) cannot feed latency"),
    ("response", "logger mode (Responses only) cannot feed latency"),
    ("off", "Payload logging is off for this endpoint"),
])
def test_a_logger_mode_that_cannot_feed_latency_says_so(client, alice, mode, message):
    endpoint = monitored_endpoint(logging_mode=mode)
    grant(alice, endpoint.project, "view")
    client.force_login(alice)
    response = client.get(url("endpoint-latency", endpoint))
    assert message in response.content.decode()
    assert figures_of(response)["figures"]["latency"] is None
    assert message in figures_of(response)["empty"]["latency"]


def test_no_traffic_says_why_the_charts_are_empty(client, alice, endpoint):
    client.force_login(alice)
    response = client.get(url("endpoint-latency", endpoint, range="1h"))
    assert "No inference requests were logged for this endpoint in the last hour." in response.content.decode()


# --- drift ----------------------------------------------------------------------------------------

def test_drift_tab_shows_heatmap_top_features_distributions_and_the_alert(client, alice, endpoint):
    traffic(endpoint, minutes=50, shift=2.0)
    tasks.compute_drift_all_task()
    client.force_login(alice)
    response = client.get(url("endpoint-drift", endpoint, feature="petal_length"))
    html = response.content.decode()
    assert 'data-drift-status="alert"' in html and "Drift alert" in html
    figures = figures_of(response)["figures"]
    heatmap = figures["heatmap"]["data"][0]
    assert heatmap["type"] == "heatmap" and set(heatmap["y"]) == set(FEATURES)
    assert figures["top_features"]["data"][0]["x"][0] > 0.25
    distribution = figures["distribution"]["data"]
    assert [t["name"] for t in distribution] == ["Reference", "Live traffic"]
    assert figures["distribution"]["layout"]["xaxis"]["title"]["text"] == "petal_length (reference bins)"
    assert figures["prediction_trend"] is not None and figures["prediction_distribution"] is not None
    # The threshold labels sit outside the plot, never over the bars or the points: above the
    # bar chart (warning ending at its line, alert starting at its own), right of the trend.
    labels = {a["text"]: a for a in figures["top_features"]["layout"]["annotations"]}
    assert labels["warning 0.1"]["y"] == labels["alert 0.25"]["y"] == 1
    assert labels["warning 0.1"]["yanchor"] == labels["alert 0.25"]["yanchor"] == "bottom"
    assert (labels["warning 0.1"]["xanchor"], labels["alert 0.25"]["xanchor"]) == ("right", "left")
    labels = {a["text"]: a for a in figures["prediction_trend"]["layout"]["annotations"]}
    assert labels["warning 0.1"]["x"] == labels["alert 0.25"]["x"] == 1
    assert (labels["warning 0.1"]["yanchor"], labels["alert 0.25"]["yanchor"]) == ("top", "bottom")
    assert figures["prediction_trend"]["layout"]["margin"]["r"] > 60


def test_drift_of_the_canary_is_measured_against_its_own_reference(client, alice, endpoint):
    traffic(endpoint, version=endpoint.canary_version, minutes=30)
    tasks.compute_drift_all_task()
    client.force_login(alice)
    body = client.get(url("endpoint-drift-data", endpoint, version=endpoint.canary_version_id)).json()
    assert "Canary · iris-model v2" in body["fragments"]["summary"]
    assert body["figures"]["heatmap"] is not None


def test_a_version_without_reference_profile_explains_the_empty_drift_tab(client, alice, endpoint):
    endpoint.model_version.reference_profile = None
    endpoint.model_version.save()
    client.force_login(alice)
    html = client.get(url("endpoint-drift", endpoint)).content.decode()
    assert "has no reference profile" in html


def test_only_deployers_change_drift_settings(client, alice, bob, endpoint):
    client.force_login(alice)  # viewer
    assert client.post(url("endpoint-drift-settings", endpoint), {"psi_warning": 0.2, "psi_alert": 0.4,
                                                                   "drift_window_hours": 1,
                                                                   "min_window_rows": 10}).status_code == 403
    assert "Save drift settings" not in client.get(url("endpoint-drift", endpoint)).content.decode()
    grant(bob, endpoint.project, "view", "deploy")
    client.force_login(bob)
    response = client.post(url("endpoint-drift-settings", endpoint), {"psi_warning": 0.2, "psi_alert": 0.4,
                                                                      "drift_window_hours": 6, "min_window_rows": 10})
    assert response.status_code == 302
    config = MonitoringConfig.objects.get(endpoint=endpoint)
    assert (config.psi_warning, config.psi_alert, config.drift_window_hours) == (0.2, 0.4, 6)


def test_drift_settings_refuse_an_alert_below_the_warning(client, bob, endpoint):
    grant(bob, endpoint.project, "view", "deploy")
    client.force_login(bob)
    response = client.post(url("endpoint-drift-settings", endpoint), {"psi_warning": 0.5, "psi_alert": 0.4,
                                                                      "drift_window_hours": 1, "min_window_rows": 10})
    config = MonitoringConfig.objects.get(endpoint=endpoint)
    assert (config.psi_warning, config.psi_alert) == (0.1, 0.25)
    # The tab comes back with the values as typed and the reason beside the field.
    assert response.status_code == 400
    html = response.content.decode()
    assert "The alert threshold must be above the warning threshold." in html
    assert 'name="psi_warning" value="0.5"' in html and 'name="psi_alert" value="0.4"' in html
    assert response.context["panels"]  # the charts are still there


# --- access -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["endpoint-latency", "endpoint-latency-data", "endpoint-drift",
                                  "endpoint-drift-data"])
def test_a_viewer_of_another_project_gets_404_on_dashboards_and_their_json(client, outsider, endpoint, name):
    traffic(endpoint)
    other = ProjectFactory(name="other-team")
    grant(outsider, other, "view", "deploy")
    client.force_login(outsider)
    assert client.get(url(name, endpoint)).status_code == 404


def test_a_viewer_of_another_project_cannot_change_its_drift_settings(client, outsider, endpoint):
    grant(outsider, ProjectFactory(name="other-team"), "view", "deploy")
    client.force_login(outsider)
    assert client.post(url("endpoint-drift-settings", endpoint), {"psi_warning": 0.2}).status_code == 404


@pytest.mark.parametrize("name", ["api-endpoint-latency", "api-endpoint-drift", "api-endpoint-monitoring"])
def test_the_api_hides_other_projects_endpoints(client, outsider, endpoint, name):
    grant(outsider, ProjectFactory(name="other-team"), "view", "deploy")
    client.force_login(outsider)
    assert client.get(reverse(name, kwargs={"pk": endpoint.pk})).status_code == 404
    assert client.patch(reverse("api-endpoint-monitoring", kwargs={"pk": endpoint.pk}), {"psi_alert": 1},
                        content_type="application/json").status_code == 404


def test_anonymous_visitors_are_sent_to_sign_in(client, endpoint):
    for name in ("endpoint-latency", "endpoint-latency-data", "endpoint-drift-data"):
        assert client.get(url(name, endpoint)).status_code == 302
    assert client.get(reverse("monitoring:overview-data")).status_code == 302


# --- API ----------------------------------------------------------------------------------------------

def test_latency_api_returns_series_and_totals(client, alice, endpoint):
    traffic(endpoint, minutes=30, errors_every=10)
    client.force_login(alice)
    body = client.get(reverse("api-endpoint-latency", kwargs={"pk": endpoint.pk}), {"range": "1h"}).json()
    primary = body["versions"][0]
    assert primary["role"] == "primary" and primary["totals"]["requests"] == 30
    assert primary["totals"]["errors"] == 3 and primary["totals"]["p95_ms"] > primary["totals"]["p50_ms"]
    assert sum(point["requests"] for point in primary["series"]) == 30


def test_drift_api_and_settings_round_trip(client, alice, bob, endpoint):
    traffic(endpoint, minutes=40, shift=2.0)
    tasks.compute_drift_all_task()
    client.force_login(alice)
    body = client.get(reverse("api-endpoint-drift", kwargs={"pk": endpoint.pk})).json()
    assert body["latest"]["status"] == "alert" and body["config"]["psi_alert"] == 0.25
    assert {f["feature"] for f in body["latest"]["features"]} == {*FEATURES, "prediction"}
    settings_url = reverse("api-endpoint-monitoring", kwargs={"pk": endpoint.pk})
    assert client.patch(settings_url, {"psi_alert": 0.5}, content_type="application/json").status_code == 403
    grant(bob, endpoint.project, "view", "deploy")
    client.force_login(bob)
    response = client.patch(settings_url, {"psi_warning": 0.3, "psi_alert": 0.6}, content_type="application/json")
    assert response.status_code == 200 and response.json()["psi_alert"] == 0.6
    bad = client.patch(settings_url, {"psi_alert": 0.1}, content_type="application/json")
    assert bad.status_code == 400 and "psi_alert" in bad.json()["errors"]


# --- overview ---------------------------------------------------------------------------------------

def test_overview_counts_only_endpoints_the_user_can_see(client, alice, outsider, admin_user, endpoint):
    hidden = monitored_endpoint(project=ProjectFactory(name="secret"), name="hidden")
    traffic(hidden, minutes=40, shift=3.0)
    tasks.compute_drift_all_task()
    client.force_login(alice)
    body = client.get(reverse("monitoring:overview-data")).json()
    phases = body["figures"]["phases"]["data"][0]
    assert sum(phases["y"]) == 1
    assert body["figures"]["busiest"] is None and "hidden" not in body["fragments"]["summary"]
    client.force_login(admin_user)
    body = client.get(reverse("monitoring:overview-data")).json()
    assert sum(body["figures"]["phases"]["data"][0]["y"]) == 2
    assert "secret/hidden" in body["fragments"]["summary"]
    assert body["figures"]["busiest"]["data"][0]["y"] == ["secret/hidden"]


def test_overview_compares_accelerators_requested_with_capacity(client, admin_user):
    from tests.endpoints.endpoint_factories import HardwareProfileFactory

    gpu = HardwareProfileFactory(capacity=8)
    EndpointFactory(hardware_profile=gpu, accelerator_count=2, min_replicas=1, max_replicas=3)
    client.force_login(admin_user)
    bars = client.get(reverse("monitoring:overview-data")).json()["figures"]["accelerators"]["data"]
    assert [(b["name"], b["y"]) for b in bars] == [("Requested at min replicas", [2]),
                                                   ("Requested at max replicas", [6]), ("Capacity", [8])]


# --- cost -------------------------------------------------------------------------------------------

def _queries(client, path) -> int:
    client.get(path)  # warm caches (session, content types)
    with CaptureQueriesContext(connection) as captured:
        assert client.get(path).status_code == 200
    return len(captured)


@pytest.mark.parametrize("name", ["endpoint-latency", "endpoint-latency-data", "endpoint-drift",
                                  "endpoint-drift-data"])
def test_dashboard_queries_do_not_grow_with_traffic(client, alice, endpoint, name):
    client.force_login(alice)
    traffic(endpoint, minutes=5)
    tasks.compute_drift_all_task()
    few = _queries(client, url(name, endpoint, range="24h"))
    for seed in range(3):
        traffic(endpoint, minutes=300, seed=seed + 5, shift=seed)
        traffic(endpoint, minutes=100, seed=seed + 9, version=endpoint.canary_version)
    tasks.compute_drift_all_task()
    many = _queries(client, url(name, endpoint, range="24h"))
    assert many == few
    assert many <= 12


def test_overview_queries_do_not_grow_with_endpoints(client, admin_user):
    client.force_login(admin_user)
    monitored_endpoint()
    few = _queries(client, reverse("monitoring:overview"))
    for index in range(15):
        extra = monitored_endpoint(project=ProjectFactory(name=f"p{index}"), name=f"e{index}")
        traffic(extra, minutes=20, shift=index % 3)
    tasks.compute_drift_all_task()
    assert _queries(client, reverse("monitoring:overview")) == few <= 10


# --- page furniture ---------------------------------------------------------------------------------

def test_endpoint_pages_link_the_monitoring_tabs(client, alice, endpoint):
    client.force_login(alice)
    html = client.get(reverse("endpoints:endpoint-detail", kwargs={"project": endpoint.project.name,
                                                                   "name": endpoint.name})).content.decode()
    assert f'href="{url("endpoint-latency", endpoint)}"' in html and f'href="{url("endpoint-drift", endpoint)}"' in html
    latency_page = client.get(url("endpoint-latency", endpoint)).content.decode()
    assert f'href="{url("endpoint-latency", endpoint)}" aria-current="page"' in latency_page


def test_dashboards_load_plotly_from_the_console_and_relax_no_script_policy(client, alice, endpoint):
    client.force_login(alice)
    response = client.get(url("endpoint-latency", endpoint))
    html = response.content.decode()
    assert '<script src="/static/vendor/plotly/plotly.min.js" defer></script>' in html
    assert "cdn" not in html.lower()
    policy = dict(part.strip().split(" ", 1) for part in response["Content-Security-Policy"].split(";"))
    assert policy["script-src"] == "'self'"
    assert policy["style-src"] == "'self' 'unsafe-hashes' 'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='"
    other = client.get(reverse("endpoints:endpoint-detail", kwargs={"project": endpoint.project.name,
                                                                    "name": endpoint.name}))
    assert "unsafe-hashes" not in other["Content-Security-Policy"]


def test_plotly_js_is_served_from_the_plotly_package(client):
    from pathlib import Path

    import plotly

    response = client.get("/static/vendor/plotly/plotly.min.js")
    assert response.status_code == 200
    body = b"".join(response.streaming_content) if response.streaming else response.content
    assert body == (Path(plotly.__file__).parent / "package_data" / "plotly.min.js").read_bytes()


def test_collectstatic_picks_up_plotly_js_under_vendor():
    from django.contrib.staticfiles import finders

    from monitoring.staticfiles import PlotlyFinder, plotly_style_guard_ids

    assert finders.find("vendor/plotly/plotly.min.js").endswith("package_data/plotly.min.js")
    listed = [(path, storage.prefix) for path, storage in PlotlyFinder().list([])]
    assert listed == [("plotly.min.js", "vendor/plotly")]
    assert plotly_style_guard_ids()  # the bundle still has the id guard the dashboards rely on


def test_openai_endpoints_show_token_counts(client, alice):
    endpoint = monitored_endpoint(protocol="openai", name="assistant")
    grant(alice, endpoint.project, "view")
    body = (json.dumps({"model": "assistant", "messages": [{"role": "user", "content": "hi"}]}).encode(),
            json.dumps({"choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 300}}).encode())
    record_inference([pair(endpoint, at=timezone.now() - timedelta(minutes=i), body=body) for i in range(3)])
    client.force_login(alice)
    html = client.get(url("endpoint-latency", endpoint)).content.decode()
    assert "Tokens in / out" in html and "36 / 900" in html
    api = client.get(reverse("api-endpoint-latency", kwargs={"pk": endpoint.pk})).json()
    assert api["versions"][0]["totals"]["completion_tokens"] == 900
