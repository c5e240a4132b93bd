"""Plotly figures of the dashboards, built from selector results (never from raw records).

Each builder returns ``{"figures": {name: figure-json or None}, "empty": {name: reason}}``: a
panel without data names the reason instead of drawing an empty chart. Figures are plain JSON
(``plotly.io`` serialises them, NaN becomes null) that ``static/js/dashboards.js`` hands to
plotly.js; only SVG traces are used (``Scatter``, ``Bar``, ``Heatmap``) — no WebGL, which
headless and locked-down browsers often lack. Times are UTC strings, and every axis says
its unit.
"""

from __future__ import annotations

import json
import math
from datetime import datetime

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
from plotly.subplots import make_subplots

from monitoring import drift
from monitoring.selectors import DriftDashboard, LatencyDashboard, Overview

FONT = 'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif'
TEXT = "#1c2330"
GRID = "#e4e7ec"
ROLE_COLOURS = {"primary": "#1f5fbf", "canary": "#b35c00", "other": "#6b5fb5", "unknown": "#7a8494"}
QUANTILE_DASH = {0: "solid", 1: "dash", 2: "dot"}
QUANTILE_NAMES = ("p50", "p95", "p99")
STATUS_COLOURS = {"ok": "#1a7437", "warning": "#c98a00", "alert": "#b42318", "insufficient": "#7a8494"}
PHASE_COLOURS = {"Ready": "#1a7437", "Deploying": "#1f5fbf", "Pending": "#6b5fb5", "Degraded": "#c98a00",
                 "Failed": "#b42318", "Stopped": "#7a8494", "Unknown": "#9aa4b2"}
TIME_TITLE = "Time (UTC)"


def _time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _clean(values) -> list:
    return [None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v) for v in values]


def _axis(title: str, **extra) -> dict:
    return {"title": {"text": title}, "gridcolor": GRID, "zeroline": False, "linecolor": "#9aa4b2",
            "automargin": True, **extra}


def _layout(fig: go.Figure, *, height: int = 320, show_legend: bool = True, **extra) -> go.Figure:
    settings = {
        "template": "none", "height": height, "font": {"family": FONT, "size": 13, "color": TEXT},
        "margin": {"l": 16, "r": 16, "t": 36, "b": 16}, "paper_bgcolor": "#ffffff", "plot_bgcolor": "#ffffff",
        "showlegend": show_legend, "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
        "hoverlabel": {"font": {"family": FONT}},
    }
    fig.update_layout({**settings, **extra})
    return fig


def to_json(fig: go.Figure) -> dict:
    return json.loads(pio.to_json(fig, validate=False, engine="json"))


def _result(figures: dict, empty: dict) -> dict:
    return {"figures": {name: (to_json(fig) if fig is not None else None) for name, fig in figures.items()},
            "empty": empty}


# --- latency ------------------------------------------------------------------------------------

def latency_figures(dashboard: LatencyDashboard) -> dict:
    times = [_time(t) for t in dashboard.window.times]
    span = [_time(dashboard.window.start), _time(dashboard.window.end)]
    step = dashboard.window.step
    versions = dashboard.versions
    figures: dict[str, go.Figure | None] = {}
    empty: dict[str, str] = {}

    shown = versions[:3]
    if dashboard.has_latency:
        fig = make_subplots(rows=1, cols=len(shown), shared_yaxes=True, horizontal_spacing=0.04,
                            subplot_titles=[v.label for v in shown])
        for column, version in enumerate(shown, start=1):
            for index, name in enumerate(QUANTILE_NAMES):
                fig.add_trace(go.Scatter(
                    x=times, y=_clean(version.percentiles[:, index]), mode="lines", name=name,
                    legendgroup=name, showlegend=column == 1, connectgaps=False,
                    line={"color": ROLE_COLOURS[version.role], "dash": QUANTILE_DASH[index], "width": 2},
                    hovertemplate=f"{name} %{{y:.1f}} ms<extra>{version.label}</extra>",
                ), row=1, col=column)
            fig.update_xaxes(_axis(TIME_TITLE), row=1, col=column)
        fig.update_yaxes(_axis("Latency (ms)", rangemode="tozero"), row=1, col=1)
        fig.update_xaxes(range=span)
        figures["latency"] = _layout(fig, height=360, hovermode="x unified", margin={"l": 16, "r": 16, "t": 76, "b": 16},
                                     legend={"orientation": "h", "yanchor": "bottom", "y": 1.16, "x": 0})
    else:
        figures["latency"] = None
        empty["latency"] = dashboard.note or dashboard.empty_reason or "No answered requests in this range."

    if versions:
        fig = go.Figure()
        for version in versions:
            fig.add_trace(go.Scatter(
                x=times, y=_clean(version.requests / step), mode="lines", name=version.label,
                line={"color": ROLE_COLOURS[version.role], "width": 2},
                hovertemplate="%{y:.2f} requests/s<extra>" + version.label + "</extra>"))
        fig.update_xaxes(_axis(TIME_TITLE, range=span))
        fig.update_yaxes(_axis("Requests per second", rangemode="tozero"))
        figures["throughput"] = _layout(fig, hovermode="x unified")
    else:
        figures["throughput"] = None
        empty["throughput"] = dashboard.empty_reason or "No requests in this range."

    if versions and dashboard.note is None:
        fig = go.Figure()
        for version in versions:
            with np.errstate(invalid="ignore", divide="ignore"):
                rate = np.where(version.requests > 0, version.errors / np.maximum(version.requests, 1) * 100, np.nan)
            fig.add_trace(go.Scatter(
                x=times, y=_clean(rate), mode="lines+markers", name=version.label, marker={"size": 4},
                line={"color": ROLE_COLOURS[version.role], "width": 2},
                hovertemplate="%{y:.2f} % errors<extra>" + version.label + "</extra>"))
        peak = max((float(np.nanmax(np.where(v.requests > 0, v.errors / np.maximum(v.requests, 1) * 100, 0)))
                    for v in versions), default=0.0)
        fig.update_xaxes(_axis(TIME_TITLE, range=span))
        fig.update_yaxes(_axis("Requests without a response (%)", range=[0, max(5.0, peak * 1.15)]))
        figures["errors"] = _layout(fig, hovermode="x unified")
    else:
        figures["errors"] = None
        empty["errors"] = dashboard.note or dashboard.empty_reason or "No requests in this range."

    if dashboard.prometheus_configured:
        series = dashboard.prometheus
        if series is not None:
            fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1,
                                subplot_titles=[f"Latency ({series.family.label})", "Requests per second"])
            for index, q in enumerate(series.percentiles):
                fig.add_trace(go.Scatter(x=times, y=series.percentiles[q], mode="lines", name=QUANTILE_NAMES[index],
                                         line={"color": "#0f766e", "dash": QUANTILE_DASH[index], "width": 2},
                                         hovertemplate="%{y:.1f} ms"), row=1, col=1)
            fig.add_trace(go.Scatter(x=times, y=series.rate, mode="lines", name="requests/s",
                                     line={"color": "#0f766e", "width": 2}, hovertemplate="%{y:.2f} requests/s"),
                          row=1, col=2)
            fig.update_xaxes(_axis(TIME_TITLE, range=span))
            fig.update_yaxes(_axis("Latency (ms)", rangemode="tozero"), row=1, col=1)
            fig.update_yaxes(_axis("Requests per second", rangemode="tozero"), row=1, col=2)
            figures["prometheus"] = _layout(fig, height=360, hovermode="x unified",
                                            margin={"l": 16, "r": 16, "t": 76, "b": 16},
                                            legend={"orientation": "h", "yanchor": "bottom", "y": 1.16, "x": 0})
        else:
            figures["prometheus"] = None
            empty["prometheus"] = dashboard.prometheus_error or (
                "Prometheus has no KServe or Knative request metrics for this endpoint in this range.")
    return _result(figures, empty)


# --- drift --------------------------------------------------------------------------------------

def _threshold_lines(fig: go.Figure, warning: float, alert: float, *, axis: str = "y") -> None:
    lines = ((warning, "warning", STATUS_COLOURS["warning"], "top left", "bottom right"),
             (alert, "alert", STATUS_COLOURS["alert"], "top left", "top right"))
    for value, label, colour, y_position, x_position in lines:
        line = {"color": colour, "dash": "dash", "width": 1}
        if axis == "y":
            fig.add_hline(y=value, line=line, annotation_text=f"{label} {value:g}", annotation_position=y_position)
        else:
            fig.add_vline(x=value, line=line, annotation_text=f"{label} {value:g}", annotation_position=x_position)


def _distribution_figure(distribution, title: str) -> go.Figure:
    fig = go.Figure()
    fig.add_trace(go.Bar(x=distribution.labels, y=[v * 100 for v in distribution.reference], name="Reference",
                         marker={"color": "#9aa4b2"}, hovertemplate="%{x}: %{y:.1f} %<extra>Reference</extra>"))
    fig.add_trace(go.Bar(x=distribution.labels, y=[v * 100 for v in distribution.current], name="Live traffic",
                         marker={"color": "#1f5fbf"}, hovertemplate="%{x}: %{y:.1f} %<extra>Live traffic</extra>"))
    fig.update_xaxes(_axis(title, type="category"))
    fig.update_yaxes(_axis("Share of rows (%)", rangemode="tozero"))
    return _layout(fig, barmode="group", bargap=0.25)


def drift_figures(dashboard: DriftDashboard) -> dict:
    figures: dict[str, go.Figure | None] = {}
    empty: dict[str, str] = {}
    config = dashboard.config
    reason = dashboard.empty_reason

    if dashboard.heatmap_features and dashboard.windows:
        values = [v for row in dashboard.heatmap_psi for v in row if v is not None]
        top = max([config.psi_alert * 2, *values]) if values else config.psi_alert * 2
        zmax = min(top, max(config.psi_alert * 4, 1.0))
        warn, alert = min(config.psi_warning / zmax, 1.0), min(config.psi_alert / zmax, 1.0)
        scale = [[0.0, "#eef7f0"], [max(warn - 1e-6, 0.0), "#cfe8d6"], [warn, "#ffe9a8"],
                 [max(alert - 1e-6, warn), "#f6c46b"], [alert, "#f0a090"], [1.0, "#b42318"]]
        fig = go.Figure(go.Heatmap(
            z=[[None if v is None else v for v in row] for row in dashboard.heatmap_psi],
            x=[w.start.strftime("%m-%d %H:%M") for w in dashboard.windows], y=dashboard.heatmap_features,
            zmin=0, zmax=zmax, colorscale=scale, xgap=1, ygap=1, hoverongaps=False,
            colorbar={"title": {"text": "PSI"}, "thickness": 12},
            hovertemplate="%{y}<br>window from %{x}<br>PSI %{z:.3f}<extra></extra>",
        ))
        # Windows as categories: one column each, however few (a date axis would zoom into
        # milliseconds around a single window).
        fig.update_xaxes(_axis("Window start (UTC)", showgrid=False, type="category"))
        fig.update_yaxes(_axis("Feature", autorange="reversed", showgrid=False, type="category"))
        figures["heatmap"] = _layout(fig, height=max(260, 90 + 26 * len(dashboard.heatmap_features)), show_legend=False)
    else:
        figures["heatmap"] = None
        empty["heatmap"] = reason or "No drift windows in this range."

    if dashboard.top_features:
        features = dashboard.top_features
        fig = go.Figure(go.Bar(
            x=[f.psi for f in features], y=[f.feature for f in features], orientation="h",
            marker={"color": [STATUS_COLOURS.get(f.status, "#7a8494") for f in features]},
            customdata=[[f.js, "—" if f.ks is None else f"{f.ks:.3f}", f.status] for f in features],
            hovertemplate="%{y}<br>PSI %{x:.3f} · JS %{customdata[0]:.3f} · KS %{customdata[1]}"
                          "<br>%{customdata[2]}<extra></extra>",
        ))
        _threshold_lines(fig, config.psi_warning, config.psi_alert, axis="x")
        fig.update_xaxes(_axis("PSI (latest window)", rangemode="tozero"))
        fig.update_yaxes(_axis("", autorange="reversed", type="category"))
        figures["top_features"] = _layout(fig, height=max(240, 80 + 28 * len(features)), show_legend=False)
    else:
        figures["top_features"] = None
        empty["top_features"] = reason or "No drift results in this range."

    if dashboard.distribution is not None:
        figures["distribution"] = _distribution_figure(dashboard.distribution, f"{dashboard.feature} (reference bins)")
    else:
        figures["distribution"] = None
        empty["distribution"] = reason or (f"No live values of {dashboard.feature} in this range."
                                           if dashboard.feature else "The reference profile has no features.")

    if dashboard.prediction_trend:
        fig = go.Figure()
        starts = [_time(t) for t, *_ in dashboard.prediction_trend]
        fig.add_trace(go.Scatter(x=starts, y=[p for _, p, _, _ in dashboard.prediction_trend], mode="lines+markers",
                                 name="PSI", line={"color": "#1f5fbf", "width": 2},
                                 hovertemplate="PSI %{y:.3f}<extra></extra>"))
        fig.add_trace(go.Scatter(x=starts, y=[j for _, _, j, _ in dashboard.prediction_trend], mode="lines+markers",
                                 name="Jensen–Shannon distance", line={"color": "#6b5fb5", "width": 2, "dash": "dash"},
                                 hovertemplate="JS %{y:.3f}<extra></extra>"))
        _threshold_lines(fig, config.psi_warning, config.psi_alert)
        fig.update_xaxes(_axis("Window start (UTC)", range=[_time(dashboard.window.start), _time(dashboard.window.end)]))
        fig.update_yaxes(_axis("Drift of the prediction", rangemode="tozero"))
        figures["prediction_trend"] = _layout(fig, hovermode="x unified")
    else:
        figures["prediction_trend"] = None
        empty["prediction_trend"] = reason or (
            "The reference profile has no prediction column." if not dashboard.prediction_name
            else "No prediction drift results in this range (the responses carried no predictions).")

    if dashboard.prediction_distribution is not None:
        figures["prediction_distribution"] = _distribution_figure(
            dashboard.prediction_distribution, f"{dashboard.prediction_name} (reference bins)")
    else:
        figures["prediction_distribution"] = None
        empty["prediction_distribution"] = reason or "No logged predictions in this range."
    return _result(figures, empty)


# --- overview -----------------------------------------------------------------------------------

def overview_figures(overview: Overview) -> dict:
    figures: dict[str, go.Figure | None] = {}
    empty: dict[str, str] = {}
    if overview.endpoint_count:
        phases = [(p, n) for p, n in overview.phases if n or p in ("Ready", "Failed")]
        fig = go.Figure(go.Bar(x=[p for p, _ in phases], y=[n for _, n in phases],
                               marker={"color": [PHASE_COLOURS.get(p, "#9aa4b2") for p, _ in phases]},
                               text=[n for _, n in phases], textposition="outside",
                               hovertemplate="%{x}: %{y} endpoints<extra></extra>"))
        fig.update_xaxes(_axis("Phase", type="category"))
        fig.update_yaxes(_axis("Endpoints", rangemode="tozero", dtick=1 if max(n for _, n in phases) < 10 else None))
        figures["phases"] = _layout(fig, show_legend=False)
    else:
        figures["phases"] = None
        empty["phases"] = "You cannot see any endpoints yet."

    if overview.accelerators:
        names = [a["profile"] for a in overview.accelerators]
        fig = go.Figure()
        fig.add_trace(go.Bar(x=names, y=[a["at_min"] for a in overview.accelerators], name="Requested at min replicas",
                             marker={"color": "#8fb3e8"}, hovertemplate="%{y} accelerators<extra>at min replicas</extra>"))
        fig.add_trace(go.Bar(x=names, y=[a["at_max"] for a in overview.accelerators], name="Requested at max replicas",
                             marker={"color": "#1f5fbf"}, hovertemplate="%{y} accelerators<extra>at max replicas</extra>"))
        fig.add_trace(go.Bar(x=names, y=[a["capacity"] for a in overview.accelerators], name="Capacity",
                             marker={"color": "#9aa4b2"}, hovertemplate="%{y} accelerators<extra>capacity</extra>"))
        fig.update_xaxes(_axis("Hardware profile", type="category"))
        fig.update_yaxes(_axis("Accelerators", rangemode="tozero"))
        figures["accelerators"] = _layout(fig, barmode="group")
    else:
        figures["accelerators"] = None
        empty["accelerators"] = "No hardware profile with accelerators is defined."

    if overview.busiest:
        rows = overview.busiest
        fig = go.Figure(go.Bar(
            x=[r["requests"] for r in rows], y=[f"{r['project']}/{r['name']}" for r in rows], orientation="h",
            marker={"color": "#1f5fbf"}, customdata=[[r["errors"], r["error_rate"]] for r in rows],
            hovertemplate="%{y}<br>%{x} requests · %{customdata[0]} without response "
                          "(%{customdata[1]:.1f} %)<extra></extra>"))
        fig.update_xaxes(_axis("Requests in the range", rangemode="tozero"))
        fig.update_yaxes(_axis("", autorange="reversed", type="category"))
        figures["busiest"] = _layout(fig, height=max(220, 70 + 28 * len(rows)), show_legend=False)
    else:
        figures["busiest"] = None
        empty["busiest"] = f"No inference requests were logged in the {overview.window.option.label.lower()}."
    return _result(figures, empty)


def status_label(status: str | None) -> str:
    return {drift.OK: "OK", drift.WARNING: "Warning", drift.ALERT: "Alert",
            drift.INSUFFICIENT: "Not enough data"}.get(status or "", "No data")
