"""Binning of a request's values (``monitoring.extract.bin_values``): the path for a few rows
(bisect over the cuts) gives exactly what the numpy path for many rows gives, for any cuts and
values, missing and non-numeric ones included."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from endpoints.profiles import bin_numeric
from monitoring import extract

finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
value = st.one_of(finite, st.integers(-10**6, 10**6), st.none(), st.just("n/a"), st.just(True), st.just(float("nan")),
                  st.just(float("inf")))


def _numpy_path(cuts: list[float], values: list) -> list[int]:
    numbers = [extract._number(v) for v in values]
    out = np.full(len(values), extract.MISSING_BIN, dtype=np.int64)
    present = [i for i, n in enumerate(numbers) if n is not None]
    if present:
        out[present] = bin_numeric(cuts, [numbers[i] for i in present])
    return out.tolist()


@given(cuts=st.lists(finite, max_size=12, unique=True).map(sorted), values=st.lists(value, max_size=extract._FEW))
def test_a_few_values_bin_as_the_numpy_path_bins_them(cuts, values):
    got = extract.bin_values({"name": "x", "type": "numeric", "cuts": cuts}, values)
    assert got.dtype == np.int64
    assert got.tolist() == _numpy_path(cuts, values)


@given(values=st.lists(value, min_size=extract._FEW + 1, max_size=60))
def test_many_values_take_the_numpy_path_with_the_same_answers(values):
    cuts = [-1.5, 0.0, 2.0, 10.0]
    assert extract.bin_values({"name": "x", "type": "numeric", "cuts": cuts}, values).tolist() == \
        _numpy_path(cuts, values)


def test_values_on_a_cut_go_to_the_bin_above_it():
    bins = extract.bin_values({"name": "x", "type": "numeric", "cuts": [1.0, 2.0]}, [0.5, 1.0, 1.5, 2.0, 3, None])
    assert bins.tolist() == [0, 1, 1, 2, 2, extract.MISSING_BIN]
