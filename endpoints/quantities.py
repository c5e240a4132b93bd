"""Kubernetes resource quantities ("500m", "2Gi", "1e3") as exact decimals.

The console compares CPU and memory values (request ≤ limit, within a hardware profile's
bounds) before anything reaches the API server, so it needs the same grammar Kubernetes uses
(``k8s.io/apimachinery/pkg/api/resource``)::

    <quantity> ::= <sign>? <number> <suffix>
    <number>   ::= <digits> | <digits>.<digits>? | .<digits>
    <suffix>   ::= <binarySI> | <decimalSI> | <decimalExponent>
    binarySI   = Ki Mi Gi Ti Pi Ei          (powers of 1024)
    decimalSI  = n u m "" k M G T P E       (powers of 1000)
    exponent   = e<int> | E<int>            ("1e3" = 1000; "1E" alone is one exa)

Decimal arithmetic keeps "0.1" exact, which floats would not.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL = {"n": -3, "u": -2, "m": -1, "": 0, "k": 1, "M": 2, "G": 3, "T": 4, "P": 5, "E": 6}

_QUANTITY = re.compile(
    r"""^(?P<number>[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))
        (?:(?P<binary>Ki|Mi|Gi|Ti|Pi|Ei)
          |[eE](?P<exponent>[+-]?[0-9]+)
          |(?P<decimal>[numkMGTPE]?))$""",
    re.VERBOSE,
)

# Larger exponents are refused: nobody means 1e300 CPUs and Decimal would happily build it.
_MAX_EXPONENT = 30


def parse_quantity(value: str | int) -> Decimal:
    """The value of a Kubernetes quantity in base units (cores, bytes), e.g.
    ``parse_quantity("500m") == Decimal("0.5")`` and ``parse_quantity("1Ki") == 1024``.

    Raises ValueError with a message saying what is wrong and what is accepted.
    """
    if isinstance(value, bool):  # bool is an int subclass; True is not a quantity
        raise ValueError(f"{value!r} is not a resource quantity.")
    if isinstance(value, int):
        return Decimal(value)
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a resource quantity; write it as a string such as \"500m\" or \"2Gi\".")
    if value == "":
        raise ValueError("Empty resource quantity; write a number with an optional suffix, e.g. \"500m\" or \"2Gi\".")
    if value != value.strip():
        raise ValueError(f"Resource quantity {value!r} has surrounding spaces; remove them.")
    match = _QUANTITY.match(value)
    if match is None:
        hint = ""
        lowered = value.lower()
        if lowered.endswith(("kb", "mb", "gb", "tb", "kib", "mib", "gib", "tib")):
            hint = " Kubernetes writes bytes without 'B': use Ki, Mi, Gi (powers of 1024) or k, M, G (powers of 1000)."
        elif value[-2:] in {"ki", "mi", "gi", "ti", "pi", "ei"}:
            hint = f" Binary suffixes are capitalised: did you mean {value[:-2]}{value[-2].upper()}i?"
        raise ValueError(
            f"{value!r} is not a valid resource quantity. Use a number with an optional suffix: "
            f"m (milli), k, M, G, T, P, E, Ki, Mi, Gi, Ti, Pi, Ei, or an exponent such as 1e3.{hint}"
        )
    try:
        number = Decimal(match["number"])
    except InvalidOperation as exc:  # pragma: no cover - the regex only lets decimals through
        raise ValueError(f"{value!r} is not a valid resource quantity.") from exc
    if match["binary"]:
        return number * (Decimal(1024) ** _BINARY[match["binary"]])
    if match["exponent"] is not None:
        exponent = int(match["exponent"])
        if abs(exponent) > _MAX_EXPONENT:
            raise ValueError(f"Resource quantity {value!r} has an exponent beyond ±{_MAX_EXPONENT}.")
        return number.scaleb(exponent)
    return number.scaleb(3 * _DECIMAL[match["decimal"] or ""])
