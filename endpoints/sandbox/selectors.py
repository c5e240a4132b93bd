"""Label and field selectors with the real API server's syntax.

Label selectors support ``=``, ``==``, ``!=``, ``in (...)``, ``notin (...)``, ``key`` (exists) and
``!key`` (does not exist). Field selectors support ``=``, ``==`` and ``!=`` on the fields each
resource declares selectable (see ``resources.ResourceType.field_value``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from .errors import ApiError

_LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


@dataclass(frozen=True)
class Requirement:
    """One clause of a label selector."""

    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!exists"
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.op == "exists":
            return present
        if self.op == "!exists":
            return not present
        if self.op in ("=", "in"):
            return present and value in self.values
        # "!=" and "notin" match objects that lack the key, as the real server does.
        return not present or value not in self.values


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside ``( ... )``."""
    parts, depth, current = [], 0, []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


def _bad_selector(text: str, why: str) -> ApiError:
    return ApiError(400, f'unable to parse requirement: {why}: "{text}"', reason="BadRequest")


def _check_key(key: str, text: str) -> None:
    if not _LABEL_KEY.match(key) or len(key.split("/")[-1]) > 63:
        raise _bad_selector(text, f"invalid label key {key!r}")


def _check_value(value: str, text: str) -> None:
    if len(value) > 63 or not _LABEL_VALUE.match(value):
        raise _bad_selector(text, f"invalid label value {value!r}")


_SET_RE = re.compile(r"^\s*(\S+)\s+(in|notin)\s*\((.*)\)\s*$")


def parse_label_selector(text: str | None) -> list[Requirement]:
    """Parse a ``labelSelector`` query parameter; raises a 400 ApiError when malformed."""
    if not text or not text.strip():
        return []
    reqs = []
    for raw in _split_top_level(text):
        part = raw.strip()
        if not part:
            raise _bad_selector(text, "empty requirement")
        m = _SET_RE.match(part)
        if m:
            key, op, inner = m.group(1), m.group(2), m.group(3)
            values = tuple(v.strip() for v in inner.split(",") if v.strip())
            _check_key(key, text)
            for v in values:
                _check_value(v, text)
            if not values:
                raise _bad_selector(text, "for 'in', 'notin' operators, values set can't be empty")
            reqs.append(Requirement(key, op, values))
            continue
        for op_text, op in (("==", "="), ("!=", "!="), ("=", "=")):
            if op_text in part:
                key, value = (s.strip() for s in part.split(op_text, 1))
                _check_key(key, text)
                _check_value(value, text)
                reqs.append(Requirement(key, op, (value,)))
                break
        else:
            if part.startswith("!"):
                key = part[1:].strip()
                _check_key(key, text)
                reqs.append(Requirement(key, "!exists"))
            else:
                _check_key(part, text)
                reqs.append(Requirement(part, "exists"))
    return reqs


def labels_match(requirements: list[Requirement], labels: Mapping[str, str] | None) -> bool:
    labels = labels or {}
    return all(r.matches(labels) for r in requirements)


@dataclass(frozen=True)
class FieldRequirement:
    """One clause of a field selector (``field=value`` or ``field!=value``)."""

    field: str
    op: str  # "=" or "!="
    value: str


def parse_field_selector(text: str | None) -> list[FieldRequirement]:
    if not text or not text.strip():
        return []
    reqs = []
    for raw in text.split(","):
        part = raw.strip()
        for op_text, op in (("==", "="), ("!=", "!="), ("=", "=")):
            if op_text in part:
                name, value = part.split(op_text, 1)
                reqs.append(FieldRequirement(name.strip(), op, value.strip()))
                break
        else:
            raise ApiError(400, f'invalid selector: \'{text}\'; can\'t understand \'{part}\'')
    return reqs


def fields_match(
    requirements: list[FieldRequirement],
    obj: Mapping,
    field_value: Callable[[Mapping, str], str | None],
) -> bool:
    """``field_value(obj, name)`` returns the selectable field's value, or None if unsupported."""
    for req in requirements:
        value = field_value(obj, req.field)
        if value is None:
            value = ""
        if (value == req.value) != (req.op == "="):
            return False
    return True
