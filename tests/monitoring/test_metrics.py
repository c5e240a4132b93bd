"""Latency histograms and percentiles read back from them, against numpy on raw samples."""

from __future__ import annotations

import math

import numpy as np
import pytest

from monitoring import metrics

QUANTILES = [0.5, 0.9, 0.95, 0.99, 0.999]


def width_of_bucket_holding(value: float) -> float:
    lower, upper = metrics.bucket_bounds(int(metrics.bucket_index(value)))
    return upper - lower


def test_buckets_are_log_spaced_from_one_millisecond_to_a_thousand_seconds():
    assert metrics.BUCKET_COUNT == 50 and len(metrics.BUCKET_FIELDS) == 50
    assert metrics.BOUNDS_MS[0] == 1.0 and metrics.BOUNDS_MS[-1] == pytest.approx(1e6)
    ratios = metrics.BOUNDS_MS[1:] / metrics.BOUNDS_MS[:-1]
    assert np.allclose(ratios, 10 ** (1 / 8))
    assert metrics.bucket_index([0.0, 0.99, 1.0, 1e6, 5e9]).tolist() == [0, 0, 1, 49, 49]


@pytest.mark.parametrize("distribution", ["lognormal", "uniform", "bimodal", "exponential"])
def test_percentiles_from_a_histogram_are_within_one_bucket_of_numpy_on_the_raw_samples(distribution):
    rng = np.random.default_rng(11)
    size = 50_000
    samples = {
        "lognormal": rng.lognormal(math.log(40), 0.7, size),
        "uniform": rng.uniform(0.2, 3000, size),
        "bimodal": np.concatenate([rng.normal(12, 2, size * 3 // 5).clip(0.01), rng.normal(900, 80, size * 2 // 5)]),
        "exponential": rng.exponential(150, size),
    }[distribution]
    estimates = metrics.percentiles(metrics.histogram(samples), QUANTILES)
    exact = np.percentile(samples, [q * 100 for q in QUANTILES], method="inverted_cdf")
    for q, estimate, truth in zip(QUANTILES, estimates, exact, strict=True):
        # The estimate lies in the bucket that holds the sample quantile.
        assert metrics.bucket_index(estimate) == metrics.bucket_index(truth), q
        assert abs(estimate - truth) <= width_of_bucket_holding(truth), q
    # numpy's default (linear) definition differs only between neighbouring order statistics.
    linear = np.percentile(samples, [q * 100 for q in QUANTILES])
    for estimate, truth in zip(estimates, linear, strict=True):
        assert abs(estimate - truth) <= width_of_bucket_holding(truth) + width_of_bucket_holding(estimate)


@pytest.mark.parametrize("samples", [[7.0], [3.0, 900.0], [0.2, 0.4, 0.6], [15.0] * 10, [2e6, 10.0]])
def test_percentiles_of_tiny_samples_stay_in_the_right_bucket(samples):
    estimates = metrics.percentiles(metrics.histogram(samples), QUANTILES)
    exact = np.percentile(samples, [q * 100 for q in QUANTILES], method="inverted_cdf")
    for estimate, truth in zip(estimates, exact, strict=True):
        assert metrics.bucket_index(estimate) == metrics.bucket_index(truth)


def test_histograms_add_up_so_rollups_of_any_range_combine():
    rng = np.random.default_rng(2)
    first, second = rng.lognormal(3, 1, 1000), rng.lognormal(5, 0.5, 3000)
    combined = metrics.histogram(first) + metrics.histogram(second)
    assert combined.tolist() == metrics.histogram(np.concatenate([first, second])).tolist()
    assert metrics.percentiles(combined, [0.5]) == pytest.approx(
        metrics.percentiles(metrics.histogram(np.concatenate([first, second])), [0.5]))


def test_many_histograms_at_once_and_empty_ones_give_nan():
    one = metrics.histogram([10, 20, 30])
    rows = metrics.percentiles(np.vstack([one, np.zeros(metrics.BUCKET_COUNT), one]), [0.5, 0.99])
    assert rows.shape == (3, 2)
    assert np.isnan(rows[1]).all()
    assert rows[0].tolist() == rows[2].tolist() == metrics.percentiles(one, [0.5, 0.99]).tolist()


def test_an_overflowing_latency_reports_the_last_bound():
    assert metrics.percentiles(metrics.histogram([5e6]), [0.5])[0] == pytest.approx(1e6)


def test_quantiles_outside_zero_to_one_are_refused():
    with pytest.raises(ValueError):
        metrics.percentiles(metrics.histogram([1.0]), [1.5])
