"""PSI, Jensen–Shannon distance and KS from bins, against scipy/numpy on worked examples."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from endpoints.profiles import bin_numeric
from monitoring import drift


def test_identical_distributions_do_not_drift():
    reference = [0.1, 0.2, 0.3, 0.4]
    comparison = drift.compare(reference, [100, 200, 300, 400], numeric=True)
    assert comparison.psi == pytest.approx(0.0, abs=1e-12)
    assert comparison.js == pytest.approx(0.0, abs=1e-7)
    assert comparison.ks == pytest.approx(0.0, abs=1e-12)


def test_psi_of_a_worked_example():
    # Σ (c − r) ln(c / r) with r = 1/4 each and c = 0.1, 0.2, 0.3, 0.4, worked by hand:
    # 0.15·ln 2.5 + 0.05·ln 1.25 + 0.05·ln 1.2 + 0.15·ln 1.6 = 0.228217...
    assert drift.psi([0.25] * 4, [0.1, 0.2, 0.3, 0.4]) == pytest.approx(0.228217, abs=1e-6)


def test_psi_floors_empty_bins_at_epsilon_and_renormalises():
    reference, current = np.array([0.5, 0.5, 0.0]), np.array([0.5, 0.3, 0.2])
    floored = np.maximum(reference, drift.EPSILON)
    floored /= floored.sum()
    expected = float(np.sum((current - floored) * np.log(current / floored)))
    assert drift.psi(reference, current) == pytest.approx(expected)
    assert np.isfinite(drift.psi([1.0, 0.0], [0.0, 1.0]))


@pytest.mark.parametrize("seed", range(5))
def test_jensen_shannon_distance_matches_scipy_in_base_two(seed):
    rng = np.random.default_rng(seed)
    reference, current = rng.random(12), rng.random(12)
    current[rng.integers(0, 12, 3)] = 0.0  # empty bins need no epsilon
    assert drift.js_distance(reference, current) == pytest.approx(jensenshannon(reference, current, base=2))
    assert drift.js_distance([1.0, 0.0], [0.0, 1.0]) == pytest.approx(1.0)


def test_a_known_mean_shift_gives_the_expected_psi_js_and_ks():
    # Reference N(0, 1) in ten equal-mass bins; live traffic N(0.5, 1). The expected live bin
    # proportions follow from the normal CDF at the cuts, so PSI, JS and KS have exact values.
    cuts = stats.norm.ppf(np.linspace(0, 1, 11)[1:-1])
    reference = np.full(10, 0.1)
    expected = np.diff(np.concatenate(([0.0], stats.norm.cdf(cuts - 0.5), [1.0])))
    expected_psi = float(np.sum((expected - reference) * np.log(expected / reference)))
    expected_ks = float(np.max(np.abs(stats.norm.cdf(cuts) - stats.norm.cdf(cuts - 0.5))))

    rng = np.random.default_rng(7)
    live = rng.normal(0.5, 1.0, 400_000)
    counts = np.bincount(bin_numeric(cuts, live), minlength=10)
    comparison = drift.compare(reference, counts, numeric=True)

    assert comparison.psi == pytest.approx(expected_psi, abs=0.005)
    assert comparison.js == pytest.approx(jensenshannon(reference, expected, base=2), abs=0.005)
    assert comparison.ks == pytest.approx(expected_ks, abs=0.005)
    assert drift.status_for(comparison.psi) == drift.WARNING  # ≈ 0.24: just under the alert line


def test_ks_from_bins_is_the_raw_ks_statistic_at_the_cuts_and_close_to_scipy():
    rng = np.random.default_rng(3)
    reference_sample, live = rng.normal(0, 1, 20_000), rng.normal(0.3, 1.2, 20_000)
    cuts = np.unique(np.quantile(reference_sample, np.linspace(0, 1, 11)[1:-1]))
    ref_counts = np.bincount(bin_numeric(cuts, reference_sample), minlength=len(cuts) + 1)
    live_counts = np.bincount(bin_numeric(cuts, live), minlength=len(cuts) + 1)
    binned = drift.ks_from_bins(ref_counts, live_counts)

    # At the cuts it equals the empirical CDFs' difference computed directly with numpy ...
    ecdf = lambda sample, x: np.searchsorted(np.sort(sample), x, side="right") / len(sample)  # noqa: E731
    assert binned == pytest.approx(np.max(np.abs(ecdf(reference_sample, cuts) - ecdf(live, cuts))))
    # ... and it never exceeds scipy's statistic on the raw samples, nor falls short of it by
    # more than the largest bin proportion.
    exact = stats.ks_2samp(reference_sample, live).statistic
    largest_bin = max(ref_counts.max() / ref_counts.sum(), live_counts.max() / live_counts.sum())
    assert binned <= exact + 1e-12
    assert exact - binned <= largest_bin


def test_missing_values_are_a_bin_of_their_own():
    comparison = drift.compare([0.5, 0.5], [40, 40], numeric=True, reference_missing=0.0, current_missing=20)
    assert len(comparison.reference) == 3 and comparison.current[-1] == pytest.approx(0.2)
    assert comparison.psi > 0.25
    assert comparison.rows == 100
    assert comparison.ks == pytest.approx(0.0)  # KS compares present values only


def test_categorical_features_have_no_ks():
    comparison = drift.compare([0.7, 0.2, 0.1], [10, 10, 80], numeric=False)
    assert comparison.ks is None and comparison.psi > 1


@pytest.mark.parametrize(("psi", "warning", "alert", "status"), [
    (0.05, 0.1, 0.25, "ok"),
    (0.1, 0.1, 0.25, "warning"),
    (0.3, 0.1, 0.25, "alert"),
    (0.3, 0.5, 1.0, "ok"),
    (0.02, 0.01, 0.02, "alert"),
    (None, 0.1, 0.25, "insufficient"),
])
def test_thresholds_decide_the_status(psi, warning, alert, status):
    assert drift.status_for(psi, warning=warning, alert=alert) == status


def test_the_worst_status_wins():
    assert drift.worst(["ok", "alert", "warning"]) == "alert"
    assert drift.worst([]) == "insufficient"


def test_bin_labels_read_like_ranges():
    assert drift.bin_labels({"type": "numeric", "cuts": [5.1, 5.4]}) == ["< 5.1", "5.1 – 5.4", "≥ 5.4"]
    assert drift.bin_labels({"type": "categorical", "categories": ["de", "__other__"]}, with_missing=True) == [
        "de", "other", "missing"]
