"""Plotly figures of the dashboards, built from selector results (never from raw records).

Each builder returns ``{"figures": {name: figure-json or None}, "empty": {name: reason}}``: a
panel without data names the reason instead of drawing an empty chart. Figures are plain JSON
(``plotly.io`` serialises them, NaN becomes null) that ``static/js/dashboards.js`` hands to
plotly.js; only SVG traces are used (``Scatter``, ``Bar``, ``Heatmap``) — no WebGL, which
headless and locked-down browsers often lack. Times are UTC strings, and every axis says
its unit.
"""

from __future__ import annotations

import functools
import json
import math
from datetime import datetime

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio

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
COLD_START_COLOUR = "#6b5fb5"
TIME_TITLE = "Time (UTC)"


def _time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _clean(values) -> list:
    return [None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v) for v in values]


def _axis(title: str, **extra) -> dict:
    return {"title": {"text": title}, "gridcolor": GRID, "zeroline": False, "linecolor": "#9aa4b2",
            "automargin": True, **extra}


MARGIN = {"l": 16, "r": 16, "t": 36, "b": 16}
LEGEND_ON_TOP = {"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0}


def _figure(traces: list, *, height: int = 320, show_legend: bool = True, **layout) -> go.Figure:
    """One figure built in a single constructor call: plotly validates it once (incremental
    ``update_*`` calls cost ten times more per request)."""
    base = {
        "template": "none", "height": height, "font": {"family": FONT, "size": 13, "color": TEXT},
        "margin": MARGIN, "paper_bgcolor": "#ffffff", "plot_bgcolor": "#ffffff",
        "showlegend": show_legend, "legend": LEGEND_ON_TOP, "hoverlabel": {"font": {"family": FONT}},
    }
    return go.Figure(data=traces, layout={**base, **layout})


def _columns(titles: list[str], x_axis: dict, y_axis: dict, *, share_y: bool = True, gap: float = 0.05) -> dict:
    """Layout of side-by-side panels (one x/y axis pair each) with a title above each."""
    count = len(titles)
    width = (1.0 - gap * (count - 1)) / count
    layout: dict = {"annotations": []}
    for index, title in enumerate(titles):
        suffix = "" if index == 0 else str(index + 1)
        left = index * (width + gap)
        layout[f"xaxis{suffix}"] = {**x_axis, "domain": [left, left + width], "anchor": f"y{suffix}"}
        y_settings = {**y_axis, "anchor": f"x{suffix}"}
        if index and share_y:
            y_settings = {**y_settings, "matches": "y", "showticklabels": False, "title": {"text": ""}}
        layout[f"yaxis{suffix}"] = y_settings
        layout["annotations"].append({"text": title, "xref": "paper", "yref": "paper", "x": left + width / 2,
                                      "y": 1.0, "xanchor": "center", "yanchor": "bottom", "showarrow": False,
                                      "font": {"size": 14}})
    return layout


def _thresholds(warning: float, alert: float, *, axis: str = "y") -> dict:
    """Dashed warning and alert lines (shapes) with their labels (annotations). Vertical lines
    (``axis="x"``, over bars) get their labels above the plot, never over the bars: the
    warning label ends at its line and the alert label starts at its own, so the two cannot
    overlap each other however close the thresholds sit on a narrow chart. Horizontal lines
    get their labels right of the plot, the warning label under its line and the alert label
    over its own, for the same reason."""
    shapes, annotations = [], []
    for value, label, colour, side in ((warning, "warning", STATUS_COLOURS["warning"], "right"),
                                       (alert, "alert", STATUS_COLOURS["alert"], "left")):
        line = {"color": colour, "dash": "dash", "width": 1}
        text = f"{label} {value:g}"
        if axis == "y":
            shapes.append({"type": "line", "xref": "paper", "x0": 0, "x1": 1, "yref": "y", "y0": value, "y1": value,
                           "line": line})
            annotations.append({"text": text, "xref": "paper", "x": 1, "yref": "y", "y": value, "showarrow": False,
                                "xanchor": "left", "yanchor": "top" if side == "right" else "bottom",
                                "font": {"size": 11, "color": colour}})
        else:
            shapes.append({"type": "line", "yref": "paper", "y0": 0, "y1": 1, "xref": "x", "x0": value, "x1": value,
                           "line": line})
            annotations.append({"text": text, "yref": "paper", "y": 1, "xref": "x", "x": value,
                                "showarrow": False, "xanchor": side, "yanchor": "bottom",
                                "font": {"size": 11, "color": colour}})
    layout = {"shapes": shapes, "annotations": annotations}
    if axis == "y":
        layout["margin"] = {**MARGIN, "r": 84}  # room for the labels right of the plot
    return layout


def to_json(fig: go.Figure | dict) -> dict:
    if isinstance(fig, dict):  # already what plotly.js reads (_plain_figure)
        return fig
    return json.loads(pio.to_json(fig, validate=False, engine="json"))


def _result(figures: dict, empty: dict) -> dict:
    return {"figures": {name: (to_json(fig) if fig is not None else None) for name, fig in figures.items()},
            "empty": empty}


def _scatter(**attributes) -> dict:
    return {**attributes, "type": "scatter"}


@functools.cache
def _scatter_template() -> dict:
    """What plotly writes for ``template: "none"`` in a figure of scatter traces."""
    figure = go.Figure(data=[go.Scatter(x=[0], y=[0])], layout={"template": "none"})
    return json.loads(pio.to_json(figure, validate=False, engine="json"))["layout"]["template"]


def _plain_figure(traces: list[dict], *, height: int = 320, show_legend: bool = True, **layout) -> dict:
    """``_figure`` for scatter traces, as the JSON plotly would write for it, built without
    plotly's object validation: the latency tab's three figures cost ~20 ms each through
    plotly's objects, which was most of the 24-hour dashboard's time (docs/performance.md).
    A test checks that both give the same JSON."""
    base = {
        "height": height, "font": {"family": FONT, "size": 13, "color": TEXT},
        "margin": MARGIN, "paper_bgcolor": "#ffffff", "plot_bgcolor": "#ffffff",
        "showlegend": show_legend, "legend": LEGEND_ON_TOP, "hoverlabel": {"font": {"family": FONT}},
    }
    return {"data": traces, "layout": {**base, **layout, "template": _scatter_template()}}


# --- latency ------------------------------------------------------------------------------------

def _error_rate(version) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(version.requests > 0, version.errors / np.maximum(version.requests, 1) * 100, np.nan)


def _cold_start_markers(cold_starts, columns: int, annotations: list) -> dict:
    """A dotted vertical line on every column at each scale from zero, labelled with the wait
    once (on the first column): the first request's wait is not in the logged latencies."""
    shapes = []
    annotations = list(annotations)
    for start in cold_starts:
        moment = _time(start.time)
        wait = f"{start.seconds:.1f} s" if start.seconds is not None else "cold start"
        for column in range(1, columns + 1):
            suffix = "" if column == 1 else str(column)
            shapes.append({"type": "line", "xref": f"x{suffix}", "x0": moment, "x1": moment, "yref": "paper",
                           "y0": 0, "y1": 1, "line": {"color": COLD_START_COLOUR, "dash": "dot", "width": 1.5}})
        annotations.append({"text": f"cold start {wait}", "xref": "x", "x": moment, "yref": "paper", "y": 1,
                            "xanchor": "left", "yanchor": "top", "showarrow": False,
                            "hovertext": start.message, "font": {"size": 11, "color": COLD_START_COLOUR}})
    return {"shapes": shapes, "annotations": annotations} if shapes else {}


def latency_figures(dashboard: LatencyDashboard) -> dict:
    times = [_time(t) for t in dashboard.window.times]
    span = [_time(dashboard.window.start), _time(dashboard.window.end)]
    step = dashboard.window.step
    versions = dashboard.versions
    figures: dict[str, go.Figure | dict | None] = {}
    empty: dict[str, str] = {}
    time_axis = _axis(TIME_TITLE, range=span, type="date")
    top_legend = {"margin": {"l": 16, "r": 16, "t": 76, "b": 16},
                  "legend": {**LEGEND_ON_TOP, "y": 1.16}, "hovermode": "x unified"}

    shown = versions[:3]
    if dashboard.has_latency:
        traces = []
        for column, version in enumerate(shown, start=1):
            suffix = "" if column == 1 else str(column)
            for index, name in enumerate(QUANTILE_NAMES):
                traces.append(_scatter(
                    x=times, y=_clean(version.percentiles[:, index]), mode="lines", name=name,
                    legendgroup=name, showlegend=column == 1, xaxis=f"x{suffix}", yaxis=f"y{suffix}",
                    line={"color": ROLE_COLOURS[version.role], "dash": QUANTILE_DASH[index], "width": 2},
                    hovertemplate=f"{name} %{{y:.1f}} ms<extra>{version.label}</extra>",
                ))
        layout = _columns([v.label for v in shown], time_axis, _axis("Latency (ms)", rangemode="tozero"))
        layout.update(_cold_start_markers(dashboard.cold_starts, len(shown), layout["annotations"]))
        figures["latency"] = _plain_figure(traces, height=360, **top_legend, **layout)
    else:
        figures["latency"] = None
        empty["latency"] = dashboard.note or dashboard.empty_reason or "No answered requests in this range."

    if versions:
        traces = [_scatter(x=times, y=_clean(version.requests / step), mode="lines", name=version.label,
                             line={"color": ROLE_COLOURS[version.role], "width": 2},
                             hovertemplate="%{y:.2f} requests/s<extra>" + version.label + "</extra>")
                  for version in versions]
        figures["throughput"] = _plain_figure(traces, hovermode="x unified", xaxis=time_axis,
                                        yaxis=_axis("Requests per second", rangemode="tozero"))
    else:
        figures["throughput"] = None
        empty["throughput"] = dashboard.empty_reason or "No requests in this range."

    if versions and dashboard.note is None:
        rates = [(version, _error_rate(version)) for version in versions]
        traces = [_scatter(x=times, y=_clean(rate), mode="lines+markers", name=version.label, marker={"size": 4},
                             line={"color": ROLE_COLOURS[version.role], "width": 2},
                             hovertemplate="%{y:.2f} % errors<extra>" + version.label + "</extra>")
                  for version, rate in rates]
        peak = max((float(np.nanmax(np.nan_to_num(rate, nan=0.0))) for _, rate in rates), default=0.0)
        figures["errors"] = _plain_figure(traces, hovermode="x unified", xaxis=time_axis,
                                    yaxis=_axis("Requests without a response (%)", range=[0, max(5.0, peak * 1.15)]))
    else:
        figures["errors"] = None
        empty["errors"] = dashboard.note or dashboard.empty_reason or "No requests in this range."

    if dashboard.prometheus_configured:
        series = dashboard.prometheus
        if series is not None:
            traces = [go.Scatter(x=times, y=series.percentiles[q], mode="lines", name=QUANTILE_NAMES[index],
                                 line={"color": "#0f766e", "dash": QUANTILE_DASH[index], "width": 2},
                                 hovertemplate="%{y:.1f} ms")
                      for index, q in enumerate(series.percentiles)]
            traces.append(go.Scatter(x=times, y=series.rate, mode="lines", name="requests/s", xaxis="x2", yaxis="y2",
                                     line={"color": "#0f766e", "width": 2}, hovertemplate="%{y:.2f} requests/s"))
            layout = _columns([f"Latency ({series.family.label})", "Requests per second"], time_axis,
                              _axis("Latency (ms)", rangemode="tozero"), share_y=False, gap=0.1)
            layout["yaxis2"]["title"] = {"text": "Requests per second"}
            figures["prometheus"] = _figure(traces, height=360, **top_legend, **layout)
        else:
            figures["prometheus"] = None
            empty["prometheus"] = dashboard.prometheus_error or (
                "Prometheus has no KServe or Knative request metrics for this endpoint in this range.")
    return _result(figures, empty)


# --- drift --------------------------------------------------------------------------------------

def _distribution_figure(distribution, title: str) -> go.Figure:
    traces = [
        go.Bar(x=distribution.labels, y=[v * 100 for v in distribution.reference], name="Reference",
               marker={"color": "#9aa4b2"}, hovertemplate="%{x}: %{y:.1f} %<extra>Reference</extra>"),
        go.Bar(x=distribution.labels, y=[v * 100 for v in distribution.current], name="Live traffic",
               marker={"color": "#1f5fbf"}, hovertemplate="%{x}: %{y:.1f} %<extra>Live traffic</extra>"),
    ]
    return _figure(traces, barmode="group", bargap=0.25, xaxis=_axis(title, type="category"),
                   yaxis=_axis("Share of rows (%)", rangemode="tozero"))


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
        heatmap = go.Heatmap(
            z=dashboard.heatmap_psi, x=[w.start.strftime("%m-%d %H:%M") for w in dashboard.windows],
            y=dashboard.heatmap_features, zmin=0, zmax=zmax, colorscale=scale, xgap=1, ygap=1, hoverongaps=False,
            colorbar={"title": {"text": "PSI"}, "thickness": 12},
            hovertemplate="%{y}<br>window from %{x}<br>PSI %{z:.3f}<extra></extra>",
        )
        # Windows as categories: one column each, however few (a date axis would zoom into
        # milliseconds around a single window).
        figures["heatmap"] = _figure(
            [heatmap], height=max(260, 90 + 26 * len(dashboard.heatmap_features)), show_legend=False,
            xaxis=_axis("Window start (UTC)", showgrid=False, type="category"),
            yaxis=_axis("Feature", autorange="reversed", showgrid=False, type="category"))
    else:
        figures["heatmap"] = None
        empty["heatmap"] = reason or "No drift windows in this range."

    if dashboard.top_features:
        features = dashboard.top_features
        bars = go.Bar(
            x=[f.psi for f in features], y=[f.feature for f in features], orientation="h",
            marker={"color": [STATUS_COLOURS.get(f.status, "#7a8494") for f in features]},
            customdata=[[f.js, "—" if f.ks is None else f"{f.ks:.3f}", f.status] for f in features],
            hovertemplate="%{y}<br>PSI %{x:.3f} · JS %{customdata[0]:.3f} · KS %{customdata[1]}"
                          "<br>%{customdata[2]}<extra></extra>",
        )
        figures["top_features"] = _figure(
            [bars], height=max(240, 80 + 28 * len(features)), show_legend=False,
            xaxis=_axis("PSI (latest window)", rangemode="tozero"),
            yaxis=_axis("", autorange="reversed", type="category"),
            **_thresholds(config.psi_warning, config.psi_alert, axis="x"))
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
        starts = [_time(t) for t, *_ in dashboard.prediction_trend]
        traces = [
            go.Scatter(x=starts, y=[p for _, p, _, _ in dashboard.prediction_trend], mode="lines+markers", name="PSI",
                       line={"color": "#1f5fbf", "width": 2}, hovertemplate="PSI %{y:.3f}<extra></extra>"),
            go.Scatter(x=starts, y=[j for _, _, j, _ in dashboard.prediction_trend], mode="lines+markers",
                       name="Jensen–Shannon distance", line={"color": "#6b5fb5", "width": 2, "dash": "dash"},
                       hovertemplate="JS %{y:.3f}<extra></extra>"),
        ]
        figures["prediction_trend"] = _figure(
            traces, hovermode="x unified",
            xaxis=_axis("Window start (UTC)", type="date",
                        range=[_time(dashboard.window.start), _time(dashboard.window.end)]),
            yaxis=_axis("Drift of the prediction", rangemode="tozero"),
            **_thresholds(config.psi_warning, config.psi_alert))
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
        bars = go.Bar(x=[p for p, _ in phases], y=[n for _, n in phases],
                      marker={"color": [PHASE_COLOURS.get(p, "#9aa4b2") for p, _ in phases]},
                      text=[n for _, n in phases], textposition="outside",
                      hovertemplate="%{x}: %{y} endpoints<extra></extra>")
        few = max(n for _, n in phases) < 10
        figures["phases"] = _figure([bars], show_legend=False, xaxis=_axis("Phase", type="category"),
                                    yaxis=_axis("Endpoints", rangemode="tozero", **({"dtick": 1} if few else {})))
    else:
        figures["phases"] = None
        empty["phases"] = "You cannot see any endpoints yet."

    if overview.accelerators:
        names = [a["profile"] for a in overview.accelerators]
        traces = [
            go.Bar(x=names, y=[a["at_min"] for a in overview.accelerators], name="Requested at min replicas",
                   marker={"color": "#8fb3e8"}, hovertemplate="%{y} accelerators<extra>at min replicas</extra>"),
            go.Bar(x=names, y=[a["at_max"] for a in overview.accelerators], name="Requested at max replicas",
                   marker={"color": "#1f5fbf"}, hovertemplate="%{y} accelerators<extra>at max replicas</extra>"),
            go.Bar(x=names, y=[a["capacity"] for a in overview.accelerators], name="Capacity",
                   marker={"color": "#9aa4b2"}, hovertemplate="%{y} accelerators<extra>capacity</extra>"),
        ]
        figures["accelerators"] = _figure(traces, barmode="group", xaxis=_axis("Hardware profile", type="category"),
                                          yaxis=_axis("Accelerators", rangemode="tozero"))
    else:
        figures["accelerators"] = None
        empty["accelerators"] = "No hardware profile with accelerators is defined."

    if overview.busiest:
        rows = overview.busiest
        bars = go.Bar(
            x=[r["requests"] for r in rows], y=[f"{r['project']}/{r['name']}" for r in rows], orientation="h",
            marker={"color": "#1f5fbf"}, customdata=[[r["errors"], r["error_rate"]] for r in rows],
            hovertemplate="%{y}<br>%{x} requests · %{customdata[0]} without response "
                          "(%{customdata[1]:.1f} %)<extra></extra>")
        figures["busiest"] = _figure([bars], height=max(220, 70 + 28 * len(rows)), show_legend=False,
                                     xaxis=_axis("Requests in the range", rangemode="tozero"),
                                     yaxis=_axis("", autorange="reversed", type="category"))
    else:
        figures["busiest"] = None
        empty["busiest"] = f"No inference requests were logged in the {overview.window.option.label.lower()}."
    return _result(figures, empty)



# --- rollout timeline -----------------------------------------------------------------------------

DECISION_COLOURS = {"start": "#1f5fbf", "advance": "#1a7437", "promote": "#1a7437", "skip": "#6b5fb5",
                    "rollback": "#b42318", "remove": "#b42318", "abort": "#b42318", "pause": "#c98a00",
                    "resume": "#1f5fbf", "hold": "#c98a00", "cancel": "#7a8494", "wait": "#7a8494"}
RATIO_GATES = ("error_rate", "p95_ratio", "p99_ratio", "prediction_psi", "prediction_js")


def rollout_timeline_figure(rollout, decisions: list, *, now: datetime) -> dict:
    """Two stacked panels sharing the time axis: the canary's traffic share step by step, with
    every decision marked (who or what made it, and why, on hover); below, each gate's value at
    each decision as a share of its threshold (1 = the threshold), failed values in red."""
    times, percents, last = [], [], None
    for decision in decisions:
        if decision.applied_at is not None and decision.kind not in ("pause", "resume", "hold", "cancel"):
            times.append(_time(decision.applied_at))
            percents.append(decision.traffic_percent or 0)
            last = decision.applied_at
    if times:
        end = rollout.finished_at or max(now, last)
        times.append(_time(end))
        percents.append(percents[-1])
    traces = [_scatter(x=times, y=percents, mode="lines", line={"shape": "hv", "color": ROLE_COLOURS["canary"],
                                                                  "width": 2},
                       name="Canary traffic %", hovertemplate="%{y}%<extra>canary traffic</extra>")]
    by_kind: dict[str, dict] = {}
    for decision in decisions:
        entry = by_kind.setdefault(decision.kind, {"x": [], "y": [], "text": []})
        entry["x"].append(_time(decision.decided_at))
        entry["y"].append(decision.traffic_percent if decision.traffic_percent is not None else 0)
        entry["text"].append(f"{decision.get_kind_display()} by {decision.actor_name}<br>{decision.reason[:120]}")
    for kind, entry in by_kind.items():
        traces.append(_scatter(x=entry["x"], y=entry["y"], text=entry["text"], mode="markers",
                               marker={"size": 11, "color": DECISION_COLOURS.get(kind, TEXT), "symbol": "diamond"},
                               name=kind.capitalize(), hovertemplate="%{text}<extra></extra>"))
    gate_points: dict[str, dict] = {}
    evaluations = [(d.decided_at, d.gates) for d in decisions if d.gates]
    if rollout.is_active and rollout.last_evaluation.get("gates"):
        evaluations.append((datetime.fromisoformat(rollout.last_evaluation["at"]), rollout.last_evaluation["gates"]))
    for moment, gates in evaluations:
        for gate in gates:
            threshold = gate.get("threshold")
            if gate.get("gate") not in RATIO_GATES or gate.get("value") is None or not threshold:
                continue
            entry = gate_points.setdefault(gate["gate"], {"x": [], "y": [], "text": [], "colour": [],
                                                          "label": gate.get("label", gate["gate"])})
            entry["x"].append(_time(moment))
            entry["y"].append(round(gate["value"] / threshold, 4))
            entry["text"].append(f"{gate.get('label')}: {gate['value']:g} (threshold {threshold:g})")
            entry["colour"].append(STATUS_COLOURS["alert"] if gate.get("passed") is False else STATUS_COLOURS["ok"])
    dashes = ("solid", "dash", "dot", "dashdot", "longdash")
    for index, entry in enumerate(gate_points.values()):
        traces.append(_scatter(x=entry["x"], y=entry["y"], text=entry["text"], mode="lines+markers",
                               xaxis="x2", yaxis="y2", name=entry["label"],
                               line={"dash": dashes[index % len(dashes)], "color": "#7a8494", "width": 1},
                               marker={"size": 9, "color": entry["colour"]},
                               hovertemplate="%{text}<extra></extra>"))
    # The threshold as a trace, not a shape: it spans the rollout's time, and it keeps the lower
    # panel from being empty (plotly draws an empty subplot's axes with NaN coordinates).
    span = [times[0], times[-1]] if times else [_time(rollout.created_at), _time(now)]
    traces.append(_scatter(x=span, y=[1, 1], xaxis="x2", yaxis="y2", mode="lines", name="Threshold",
                           line={"color": STATUS_COLOURS["alert"], "dash": "dash", "width": 1}, hoverinfo="skip"))
    x_axis = _axis(TIME_TITLE, type="date")
    layout = {
        "xaxis": {**x_axis, "domain": [0, 1], "anchor": "y", "showticklabels": False, "title": {"text": ""}},
        "yaxis": _axis("Canary traffic (%)", range=[-5, 105], domain=[0.55, 1.0], anchor="x"),
        "xaxis2": {**x_axis, "domain": [0, 1], "anchor": "y2", "matches": "x"},
        "yaxis2": _axis("Gate value ÷ threshold", domain=[0.0, 0.42], anchor="x2", rangemode="tozero"),
    }
    return _plain_figure(traces, height=460, **layout)
