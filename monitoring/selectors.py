"""Reads behind the dashboards. An endpoint's dashboards take the endpoint their view found
through the permission chokepoint (the base views and viewsets of ``console``: an endpoint the
user cannot see is a 404 for pages, their JSON and the API alike); the platform overview and
the home page's drift list start from the endpoints the user may see. Dashboards read rollups,
bin counts and stored drift results, never raw inference records, with a fixed number of
queries whatever the traffic.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
from django.conf import settings
from django.db.models import Count, F, OuterRef, Q, Subquery, Sum
from django.urls import reverse
from django.utils import timezone

from audit import selectors as audit_selectors
from console.permissions import is_platform_admin
from endpoints import operations as endpoint_operations
from endpoints import selectors as endpoint_selectors
from endpoints.models import Endpoint, EndpointStatus, HardwareProfile, ModelVersion
from monitoring import drift, extract, metrics, prometheus
from monitoring.models import BinCount, DriftWindow, FeatureDrift, LatencyRollup, MonitoringConfig

# --- time ranges ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RangeOption:
    key: str
    label: str
    duration: timedelta
    resolution: int  # which rollups to read
    step: int  # seconds per plotted point


RANGES = {
    option.key: option
    for option in (
        RangeOption("1h", "Last hour", timedelta(hours=1), LatencyRollup.MINUTE, 60),
        RangeOption("6h", "Last 6 hours", timedelta(hours=6), LatencyRollup.MINUTE, 300),
        RangeOption("24h", "Last 24 hours", timedelta(hours=24), LatencyRollup.QUARTER, 900),
        RangeOption("7d", "Last 7 days", timedelta(days=7), LatencyRollup.HOUR, 3600),
        RangeOption("30d", "Last 30 days", timedelta(days=30), LatencyRollup.HOUR, 6 * 3600),
    )
}
DEFAULT_RANGE = "24h"


@dataclass(frozen=True)
class TimeWindow:
    option: RangeOption
    start: datetime
    end: datetime
    times: list[datetime]

    @property
    def step(self) -> int:
        return self.option.step


def time_window(range_key: str | None, *, now: datetime | None = None) -> TimeWindow:
    """The chosen range (default 24 h) ending at the step that holds ``now``."""
    option = RANGES.get(range_key or "", RANGES[DEFAULT_RANGE])
    now = now or timezone.now()
    stamp = int(now.timestamp())
    end = datetime.fromtimestamp(stamp - stamp % option.step + option.step, tz=UTC)
    start = end - option.duration
    count = int(option.duration.total_seconds() // option.step)
    return TimeWindow(option, start, end, [start + timedelta(seconds=option.step * i) for i in range(count)])


# --- versions and roles -----------------------------------------------------------------------------

ROLE_LABELS = {"primary": "Primary", "canary": "Canary", "other": "Earlier version", "unknown": "Unknown version"}


def _role_of(endpoint: Endpoint, version_id: int) -> str:
    if version_id and version_id == endpoint.model_version_id:
        return "primary"
    if version_id and version_id == endpoint.canary_version_id:
        return "canary"
    return "other" if version_id else "unknown"


def _version_label(endpoint: Endpoint, version: ModelVersion | None, role: str) -> str:
    if version is None:
        return ROLE_LABELS["unknown"]
    text = f"{ROLE_LABELS[role]} · {version.model.name} v{version.version}"
    if role == "canary" and endpoint.canary_traffic_percent is not None:
        text += f" ({endpoint.canary_traffic_percent} %)"
    return text


def _known_versions(endpoint: Endpoint, ids) -> dict[int, ModelVersion]:
    known = {v.pk: v for v in (endpoint.model_version, endpoint.canary_version) if v is not None}
    missing = [i for i in ids if i and i not in known]
    if missing:
        known.update({v.pk: v for v in ModelVersion.objects.filter(pk__in=missing).select_related("model")})
    return known


ROLE_ORDER = {"primary": 0, "canary": 1, "other": 2, "unknown": 3}


# --- logger mode ------------------------------------------------------------------------------------

def logger_note(endpoint: Endpoint) -> str | None:
    """Why the payload logger of this endpoint cannot feed latency and error panels (None when it can)."""
    mode = endpoint.logging_mode
    if mode == Endpoint.LoggingMode.ALL:
        return None
    if mode == Endpoint.LoggingMode.OFF:
        return ("Payload logging is off for this endpoint, so the console receives nothing to measure. "
                "Set its logging mode to “Requests and responses” to see latency, errors and drift.")
    return (f"This endpoint's logger mode ({Endpoint.LoggingMode(mode).label}) cannot feed latency or errors: "
            "the payload logger pairs requests with responses only in mode “Requests and responses” (all), "
            "and both are needed to measure how long a call took and whether it failed.")


# --- latency ----------------------------------------------------------------------------------------

@dataclass
class VersionLatency:
    key: int
    role: str
    label: str
    requests: np.ndarray
    errors: np.ndarray
    latency_count: np.ndarray
    percentiles: np.ndarray  # steps × (p50, p95, p99), NaN where nothing was measured
    totals: dict = field(default_factory=dict)


@dataclass
class LatencyDashboard:
    endpoint: Endpoint
    window: TimeWindow
    versions: list[VersionLatency]
    note: str | None
    empty_reason: str | None
    prometheus: prometheus.PrometheusSeries | None = None
    prometheus_error: str = ""
    prometheus_configured: bool = False
    refused: int = 0  # logger deliveries refused in the range because the ingest buffer was full
    # Scales from zero in the range (the InferenceService's ColdStart events), oldest first, and
    # why they could not be read; only for an endpoint that may scale to zero (minReplicas 0).
    cold_starts: list[endpoint_operations.ColdStart] = field(default_factory=list)
    cold_start_error: str = ""

    @property
    def has_latency(self) -> bool:
        return any(v.latency_count.sum() > 0 for v in self.versions)

    @property
    def has_tokens(self) -> bool:
        return any(v.totals.get("completion_tokens") or v.totals.get("prompt_tokens") for v in self.versions)


LATENCY_QUANTILES = (0.5, 0.95, 0.99)


def _latency_versions(endpoint: Endpoint, window: TimeWindow) -> list[VersionLatency]:
    rows = list(
        LatencyRollup.objects.filter(endpoint=endpoint, resolution=window.option.resolution,
                                     start__gte=window.start, start__lt=window.end)
        .values_list("version_key", "start", "requests", "errors", "latency_count", "latency_sum_ms",
                     "prompt_tokens", "completion_tokens", *metrics.BUCKET_FIELDS)
    )
    if not rows:
        return []
    steps = len(window.times)
    keys = np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))
    starts = np.fromiter((row[1].timestamp() for row in rows), dtype=float, count=len(rows))
    # requests, errors, latency count, latency sum, prompt tokens, completion tokens, h00..h49
    values = np.array([row[2:] for row in rows], dtype=float)
    index = ((starts - window.start.timestamp()) // window.step).astype(np.int64)
    inside = (index >= 0) & (index < steps)
    grouped: dict[int, dict[str, np.ndarray]] = {}
    for key in np.unique(keys[inside]).tolist():
        mine = inside & (keys == key)
        summed = np.zeros((steps, values.shape[1]))
        np.add.at(summed, index[mine], values[mine])
        grouped[key] = {"requests": summed[:, 0], "errors": summed[:, 1], "latency_count": summed[:, 2],
                        "latency_sum": summed[:, 3], "prompt_tokens": summed[:, 4], "completion_tokens": summed[:, 5],
                        "histograms": summed[:, 6:]}
    versions = _known_versions(endpoint, grouped)
    out = []
    for key, entry in grouped.items():
        role = _role_of(endpoint, key)
        total_histogram = entry["histograms"].sum(axis=0)
        requests = float(entry["requests"].sum())
        errors = float(entry["errors"].sum())
        p50, p95, p99 = metrics.percentiles(total_histogram, LATENCY_QUANTILES)
        measured = float(entry["latency_count"].sum())
        out.append(VersionLatency(
            key=key, role=role, label=_version_label(endpoint, versions.get(key), role),
            requests=entry["requests"], errors=entry["errors"], latency_count=entry["latency_count"],
            percentiles=metrics.percentiles(entry["histograms"], LATENCY_QUANTILES),
            totals={
                "requests": int(requests),
                "errors": int(errors),
                "error_rate": errors / requests * 100 if requests else None,
                "rps": requests / window.option.duration.total_seconds(),
                "p50": None if np.isnan(p50) else float(p50),
                "p95": None if np.isnan(p95) else float(p95),
                "p99": None if np.isnan(p99) else float(p99),
                "mean": float(entry["latency_sum"].sum() / measured) if measured else None,
                "prompt_tokens": int(entry["prompt_tokens"].sum()),
                "completion_tokens": int(entry["completion_tokens"].sum()),
            },
        ))
    return sorted(out, key=lambda v: (ROLE_ORDER[v.role], -v.key))


def latency_dashboard(*, endpoint: Endpoint, range_key: str | None = None,
                      now: datetime | None = None) -> LatencyDashboard:
    """Requests, errors and latency percentiles of one endpoint, which the caller's view found
    through the chokepoint (``endpoints.selectors.endpoint_queryset``'s related rows loaded)."""
    window = time_window(range_key, now=now)
    versions = _latency_versions(endpoint, window)
    note = logger_note(endpoint)
    empty = None
    if not versions:
        if endpoint.logging_mode == Endpoint.LoggingMode.OFF:
            empty = note
        else:
            empty = f"No inference requests were logged for this endpoint in the {window.option.label.lower()}."
            if endpoint.state == Endpoint.State.STOPPED:
                empty += " The endpoint is stopped."
    dashboard = LatencyDashboard(endpoint=endpoint, window=window, versions=versions, note=note, empty_reason=empty)
    dashboard.refused = audit_selectors.ingest_refusals_for(
        project_id=endpoint.project_id, inference_service=endpoint.name, since=window.start)
    if endpoint.min_replicas == 0:
        from endpoints.services.operations import endpoint_cold_starts

        starts, dashboard.cold_start_error = endpoint_cold_starts(endpoint=endpoint)
        dashboard.cold_starts = [c for c in starts if c.time is not None and c.time >= window.start]
    if settings.PROMETHEUS_URL:
        dashboard.prometheus_configured = True
        try:
            dashboard.prometheus = prometheus.endpoint_series(
                endpoint, times=window.times, start=window.start, end=window.times[-1], step_seconds=window.step)
        except prometheus.PrometheusError as exc:
            dashboard.prometheus_error = str(exc)
    return dashboard


# --- drift ------------------------------------------------------------------------------------------

@dataclass
class Distribution:
    labels: list[str]
    reference: list[float]
    current: list[float]
    rows: int


@dataclass
class DriftDashboard:
    endpoint: Endpoint
    window: TimeWindow
    config: MonitoringConfig
    versions: list[tuple[ModelVersion, str]]
    version: ModelVersion
    role: str
    profile: dict | None
    windows: list[DriftWindow]
    latest: DriftWindow | None
    heatmap_features: list[str]
    heatmap_psi: list[list[float | None]]
    top_features: list[FeatureDrift]
    feature: str
    feature_choices: list[str]
    distribution: Distribution | None
    prediction_name: str
    prediction_trend: list[tuple[datetime, float, float, str]]
    prediction_distribution: Distribution | None
    empty_reason: str | None
    note: str | None

    @property
    def version_label(self) -> str:
        return _version_label(self.endpoint, self.version, self.role)


def _distribution(feature: dict, counts: dict[int, int]) -> Distribution | None:
    if not counts:
        return None

    size = extract.bin_count(feature)
    live = np.zeros(size)
    for index, count in counts.items():
        if 0 <= index < size:
            live[index] += count
    missing = counts.get(-1, 0)
    comparison = drift.compare(feature.get("proportions", []), live, numeric=feature.get("type") != "categorical",
                               reference_missing=float(feature.get("missing") or 0.0), current_missing=missing)
    with_missing = len(comparison.reference) > size
    return Distribution(labels=drift.bin_labels(feature, with_missing=with_missing),
                        reference=list(comparison.reference), current=list(comparison.current), rows=comparison.rows)


def drift_dashboard(*, endpoint: Endpoint, range_key: str | None = None, version_id: str | None = None,
                    feature: str | None = None, now: datetime | None = None) -> DriftDashboard:
    """Drift of one endpoint's primary (or chosen canary) version over a range; the caller's
    view found the endpoint through the chokepoint."""
    window = time_window(range_key, now=now)
    config = MonitoringConfig.objects.filter(endpoint=endpoint).first() or MonitoringConfig(endpoint=endpoint)
    versions = [(endpoint.model_version, "primary")]
    if endpoint.canary_version is not None:
        versions.append((endpoint.canary_version, "canary"))
    version, role = next(((v, r) for v, r in versions if str(v.pk) == str(version_id)), versions[0])
    profile = version.reference_profile if isinstance(version.reference_profile, dict) else None

    windows = list(DriftWindow.objects.filter(endpoint=endpoint, model_version=version, end__gt=window.start,
                                              start__lt=window.end).order_by("start"))
    latest = next((w for w in reversed(windows) if w.status != DriftWindow.Status.INSUFFICIENT),
                  windows[-1] if windows else None)
    rows = list(FeatureDrift.objects.filter(window__in=[w.pk for w in windows])
                .values_list("window_id", "feature", "is_prediction", "psi", "js", "ks", "rows", "status",
                             "numeric", "pk"))
    position = {w.pk: i for i, w in enumerate(windows)}
    psi_by_feature: dict[str, list[float | None]] = defaultdict(lambda: [None] * len(windows))
    prediction_trend = []
    top: list[FeatureDrift] = []
    for window_id, feature_name, is_prediction, psi, js, ks, count, status, numeric, pk in rows:
        if is_prediction:
            prediction_trend.append((windows[position[window_id]].start, psi, js, status))
        else:
            psi_by_feature[feature_name][position[window_id]] = psi
        if latest is not None and window_id == latest.pk and not is_prediction:
            top.append(FeatureDrift(pk=pk, window_id=window_id, feature=feature_name, is_prediction=False, psi=psi,
                                    js=js, ks=ks, rows=count, status=status, numeric=numeric))
    top.sort(key=lambda f: -f.psi)
    order = [f.feature for f in top] + sorted(set(psi_by_feature) - {f.feature for f in top})
    prediction_trend.sort()

    profile_features = (profile or {}).get("features", [])
    choices = [f["name"] for f in profile_features]
    chosen = feature if feature in choices else (top[0].feature if top else (choices[0] if choices else ""))
    prediction = (profile or {}).get("prediction") or None
    prediction_name = prediction["name"] if prediction else ""
    counts: dict[tuple[bool, str], dict[int, int]] = defaultdict(dict)
    if profile and (chosen or prediction_name):
        wanted = Q(is_prediction=False, feature=chosen) | Q(is_prediction=True, feature=prediction_name)
        for is_prediction, feature_name, index, total in (
            BinCount.objects.filter(wanted, endpoint=endpoint, model_version=version, hour__gte=window.start,
                                    hour__lt=window.end)
            .values_list("is_prediction", "feature", "bin").annotate(total=Sum("count"))
        ):
            counts[(is_prediction, feature_name)][index] = int(total)
    feature_profile = next((f for f in profile_features if f["name"] == chosen), None)

    note = None if endpoint.logging_mode != Endpoint.LoggingMode.OFF else logger_note(endpoint)
    empty = None
    if profile is None:
        empty = (f"{version.model.name} v{version.version} has no reference profile, so there is nothing to compare "
                 "live traffic with. Upload a reference sample on the model version to measure drift.")
    elif endpoint.logging_mode == Endpoint.LoggingMode.OFF and not windows:
        empty = note
    elif not windows:
        empty = (f"No drift results for the {window.option.label.lower()} yet: windows are computed every few "
                 f"minutes from logged requests, and none were logged for this version in that time.")
    return DriftDashboard(
        endpoint=endpoint, window=window, config=config, versions=versions, version=version, role=role,
        profile=profile, windows=windows, latest=latest, heatmap_features=order,
        heatmap_psi=[psi_by_feature[f] for f in order], top_features=top[:15], feature=chosen, feature_choices=choices,
        distribution=_distribution(feature_profile, counts.get((False, chosen), {})) if feature_profile else None,
        prediction_name=prediction_name, prediction_trend=prediction_trend,
        prediction_distribution=_distribution(prediction, counts.get((True, prediction_name), {}))
        if prediction else None,
        empty_reason=empty, note=note,
    )


# --- platform overview --------------------------------------------------------------------------

@dataclass
class Overview:
    window: TimeWindow
    all_endpoints: bool
    endpoint_count: int
    phases: list[tuple[str, int]]
    accelerators: list[dict]
    busiest: list[dict]
    drift_alerts: list[dict]


def _endpoint_url(project: str, name: str, view: str = "endpoints:endpoint-detail") -> str:
    return reverse(view, kwargs={"project": project, "name": name})


def platform_overview(*, user, range_key: str | None = None, now: datetime | None = None) -> Overview:
    """What the user's endpoints look like across the platform (admins: every endpoint)."""
    window = time_window(range_key, now=now)
    visible = endpoint_selectors.endpoint_list_visible_to(user=user).order_by()
    phase_counts = dict(visible.values_list("status__phase").annotate(n=Count("pk")))
    phases = [(phase, phase_counts.pop(phase, 0)) for phase in EndpointStatus.Phase.values]
    phases[-1] = (phases[-1][0], phases[-1][1] + sum(phase_counts.values()))  # no status row: Unknown

    active = visible.exclude(state=Endpoint.State.DELETING).filter(hardware_profile__isnull=False)
    requested = {
        row["hardware_profile"]: row
        for row in active.values("hardware_profile").annotate(
            at_min=Sum(F("accelerator_count") * F("min_replicas")),
            at_max=Sum(F("accelerator_count") * F("max_replicas")))
    }
    accelerators = [
        {"profile": p.display_name or p.name, "capacity": p.capacity,
         "at_min": int((requested.get(p.pk) or {}).get("at_min") or 0),
         "at_max": int((requested.get(p.pk) or {}).get("at_max") or 0)}
        for p in HardwareProfile.objects.exclude(accelerator_resource="").order_by("name")
    ]

    # Hour rollups (whole hours overlapping the range): one row per endpoint and hour, however
    # many endpoints the platform runs.
    first_hour = window.start - timedelta(seconds=int(window.start.timestamp()) % 3600)
    busiest = list(
        LatencyRollup.objects.filter(endpoint__in=visible.values("pk"), resolution=LatencyRollup.HOUR,
                                     start__gte=first_hour, start__lt=window.end)
        .values("endpoint__project__name", "endpoint__name")
        .annotate(requests=Sum("requests"), errors=Sum("errors"))
        .order_by("-requests")[:10]
    )
    busiest_rows = [{"project": r["endpoint__project__name"], "name": r["endpoint__name"], "requests": r["requests"],
                     "errors": r["errors"],
                     "error_rate": r["errors"] / r["requests"] * 100 if r["requests"] else 0.0,
                     "url": _endpoint_url(r["endpoint__project__name"], r["endpoint__name"],
                                          "monitoring:endpoint-latency")}
                    for r in busiest]

    drift_alerts = _drift_flagged(visible, [DriftWindow.Status.ALERT, DriftWindow.Status.WARNING], limit=25)
    return Overview(window=window, all_endpoints=is_platform_admin(user),
                    endpoint_count=sum(count for _, count in phases), phases=phases,
                    accelerators=accelerators, busiest=busiest_rows, drift_alerts=drift_alerts)


def _drift_flagged(visible, statuses: list[str], *, limit: int) -> list[dict]:
    """Endpoints of ``visible`` whose latest drift verdict is one of ``statuses``, alerts first,
    then by PSI (one query)."""
    latest = (DriftWindow.objects.filter(endpoint=OuterRef("pk"))
              .exclude(status=DriftWindow.Status.INSUFFICIENT).order_by("-end", "-max_psi"))
    flagged = (
        visible.annotate(drift_status=Subquery(latest.values("status")[:1]),
                         drift_psi=Subquery(latest.values("max_psi")[:1]),
                         drift_feature=Subquery(latest.values("top_feature")[:1]),
                         drift_start=Subquery(latest.values("start")[:1]),
                         drift_end=Subquery(latest.values("end")[:1]))
        .filter(drift_status__in=statuses)
        .values("project__name", "name", "drift_status", "drift_psi", "drift_feature", "drift_start", "drift_end")
        .order_by("-drift_psi")[:limit]
    )
    now = timezone.now()
    rows = [{"project": r["project__name"], "name": r["name"], "status": r["drift_status"],
             "psi": r["drift_psi"], "feature": r["drift_feature"], "start": r["drift_start"], "end": r["drift_end"],
             "in_progress": r["drift_end"] is not None and r["drift_end"] > now,
             "url": _endpoint_url(r["project__name"], r["name"], "monitoring:endpoint-drift")}
            for r in flagged]
    rows.sort(key=lambda r: (r["status"] != DriftWindow.Status.ALERT, -(r["psi"] or 0)))
    return rows


def endpoints_in_drift_alert(*, user, limit: int = 10) -> list[dict]:
    """The user's visible endpoints whose latest drift window raised an alert (home page)."""
    visible = endpoint_selectors.endpoint_list_visible_to(user=user).order_by()
    return _drift_flagged(visible, [DriftWindow.Status.ALERT], limit=limit)


def drift_alert_metric_families():
    """``console_drift_alert{project,endpoint}``: 1 for every endpoint whose latest drift
    verdict is an alert (/metrics; one query)."""
    from prometheus_client.core import GaugeMetricFamily


    family = GaugeMetricFamily("console_drift_alert", "Endpoints whose latest drift window raised an alert.",
                               labels=["project", "endpoint"])
    latest = (DriftWindow.objects.filter(endpoint=OuterRef("pk"))
              .exclude(status=DriftWindow.Status.INSUFFICIENT).order_by("-end", "-max_psi"))
    rows = (Endpoint.objects.annotate(drift_status=Subquery(latest.values("status")[:1]))
            .filter(drift_status=DriftWindow.Status.ALERT).values_list("project__name", "name").order_by())
    for project, name in rows:
        family.add_metric([project, name], 1)
    yield family
