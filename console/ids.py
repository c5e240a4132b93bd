"""Ids from URLs and query strings, checked to the database's range in one place.

Every primary key is a 64-bit integer (``BigAutoField``). A path or query value that is not a
whole number in 1..2⁶³−1 cannot name a row; left unchecked, the database driver refuses it
(SQLite: "Python int too large to convert to SQLite INTEGER") and the request ends in a 500.

- paths: the ``<id:…>`` URL converter (registered by ``console.apps``) matches only such
  numbers, so ``/models/AAA/versions/`` or an id past the range is a 404 like any unknown URL;
- forms and FilterSets: ``IdField`` (a bounded ``IntegerField``): a page shows the message by
  the filter, the API answers 400 naming the field;
- query parameters read by hand: ``query_id(params, name)``, a ``ValidationError`` on the field
  (400 from the API's exception handler).
"""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError

ID_MIN = 1
ID_MAX = 2**63 - 1
OUT_OF_RANGE = f"Give an id: a whole number from {ID_MIN} to {ID_MAX}."


def parse_id(value) -> int | None:
    """``value`` as an id, or None when it is not one (not digits, 0, past the range)."""
    text = str(value).strip()
    if not text.isascii() or not text.isdecimal() or len(text) > 19:
        return None
    number = int(text)
    return number if ID_MIN <= number <= ID_MAX else None


def query_id(params, name: str) -> int | None:
    """``?name=`` as an id; None when absent or empty, ``ValidationError`` on ``name`` otherwise."""
    raw = params.get(name, "")
    if raw in ("", None):
        return None
    number = parse_id(raw)
    if number is None:
        raise ValidationError({name: [OUT_OF_RANGE]})
    return number


class IdConverter:
    """``<id:pk>``: a row id in the database's range; anything else does not match (404)."""

    regex = "[0-9]{1,19}"

    def to_python(self, value: str) -> int:
        number = parse_id(value)
        if number is None:
            raise ValueError(value)
        return number

    def to_url(self, value) -> str:
        return str(value)


class IdField(forms.IntegerField):
    """A form or filter field for a row id, bounded to the database's range."""

    default_error_messages = {"invalid": OUT_OF_RANGE, "min_value": OUT_OF_RANGE, "max_value": OUT_OF_RANGE}

    def __init__(self, **kwargs):
        kwargs.setdefault("min_value", ID_MIN)
        kwargs.setdefault("max_value", ID_MAX)
        super().__init__(**kwargs)
