"""Drift between a reference distribution and a window of live traffic, from binned counts.

Pure numpy, no Django. Both sides are binned with the reference profile's bins
(``endpoints.profiles``): numeric features by the reference quantile cuts (open-ended outer
bins), categorical ones by the reference categories plus ``__other__``. The live side arrives
as counts per bin (``monitoring.services`` adds them up as records arrive); the reference
side as proportions. Nothing here ever sees a raw value.

Conventions (docs/monitoring.md explains the choices):

- **Missing values** are one more bin, appended after the value bins, whenever either side
  has any (the profile stores the reference's missing fraction). A feature that starts
  arriving empty therefore drifts; KS ignores them (it compares the CDFs of present values).
- **Empty bins.** PSI divides by and takes logarithms of proportions, so before PSI every
  proportion is floored at ``EPSILON`` = 1e-4 and the distribution renormalised. A bin empty
  on one side thus contributes a large but finite term (about ``p * ln(p / 1e-4)``).
  Jensen–Shannon needs no epsilon (0 · log 0 = 0 and its mixture is never zero where
  either side is not).
- **PSI** = Σ (cᵢ − rᵢ) · ln(cᵢ / rᵢ), natural logarithm — the base the usual thresholds
  (0.1 moderate, 0.25 significant shift) are stated in.
- **Jensen–Shannon distance** = √JSD with JSD in **base 2**, so it lies in [0, 1]
  (0 identical, 1 disjoint); the same as ``scipy.spatial.distance.jensenshannon(r, c, base=2)``.
- **KS from bins** (numeric features): max over the reference cut points of the absolute
  difference between the two cumulative distributions, i.e. the two-sample KS statistic
  evaluated at the cuts only. It never exceeds the KS statistic of the raw samples and
  falls short of it by at most the largest single-bin proportion on either side (within a
  bin both CDFs are monotone between their values at its two cuts).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EPSILON = 1e-4

OK = "ok"
WARNING = "warning"
ALERT = "alert"
INSUFFICIENT = "insufficient"
STATUS_ORDER = {INSUFFICIENT: 0, OK: 1, WARNING: 2, ALERT: 3}

DEFAULT_PSI_WARNING = 0.1
DEFAULT_PSI_ALERT = 0.25


def normalise(values) -> np.ndarray:
    """Proportions summing to 1 (all zeros stay zeros)."""
    array = np.asarray(values, dtype=float)
    total = array.sum()
    return array / total if total > 0 else array


def _floored(proportions: np.ndarray, epsilon: float) -> np.ndarray:
    return normalise(np.maximum(proportions, epsilon))


def psi(reference, current, *, epsilon: float = EPSILON) -> float:
    """Population stability index of ``current`` against ``reference`` (counts or proportions
    over the same bins), natural log, empty bins floored at ``epsilon``."""
    r = _floored(normalise(reference), epsilon)
    c = _floored(normalise(current), epsilon)
    return float(np.sum((c - r) * np.log(c / r)))


def js_distance(reference, current) -> float:
    """Jensen–Shannon distance (base 2, in [0, 1]) between two binned distributions."""
    r = normalise(reference)
    c = normalise(current)
    m = (r + c) / 2.0

    def kl(p: np.ndarray) -> float:
        mask = p > 0
        return float(np.sum(p[mask] * np.log2(p[mask] / m[mask])))

    divergence = max(0.0, (kl(r) + kl(c)) / 2.0)  # rounding can dip a hair below zero
    return float(np.sqrt(divergence))


def ks_from_bins(reference, current) -> float:
    """Two-sample KS statistic evaluated at the bin cuts: max |CDF_ref − CDF_cur| over the
    boundaries between consecutive bins (ordered numeric bins, missing excluded)."""
    r = np.cumsum(normalise(reference))[:-1]
    c = np.cumsum(normalise(current))[:-1]
    if r.size == 0:
        return 0.0
    return float(np.max(np.abs(r - c)))


@dataclass(frozen=True)
class FeatureComparison:
    """Drift of one feature (or the prediction) in one window."""

    psi: float
    js: float
    ks: float | None  # numeric features only
    rows: int
    reference: tuple[float, ...]  # proportions per bin (+ missing bin when shown)
    current: tuple[float, ...]


def compare(reference_proportions, current_counts, *, numeric: bool, reference_missing: float = 0.0,
            current_missing: int = 0, epsilon: float = EPSILON) -> FeatureComparison:
    """Compare a window's counts per reference bin (and its count of missing values) with the
    reference proportions (of present values) and missing fraction."""
    ref = normalise(reference_proportions)
    counts = np.asarray(current_counts, dtype=float)
    if len(ref) != len(counts):
        raise ValueError(f"{len(counts)} live bins for {len(ref)} reference bins")
    rows = int(counts.sum() + current_missing)
    if reference_missing > 0 or current_missing > 0:
        ref_full = np.append(ref * (1.0 - reference_missing), reference_missing)
        cur_full = np.append(counts, float(current_missing))
    else:
        ref_full, cur_full = ref, counts
    return FeatureComparison(
        psi=psi(ref_full, cur_full, epsilon=epsilon),
        js=js_distance(ref_full, cur_full),
        ks=ks_from_bins(ref, counts) if numeric and counts.sum() > 0 else None,
        rows=rows,
        reference=tuple(float(v) for v in ref_full),
        current=tuple(float(v) for v in normalise(cur_full)),
    )


def status_for(psi_value: float | None, *, warning: float = DEFAULT_PSI_WARNING,
               alert: float = DEFAULT_PSI_ALERT) -> str:
    """OK below ``warning``, warning from it, alert from ``alert`` (PSI thresholds)."""
    if psi_value is None or not np.isfinite(psi_value):
        return INSUFFICIENT
    if psi_value >= alert:
        return ALERT
    if psi_value >= warning:
        return WARNING
    return OK


def worst(statuses) -> str:
    """The most severe of several statuses (insufficient < ok < warning < alert)."""
    return max(statuses, key=STATUS_ORDER.__getitem__, default=INSUFFICIENT)


def bin_labels(feature: dict, *, with_missing: bool = False) -> list[str]:
    """Readable labels for a profile feature's bins: "< 5.1", "5.1 – 5.4", "≥ 6.2" for numeric
    cuts, the category names for categorical ones (``__other__`` shown as "other")."""
    if feature.get("type") == "categorical":
        labels = ["other" if c == "__other__" else str(c) for c in feature.get("categories", [])]
    else:
        cuts = [float(c) for c in feature.get("cuts", [])]
        if not cuts:
            labels = ["all values"]
        else:
            labels = [f"< {_number(cuts[0])}"]
            labels += [f"{_number(a)} – {_number(b)}" for a, b in zip(cuts, cuts[1:], strict=False)]
            labels.append(f"≥ {_number(cuts[-1])}")
    if with_missing:
        labels.append("missing")
    return labels


def _number(value: float) -> str:
    return f"{value:.4g}"
