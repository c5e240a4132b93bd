"""Optional second source of latency and request rate: Prometheus (``PROMETHEUS_URL``).

KServe and Knative expose different metric families depending on the runtime and the
Knative version (docs/kserve.md §7), so the console tries them in order and keeps the first
that has data for the endpoint (remembered for ten minutes):

1. Knative queue-proxy, OpenCensus (Knative ≤ 1.18): ``revision_request_latencies`` (ms
   histogram) and ``revision_request_count``, labels ``namespace_name``, ``service_name``
   (``<isvc>-predictor``, plus revision suffixes).
2. Knative, OpenTelemetry (≥ 1.19): ``http_server_request_duration_seconds`` with
   ``k8s_namespace_name`` and ``kn_service_name``.
3. KServe Python model servers: ``request_predict_seconds`` with ``model_name`` (= the ISVC
   name by default) and the scrape's ``namespace`` label.

Queries use ``/api/v1/query_range`` over HTTP with the standard library (no client package):
p50/p95/p99 via ``histogram_quantile`` over 5-minute rates, request rate via ``rate`` of the
count. Only GET requests are sent; errors come back as ``PrometheusError`` for the page to show.
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.core.cache import cache

QUANTILES = (0.5, 0.95, 0.99)
FAMILY_CACHE_SECONDS = 600


class PrometheusError(Exception):
    """Prometheus could not answer; the message is shown on the dashboard."""


@dataclass(frozen=True)
class Family:
    name: str
    label: str
    bucket: str  # histogram bucket series
    count: str  # request counter (histogram _count or a counter)
    selector: str  # label matchers, formatted with namespace and name
    to_ms: float  # factor from the histogram's unit to milliseconds


FAMILIES = (
    Family("knative", "Knative queue-proxy", "revision_request_latencies_bucket", "revision_request_count",
           'namespace_name="{namespace}", service_name=~"{name}-predictor.*"', 1.0),
    Family("knative-otel", "Knative (OpenTelemetry)", "http_server_request_duration_seconds_bucket",
           "http_server_request_duration_seconds_count",
           'k8s_namespace_name="{namespace}", kn_service_name=~"{name}-predictor.*"', 1000.0),
    Family("kserve", "KServe model server", "request_predict_seconds_bucket", "request_predict_seconds_count",
           'namespace="{namespace}", model_name="{name}"', 1000.0),
)


def _escape(value: str) -> str:
    """A PromQL string literal's content (also safe inside =~ regexes for DNS names)."""
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _regex_escape(value: str) -> str:
    return "".join(f"\\\\{c}" if c in ".+*?()[]{}|^$" else c for c in _escape(value))


@dataclass
class PrometheusSeries:
    """Latency percentiles (ms) and request rate (per second) from Prometheus."""

    family: Family
    times: list[datetime] = field(default_factory=list)
    percentiles: dict[float, list[float | None]] = field(default_factory=dict)
    rate: list[float | None] = field(default_factory=list)


class PrometheusClient:
    def __init__(self, base_url: str, *, timeout: float = 5.0):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def query_range(self, promql: str, start: datetime, end: datetime, step_seconds: int) -> list[dict]:
        params = urllib.parse.urlencode({"query": promql, "start": f"{start.timestamp():.3f}",
                                         "end": f"{end.timestamp():.3f}", "step": str(step_seconds)})
        url = f"{self.base_url}/api/v1/query_range?{params}"
        if not url.startswith(("http://", "https://")):
            raise PrometheusError("PROMETHEUS_URL must be an http(s) URL.")
        request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310 - scheme checked
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310 - scheme checked
                payload = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            try:
                detail = json.loads(exc.read()).get("error", "")
            except ValueError:
                detail = ""
            raise PrometheusError(f"Prometheus answered HTTP {exc.code}{': ' + detail if detail else ''}.") from exc
        except (OSError, ValueError) as exc:
            raise PrometheusError(f"Prometheus could not be reached: {exc}.") from exc
        if payload.get("status") != "success":
            raise PrometheusError(f"Prometheus refused the query: {payload.get('error', 'unknown error')}.")
        return payload.get("data", {}).get("result", [])


def _selector(family: Family, endpoint) -> str:
    name = _regex_escape(endpoint.name) if '=~"{name}' in family.selector else _escape(endpoint.name)
    return family.selector.format(namespace=_escape(endpoint.project.namespace), name=name)


def queries(family: Family, endpoint) -> dict:
    """The PromQL of one family for an endpoint: request rate and each latency quantile."""
    selector = _selector(family, endpoint)
    out = {"rate": f"sum(rate({family.count}{{{selector}}}[5m]))"}
    for q in QUANTILES:
        out[q] = f"histogram_quantile({q}, sum by (le) (rate({family.bucket}{{{selector}}}[5m])))"
    return out


def _values(result: list[dict], times: list[datetime], factor: float = 1.0) -> list[float | None]:
    by_time: dict[int, float] = {}
    for series in result[:1]:
        for stamp, value in series.get("values", []):
            try:
                number = float(value)
            except (TypeError, ValueError):
                continue
            if math.isfinite(number):
                by_time[round(float(stamp))] = number * factor
    return [by_time.get(round(t.timestamp())) for t in times]


def endpoint_series(endpoint, *, times: list[datetime], start: datetime, end: datetime,
                    step_seconds: int, base_url: str | None = None) -> PrometheusSeries | None:
    """Latency percentiles and request rate of an endpoint, or None when no family has data.
    Raises PrometheusError when Prometheus cannot be queried."""
    base_url = base_url if base_url is not None else settings.PROMETHEUS_URL
    if not base_url:
        return None
    client = PrometheusClient(base_url, timeout=settings.PROMETHEUS_TIMEOUT_SECONDS)
    cache_key = f"monitoring:prometheus-family:{endpoint.pk}"
    known = cache.get(cache_key)
    candidates = [f for f in FAMILIES if f.name == known] or list(FAMILIES)
    for family in candidates:
        promql = queries(family, endpoint)
        rate = client.query_range(promql["rate"], start, end, step_seconds)
        if not rate:
            continue
        cache.set(cache_key, family.name, FAMILY_CACHE_SECONDS)
        series = PrometheusSeries(family=family, times=times, rate=_values(rate, times))
        for q in QUANTILES:
            series.percentiles[q] = _values(client.query_range(promql[q], start, end, step_seconds), times,
                                            family.to_ms)
        return series
    cache.delete(cache_key)
    return None
