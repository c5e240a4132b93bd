"""Kubernetes quantities must parse exactly as the API server reads them, and a typo must
come back with a message saying what is accepted."""

from __future__ import annotations

from decimal import Decimal

import pytest

from endpoints.quantities import parse_quantity


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1", Decimal(1)),
        ("500m", Decimal("0.5")),
        ("0.5", Decimal("0.5")),
        (".5", Decimal("0.5")),
        ("1.", Decimal(1)),
        ("100n", Decimal("0.0000001")),
        ("250u", Decimal("0.00025")),
        ("2k", Decimal(2000)),
        ("1M", Decimal(10**6)),
        ("3G", Decimal(3 * 10**9)),
        ("1T", Decimal(10**12)),
        ("1P", Decimal(10**15)),
        ("1E", Decimal(10**18)),
        ("1Ki", Decimal(1024)),
        ("512Mi", Decimal(512 * 1024**2)),
        ("2Gi", Decimal(2 * 1024**3)),
        ("1.5Gi", Decimal(3 * 1024**3 // 2)),
        ("1Ti", Decimal(1024**4)),
        ("1Pi", Decimal(1024**5)),
        ("1Ei", Decimal(1024**6)),
        ("1e3", Decimal(1000)),
        ("1E3", Decimal(1000)),
        ("12e-3", Decimal("0.012")),
        ("+4", Decimal(4)),
        ("-1", Decimal(-1)),
    ],
)
def test_it_parses_kubernetes_quantities(text, expected):
    assert parse_quantity(text) == expected


def test_integers_are_accepted_as_is():
    assert parse_quantity(4) == Decimal(4)


def test_decimal_values_are_exact():
    assert parse_quantity("100m") + parse_quantity("200m") == parse_quantity("300m")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "Empty resource quantity"),
        ("abc", "not a valid resource quantity"),
        ("1.2.3", "not a valid resource quantity"),
        ("5 Gi", "not a valid resource quantity"),
        (" 5Gi", "surrounding spaces"),
        ("2GB", "without 'B'"),
        ("512MiB", "without 'B'"),
        ("2gi", "did you mean 2Gi"),
        ("1e", "not a valid resource quantity"),
        ("1e400", "exponent beyond"),
        ("Gi", "not a valid resource quantity"),
        ("1.5e2.5", "not a valid resource quantity"),
    ],
)
def test_it_refuses_bad_quantities_with_a_helpful_message(text, fragment):
    with pytest.raises(ValueError, match=fragment.replace("(", r"\(")):
        parse_quantity(text)


@pytest.mark.parametrize("value", [None, 1.5, True, ["1"]])
def test_it_refuses_non_string_values(value):
    with pytest.raises(ValueError, match="not a resource quantity"):
        parse_quantity(value)


def test_messages_list_the_accepted_suffixes():
    with pytest.raises(ValueError) as info:
        parse_quantity("12x")
    assert "Ki, Mi, Gi" in str(info.value) and "m (milli)" in str(info.value)
