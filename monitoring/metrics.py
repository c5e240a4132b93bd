"""Latency histograms on fixed log-spaced buckets and percentiles read back from them.

Pure numpy, no Django: the rollup writer, the dashboards and the benchmarks share it.

Buckets. Latency is measured in milliseconds. The bucket bounds are ``10 ** (k / 8)`` ms for
k = 0..48, i.e. 1 ms to 1,000 s with eight buckets per decade (each bound is 1.334 times the
previous one). Bucket 0 holds [0, 1 ms), bucket i (1..48) holds [bound[i-1], bound[i]),
bucket 49 holds everything from 1,000 s up. Fixed bounds are what makes histograms of
different minutes, versions and endpoints addable: a rollup row stores one count per bucket
and any range of rows sums column by column.

Percentiles. For quantile q over N observations the estimate lies in the first bucket whose
cumulative count reaches rank k = ceil(q * N) — the bucket that holds the sample quantile under
the inverted-CDF definition (the smallest observation x with ECDF(x) >= q). Inside it the
bucket's observations are taken as evenly spread in log latency (matching the bucket spacing)
and the k-th one sits at the middle of its slot. The
estimate is therefore never further from the sample quantile than the width of that bucket
(33 % of its lower bound); ``tests/monitoring/test_metrics.py`` checks this against numpy
on raw samples. The open-ended last bucket reports its lower bound (1,000 s).
"""

from __future__ import annotations

import math

import numpy as np

BUCKETS_PER_DECADE = 8
FIRST_BOUND_MS = 1.0
DECADES = 6
# Upper bounds of buckets 0..48; bucket 49 is open-ended.
BOUNDS_MS: np.ndarray = FIRST_BOUND_MS * 10.0 ** (np.arange(DECADES * BUCKETS_PER_DECADE + 1) / BUCKETS_PER_DECADE)
BUCKET_COUNT = len(BOUNDS_MS) + 1  # 50
BUCKET_FIELDS = tuple(f"h{i:02d}" for i in range(BUCKET_COUNT))


def bucket_index(latency_ms) -> np.ndarray:
    """Bucket of each latency (ms); negative values are clamped into bucket 0."""
    values = np.asarray(latency_ms, dtype=float)
    return np.searchsorted(BOUNDS_MS, np.maximum(values, 0.0), side="right")


def bucket_bounds(index: int) -> tuple[float, float]:
    """[lower, upper) of a bucket in ms; the last bucket's upper bound is infinity."""
    lower = 0.0 if index == 0 else float(BOUNDS_MS[index - 1])
    upper = float(BOUNDS_MS[index]) if index < len(BOUNDS_MS) else math.inf
    return lower, upper


def histogram(latency_ms) -> np.ndarray:
    """Counts per bucket (length ``BUCKET_COUNT``) of the given latencies."""
    return np.bincount(bucket_index(latency_ms), minlength=BUCKET_COUNT).astype(np.int64)


def percentiles(counts, quantiles) -> np.ndarray:
    """Quantiles (0..1) of a histogram, or of each row of a 2-D array of histograms.

    Returns an array shaped ``(len(quantiles),)`` for one histogram or ``(rows, len(quantiles))``
    for many; empty histograms give NaN.
    """
    counts = np.asarray(counts, dtype=float)
    single = counts.ndim == 1
    matrix = np.atleast_2d(counts)
    qs = np.asarray(quantiles, dtype=float)
    if matrix.shape[1] != BUCKET_COUNT:
        raise ValueError(f"a histogram has {BUCKET_COUNT} buckets, got {matrix.shape[1]}")
    if np.any((qs < 0) | (qs > 1)):
        raise ValueError("quantiles must lie in [0, 1]")

    cumulative = np.cumsum(matrix, axis=1)
    totals = cumulative[:, -1]
    lowers = np.concatenate(([0.0], BOUNDS_MS))
    uppers = np.concatenate((BOUNDS_MS, [np.inf]))
    out = np.full((matrix.shape[0], len(qs)), np.nan)
    rows = np.nonzero(totals > 0)[0]
    for column, q in enumerate(qs):
        # Rank of the quantile: the k-th smallest observation, k = ceil(q * N) and at least 1
        # (a relative tolerance keeps 0.95 * 100 from rounding up to 96).
        ranks = np.maximum(np.ceil(q * totals[rows] - 1e-9 * totals[rows]), 1.0)
        # First bucket whose cumulative count reaches the rank (= buckets still below it).
        index = np.minimum((cumulative[rows] < ranks[:, None]).sum(axis=1), BUCKET_COUNT - 1)
        before = np.where(index > 0, cumulative[rows, np.maximum(index - 1, 0)], 0.0)
        inside = matrix[rows, index]
        # The bucket's observations are spread evenly over it; the k-th sits at the middle of
        # its slot, so the estimate never leaves the bucket.
        fraction = np.clip((ranks - before - 0.5) / np.maximum(inside, 1.0), 0.0, 1.0)
        lower, upper = lowers[index], uppers[index]
        finite = np.isfinite(upper) & (index > 0)
        ratio = np.where(finite, upper / np.where(finite, lower, 1.0), 1.0)
        value = np.where(index == 0, upper * fraction, lower * np.power(ratio, fraction))
        out[rows, column] = np.where(np.isfinite(upper), value, lower)
    return out[0] if single else out
