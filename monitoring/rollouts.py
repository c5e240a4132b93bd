"""The gates of automated canary rollouts, measured from the monitoring rollups — never from
raw inference records — and the periodic evaluation that hands them to
``endpoints.services.rollouts.rollout_decide``.

The step's window runs from the first whole minute after the step started (the minute rollups
before it mix the previous traffic share) to now. Over it:

- **requests / time**: the canary must have served ``min_step_requests`` and the step must have
  lasted ``min_step_minutes``; until then the verdict is "waiting: 38 of 200 requests" (a
  decision too, shown on the timeline, never a silent pass);
- **error rate**: canary − primary, in percentage points (minute ``LatencyRollup`` rows);
- **p95 / p99 ratio**: canary ÷ primary, from the rollups' latency histograms;
- **prediction drift**: PSI and Jensen–Shannon distance of the canary's predictions against
  the primary's over the same hours, or against the canary version's reference profile
  (``BinCount`` rows are hourly, so this window is the hours the step overlaps);
- **feature drift**: a drift alert on the canary version in a window ending after the step started.

The primary's side of each comparison uses the step's window when it served enough requests
there, else the whole rollout so far (at a 100 % step the primary serves nothing).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import numpy as np
from django.db.models import Sum
from django.utils import timezone

from endpoints.models import Rollout, RolloutDecision
from endpoints.rollout_policy import Verdict
from endpoints.services import rollouts as rollout_services
from monitoring import drift, figures, metrics
from monitoring.models import BinCount, DriftWindow, LatencyRollup

logger = logging.getLogger(__name__)

GATE_LABELS = {
    "requests": "Canary requests",
    "duration": "Step duration (min)",
    "error_rate": "Error rate increase (pp)",
    "p95_ratio": "p95 latency ratio",
    "p99_ratio": "p99 latency ratio",
    "prediction_psi": "Prediction PSI",
    "prediction_js": "Prediction JS distance",
    "feature_drift": "Feature drift alerts",
}


def _ceil_minute(moment: datetime) -> datetime:
    floored = moment.replace(second=0, microsecond=0)
    return floored if floored == moment else floored + timedelta(minutes=1)


def _floor_hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


class _Traffic:
    """Requests, errors and the latency histogram of one version over a window."""

    def __init__(self, endpoint_id: int, version_id: int | None, start: datetime, end: datetime):
        totals = LatencyRollup.objects.filter(
            endpoint_id=endpoint_id, version_key=version_id or 0, resolution=LatencyRollup.MINUTE,
            start__gte=start, start__lt=end,
        ).aggregate(requests=Sum("requests"), errors=Sum("errors"),
                    **{name: Sum(name) for name in metrics.BUCKET_FIELDS})
        self.requests = int(totals["requests"] or 0)
        self.errors = int(totals["errors"] or 0)
        self.histogram = np.array([totals[name] or 0 for name in metrics.BUCKET_FIELDS], dtype=float)

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests * 100 if self.requests else None

    def quantile(self, q: float) -> float | None:
        if self.histogram.sum() <= 0:
            return None
        value = float(metrics.percentiles(self.histogram, (q,))[0])
        return None if np.isnan(value) else value


def _gate(key: str, value, threshold, passed, note: str = "") -> dict:
    return {"gate": key, "label": GATE_LABELS[key], "value": None if value is None else round(float(value), 4),
            "threshold": threshold, "passed": passed, "note": note}


def _prediction_counts(endpoint_id: int, version_id: int, start: datetime, end: datetime) -> dict[int, int]:
    rows = (BinCount.objects.filter(endpoint_id=endpoint_id, model_version_id=version_id, is_prediction=True,
                                    hour__gte=_floor_hour(start), hour__lt=end)
            .values_list("bin").annotate(total=Sum("count")))
    return {int(b): int(total) for b, total in rows}


def _bins_of(feature: dict | None) -> tuple:
    if not feature:
        return ()
    return (feature.get("type"), tuple(feature.get("cuts") or ()), tuple(feature.get("categories") or ()))


def _prediction_gates(rollout: Rollout, policy: dict, start: datetime, end: datetime) -> list[dict]:
    wanted = [(k, policy.get(f"max_prediction_{k}")) for k in ("psi", "js")]
    wanted = [(k, t) for k, t in wanted if t is not None]
    if not wanted:
        return []
    canary, primary = rollout.canary_version, rollout.primary_version
    profile = canary.reference_profile if canary is not None and isinstance(canary.reference_profile, dict) else {}
    prediction = profile.get("prediction")
    if not prediction or not prediction.get("proportions"):
        return [_gate(f"prediction_{k}", None, t, None, "the canary version has no reference profile of its "
                                                         "predictions: not measured") for k, t in wanted]
    size = len(prediction["proportions"])
    live = _prediction_counts(rollout.endpoint_id, canary.pk, start, end)
    current = np.array([live.get(i, 0) for i in range(size)], dtype=float)
    baseline, note = np.asarray(prediction["proportions"], dtype=float), "against the canary's reference profile"
    if policy.get("prediction_baseline") == "primary" and primary is not None:
        primary_profile = primary.reference_profile if isinstance(primary.reference_profile, dict) else {}
        if _bins_of(primary_profile.get("prediction")) == _bins_of(prediction):
            counts = _prediction_counts(rollout.endpoint_id, primary.pk, start, end)
            primary_counts = np.array([counts.get(i, 0) for i in range(size)], dtype=float)
            if primary_counts.sum() >= min(policy["min_step_requests"], 50):
                baseline, note = primary_counts, "against the primary's predictions over the same hours"
            else:
                note = "against the canary's reference profile (too few primary predictions)"
        else:
            note = "against the canary's reference profile (the primary's prediction bins differ)"
    if current.sum() <= 0:
        return [_gate(f"prediction_{k}", None, t, None, "no canary predictions in the window") for k, t in wanted]
    values = {"psi": drift.psi(baseline, current), "js": drift.js_distance(baseline, current)}
    return [_gate(f"prediction_{k}", values[k], t, values[k] <= t, note) for k, t in wanted]


def evaluate(rollout: Rollout, *, now: datetime | None = None) -> Verdict:
    """The gates of ``rollout``'s current step over its window ending ``now``."""
    now = now or timezone.now()
    policy = rollout.policy
    start = _ceil_minute(rollout.step_started_at)
    end = now.replace(second=0, microsecond=0)  # whole minutes only: the current one is still filling
    endpoint_id = rollout.endpoint_id
    canary = _Traffic(endpoint_id, rollout.canary_version_id, start, end) if end > start else None
    gates: list[dict] = []
    minutes = max((now - rollout.step_started_at).total_seconds() / 60, 0.0)
    requests = canary.requests if canary else 0
    gates.append(_gate("requests", requests, policy["min_step_requests"], requests >= policy["min_step_requests"]))
    gates.append(_gate("duration", round(minutes, 1), policy["min_step_minutes"], minutes >= policy["min_step_minutes"]))
    waiting = [g for g in gates if not g["passed"]]
    window = (start, max(end, start))
    if canary is None or canary.requests == 0:
        message = f"waiting: 0 of {policy['min_step_requests']} requests"
        return Verdict(Verdict.WAIT, message, gates, *window)

    primary = _Traffic(endpoint_id, rollout.primary_version_id, start, end)
    baseline_note = "primary over the step's window"
    if primary.requests < min(policy["min_step_requests"], 50):
        primary = _Traffic(endpoint_id, rollout.primary_version_id, _ceil_minute(rollout.created_at), end)
        baseline_note = "primary since the rollout started (too few primary requests in the step)"
    threshold = policy.get("max_error_rate_increase")
    if threshold is not None:
        if primary.error_rate is None:
            gates.append(_gate("error_rate", None, threshold, None, "no primary requests to compare with"))
        else:
            value = canary.error_rate - primary.error_rate
            gates.append(_gate("error_rate", value, threshold, value <= threshold,
                               f"canary {canary.error_rate:.2f}% vs {baseline_note} {primary.error_rate:.2f}%"))
    for key, q in (("p95_ratio", 0.95), ("p99_ratio", 0.99)):
        threshold = policy.get(f"max_{key}")
        if threshold is None:
            continue
        mine, theirs = canary.quantile(q), primary.quantile(q)
        if mine is None or not theirs:
            gates.append(_gate(key, None, threshold, None, "no latency to compare"))
            continue
        value = mine / theirs
        gates.append(_gate(key, value, threshold, value <= threshold,
                           f"canary {mine:.1f} ms vs {baseline_note} {theirs:.1f} ms"))
    gates.extend(_prediction_gates(rollout, policy, start, max(end, start + timedelta(minutes=1))))
    if policy.get("fail_on_feature_drift_alert") and rollout.canary_version_id:
        alerts = (DriftWindow.objects.filter(endpoint_id=endpoint_id, model_version_id=rollout.canary_version_id,
                                             end__gt=rollout.step_started_at, status=drift.ALERT)
                  .order_by("-end").values_list("top_feature", "max_psi").first())
        if alerts is None:
            gates.append(_gate("feature_drift", 0, 0, True, "no drift alert on the canary since the step started"))
        else:
            gates.append(_gate("feature_drift", 1, 0, False, f"drift alert on {alerts[0]} (PSI {alerts[1]:.3f})"))

    failed = [g for g in gates if g["passed"] is False and g["gate"] not in ("requests", "duration")]
    if waiting:
        parts = [f"{requests} of {policy['min_step_requests']} requests" if not gates[0]["passed"] else "",
                 f"{minutes:.0f} of {policy['min_step_minutes']} min" if not gates[1]["passed"] else ""]
        return Verdict(Verdict.WAIT, "waiting: " + ", ".join(p for p in parts if p), gates, *window)
    if failed:
        first = failed[0]
        return Verdict(Verdict.FAIL, f"{first['label']} {first['value']} above the threshold {first['threshold']}",
                       gates, *window)
    unmeasured = [g for g in gates if g["passed"] is None]
    if unmeasured:
        names = ", ".join(g["label"] for g in unmeasured)
        return Verdict(Verdict.WAIT, f"waiting: not measured yet — {names}", gates, *window)
    return Verdict(Verdict.PASS, f"every gate passed at {rollout.current_percent}%", gates, *window)


def evaluate_rollout(*, rollout_id: int, now: datetime | None = None):
    """Measure one running rollout and decide (``rollout_decide``); returns the decision, if any."""
    rollout = (Rollout.objects.select_related("endpoint", "canary_version", "primary_version")
               .filter(pk=rollout_id).first())
    if rollout is None:
        return None
    verdict = evaluate(rollout, now=now) if rollout.state == Rollout.State.RUNNING else None
    return rollout_services.rollout_decide(rollout_id=rollout_id, verdict=verdict, now=now)


def evaluate_all(*, now: datetime | None = None) -> int:
    """One pass over every running rollout; a failure of one never stops the others."""
    count = 0
    for rollout_id in rollout_services.running_rollout_ids():
        try:
            evaluate_rollout(rollout_id=rollout_id, now=now)
            count += 1
        except Exception:  # noqa: BLE001 - one rollout's error must not stop the pass
            logger.exception("rollout %s: evaluation failed", rollout_id)
    return count


# --- reading (the Rollout tab and the API) ---------------------------------------------------------

HISTORY = 10


def rollout_data(endpoint, *, now=None) -> dict:
    """The endpoint's rollouts (newest first, at most ``HISTORY``), each with its decisions, and
    the timeline figure of the newest."""
    now = now or timezone.now()
    rollouts = list(Rollout.objects.filter(endpoint=endpoint).select_related("canary_version", "primary_version")
                    .order_by("-created_at", "-pk")[:HISTORY])
    decisions = {r.pk: [] for r in rollouts}
    for decision in RolloutDecision.objects.filter(rollout__in=rollouts).order_by("rollout_id", "sequence"):
        decisions[decision.rollout_id].append(decision)
    current = rollouts[0] if rollouts else None
    figure = figures.rollout_timeline_figure(current, decisions[current.pk], now=now) if current else None
    return {"rollouts": [(r, decisions[r.pk]) for r in rollouts], "current": current,
            "current_decisions": decisions[current.pk] if current else [],
            "figures": {"timeline": figure}, "empty": {"timeline": "No rollout yet."}}
