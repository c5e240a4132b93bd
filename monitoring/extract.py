"""Feature values, predictions and token counts out of logged inference payloads, and their
bins under a reference profile. Pure Python + numpy, no Django.

Payload shapes (docs/kserve.md §5):

- **V1**: request ``{"instances": [...]}`` (or ``{"inputs": [...]}`` with plain rows),
  response ``{"predictions": [...]}``. A row is a list (positional features), an object
  (named features) or a scalar (a single feature).
- **V2 / Open Inference Protocol**: request ``{"inputs": [{"name", "shape", "datatype",
  "data"}]}``, response ``{"outputs": [...]}``. A tensor named like a feature is that
  feature's column (shape ``[n]`` or ``[n, 1]``); a two-dimensional tensor ``[n, k]`` with
  another name holds k positional features per row. ``data`` may be flat (row-major) or
  nested.
- **OpenAI** (chat/completions, completions): no tabular features; ``usage.prompt_tokens``
  and ``usage.completion_tokens`` of the response are kept.

Predictions: the first output tensor (or the one named like the profile's prediction), one
value per row; a row of several scores (class probabilities) counts as its argmax, the
predicted class. Anything unparseable yields no features rather than an error: latency is
still worth recording when a payload is not understood.
"""

from __future__ import annotations

import bisect
import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from audit.jsonlimits import nesting_within
from endpoints.profiles import bin_categorical, bin_numeric

# The receivers refuse deeper bodies (AUDIT_INGEST_MAX_JSON_DEPTH); this guards what reached the
# buffer another way (a batch stored before the check) from parsing recursion.
_MAX_DEPTH = 200

# Rows of one request that are binned (a batch request may carry thousands).
MAX_ROWS = 1000
MISSING_BIN = -1


@dataclass
class Extracted:
    """What one request/response pair tells monitoring."""

    columns: dict[str, list] = field(default_factory=dict)  # feature name -> values, one per row
    rows: int = 0
    predictions: list = field(default_factory=list)
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


def _json(body: bytes | str | None):
    if not body or not nesting_within(body, _MAX_DEPTH):
        return None
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None


def _flatten(data) -> list:
    if isinstance(data, list):
        out: list = []
        for item in data:
            if isinstance(item, list):
                out.extend(_flatten(item))
            else:
                out.append(item)
        return out
    return [data]


def _tensor_rows(tensor: dict) -> list[list]:
    """A tensor's data as rows (first dimension), each a list of values."""
    data = tensor.get("data")
    shape = tensor.get("shape") or []
    if isinstance(data, list) and data and isinstance(data[0], list):
        return [_flatten(row) for row in data]
    flat = _flatten(data) if data is not None else []
    if len(shape) >= 2:
        try:
            width = math.prod(int(s) for s in shape[1:])
        except (TypeError, ValueError):
            width = 1
        if width > 0:
            return [flat[i:i + width] for i in range(0, len(flat), width)]
    return [[value] for value in flat]


def _is_tensor_list(items) -> bool:
    return isinstance(items, list) and bool(items) and all(
        isinstance(t, dict) and "data" in t and "name" in t for t in items)


def _columns_from_rows(rows: list, feature_names: list[str]) -> dict[str, list]:
    columns: dict[str, list] = {name: [] for name in feature_names}
    for row in rows:
        if isinstance(row, dict):
            for name in feature_names:
                columns[name].append(row.get(name))
        elif isinstance(row, list):
            values = _flatten(row)
            for index, name in enumerate(feature_names):
                columns[name].append(values[index] if index < len(values) else None)
        else:
            for index, name in enumerate(feature_names):
                columns[name].append(row if index == 0 else None)
    return columns


def _features(request, feature_names: list[str]) -> tuple[dict[str, list], int]:
    if not isinstance(request, dict) or not feature_names:
        return {}, 0
    inputs = request.get("inputs")
    if _is_tensor_list(inputs):
        named = {t["name"]: t for t in inputs}
        if any(name in named for name in feature_names):
            raw = {name: [row[0] if row else None for row in _tensor_rows(named[name])] if name in named else []
                   for name in feature_names}
            rows = min(max(len(values) for values in raw.values()), MAX_ROWS)
            return {name: (values + [None] * rows)[:rows] for name, values in raw.items()}, rows
        rows = _tensor_rows(inputs[0])[:MAX_ROWS]
        return _columns_from_rows(rows, feature_names), len(rows)
    instances = request.get("instances")
    if instances is None and isinstance(inputs, list):
        instances = inputs
    if isinstance(instances, list):
        rows = instances[:MAX_ROWS]
        return _columns_from_rows(rows, feature_names), len(rows)
    return {}, 0


def _prediction_values(response, prediction_name: str | None) -> list:
    if not isinstance(response, dict):
        return []
    outputs = response.get("outputs")
    if _is_tensor_list(outputs):
        chosen = next((t for t in outputs if prediction_name and t["name"] == prediction_name), outputs[0])
        rows = _tensor_rows(chosen)
    elif isinstance(response.get("predictions"), list):
        rows = response["predictions"]
    else:
        return []
    values = []
    for row in rows[:MAX_ROWS]:
        if isinstance(row, dict):
            row = row.get(prediction_name) if prediction_name in row else next(iter(row.values()), None)
        if isinstance(row, list):
            flat = _flatten(row)
            if len(flat) == 1:
                row = flat[0]
            elif flat and all(_number(v) is not None for v in flat):
                row = int(np.argmax([float(v) for v in flat]))
            else:
                row = flat[0] if flat else None
        values.append(row)
    return values


def _token_counts(response) -> tuple[int | None, int | None]:
    usage = response.get("usage") if isinstance(response, dict) else None
    if not isinstance(usage, dict):
        return None, None

    def count(key):
        value = usage.get(key)
        return int(value) if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0 else None

    return count("prompt_tokens"), count("completion_tokens")


def extract(request_body: bytes | None, response_body: bytes | None, *, feature_names: list[str],
            prediction_name: str | None = None) -> Extracted:
    """Features (by ``feature_names``, the model's input order), predictions and token counts
    of one pair. The protocol is recognised from the payload's shape."""
    request = _json(request_body)
    response = _json(response_body)
    columns, rows = _features(request, feature_names)
    prompt, completion = _token_counts(response)
    return Extracted(columns=columns, rows=rows, predictions=_prediction_values(response, prediction_name),
                     prompt_tokens=prompt, completion_tokens=completion)


# --- binning ------------------------------------------------------------------------------------

def _number(value) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


_FEW = 16


def bin_values(feature: dict, values: list) -> np.ndarray:
    """Bin index of each value under one profile feature; ``MISSING_BIN`` (-1) for missing or
    (numeric features) non-numeric values."""
    out = np.full(len(values), MISSING_BIN, dtype=np.int64)
    if feature.get("type") == "categorical":
        present = [i for i, v in enumerate(values) if v is not None and v != ""]
        if present:
            out[present] = bin_categorical(feature["categories"], [values[i] for i in present])
        return out
    numbers = [_number(v) for v in values]
    if len(numbers) <= _FEW:
        # A request of a few rows (the usual): bisect over the cuts, which is what
        # searchsorted(side="right") computes, without numpy's per-call cost (~5 µs a call,
        # five calls a request: most of the logger drain's binning).
        cuts = feature.get("cuts", [])
        return np.array([MISSING_BIN if n is None else bisect.bisect_right(cuts, n) for n in numbers],
                        dtype=np.int64)
    present = [i for i, v in enumerate(numbers) if v is not None]
    if present:
        out[present] = bin_numeric(feature.get("cuts", []), [numbers[i] for i in present])
    return out


def bin_count(feature: dict) -> int:
    """Number of value bins of a profile feature (the missing bin not included)."""
    if feature.get("type") == "categorical":
        return len(feature.get("categories", []))
    return len(feature.get("cuts", [])) + 1


def counts(feature: dict, bins: np.ndarray) -> tuple[np.ndarray, int]:
    """Counts per value bin and the number of missing values, from bin indices."""
    bins = np.asarray(bins, dtype=np.int64)
    missing = int(np.count_nonzero(bins == MISSING_BIN))
    present = bins[bins != MISSING_BIN]
    return np.bincount(present, minlength=bin_count(feature))[: bin_count(feature)], missing


def profile_feature_names(profile: dict | None) -> list[str]:
    return [f["name"] for f in (profile or {}).get("features", [])]


def input_order(profile: dict | None, signature: list[dict] | None) -> list[str]:
    """Feature names in the model's input order: the declared signature when there is one
    (positional rows follow it), else the reference profile's column order."""
    names = [f["name"] for f in (signature or []) if f.get("name")]
    return names or profile_feature_names(profile)


def as_json_value(value: Any) -> Any:
    """A prediction value as stored on a record (short strings, plain numbers)."""
    if value is None or isinstance(value, bool | int | float):
        return value
    return str(value)[:200]
