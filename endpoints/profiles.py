"""Reference profiles: the binned distribution of each feature (and of the prediction) in a
sample of the data a model was trained or validated on. Drift is measured by binning live
traffic with the same bins (monitoring), so the profile stores the bins themselves.

Profile format (JSON)::

    {"format": 1, "rows": 1000, "features": [FEATURE...], "prediction": FEATURE | null}
    numeric:     {"name", "type": "numeric", "cuts": [c1..c(k-1)], "proportions": [p1..pk],
                  "missing": fraction, "min", "max", "mean", "std"}
    categorical: {"name", "type": "categorical", "categories": [..., "__other__"],
                  "proportions": [...], "missing": fraction}

Numeric bins are open-ended: value v falls in bin ``searchsorted(cuts, v, side="right")``,
so live values outside the reference range land in the outer bins instead of being lost.
Cuts are reference quantiles (equal-mass bins), de-duplicated for discrete features.
"""

from __future__ import annotations

import csv
import io
import math

import numpy as np

PROFILE_FORMAT = 1
NUMERIC_BINS = 10
MAX_CATEGORIES = 20
OTHER = "__other__"
MAX_FEATURES = 500


class ProfileError(ValueError):
    """The reference sample cannot be profiled; the message says why, for the user."""


def bin_numeric(cuts, values) -> np.ndarray:
    """Bin indices of ``values`` (NaN excluded by the caller) for a numeric feature."""
    return np.searchsorted(np.asarray(cuts, dtype=float), np.asarray(values, dtype=float), side="right")


def bin_categorical(categories, values) -> np.ndarray:
    index = {name: i for i, name in enumerate(categories)}
    other = index.get(OTHER, len(categories) - 1)
    return np.fromiter((index.get(str(v), other) for v in values), dtype=np.int64, count=len(values))


def _numeric_profile(name: str, raw: list) -> dict:
    values = np.array([np.nan if v is None else float(v) for v in raw], dtype=float)
    present = values[~np.isnan(values)]
    missing = 1.0 - (len(present) / len(values)) if len(values) else 0.0
    if len(present) == 0:
        raise ProfileError(f"Column {name!r} has no values.")
    quantiles = np.quantile(present, np.linspace(0, 1, NUMERIC_BINS + 1)[1:-1])
    cuts = np.unique(quantiles)
    counts = np.bincount(bin_numeric(cuts, present), minlength=len(cuts) + 1)
    return {
        "name": name,
        "type": "numeric",
        "cuts": [float(c) for c in cuts],
        "proportions": [float(c) / len(present) for c in counts],
        "missing": float(missing),
        "min": float(present.min()),
        "max": float(present.max()),
        "mean": float(present.mean()),
        "std": float(present.std()),
    }


def _categorical_profile(name: str, raw: list) -> dict:
    present = [str(v) for v in raw if v is not None and v != ""]
    if not present:
        raise ProfileError(f"Column {name!r} has no values.")
    unique, counts = np.unique(np.array(present, dtype=object), return_counts=True)
    order = np.argsort(-counts, kind="stable")
    top = [str(unique[i]) for i in order[:MAX_CATEGORIES]]
    categories = [*top, OTHER]
    binned = np.bincount(bin_categorical(categories, present), minlength=len(categories))
    return {
        "name": name,
        "type": "categorical",
        "categories": categories,
        "proportions": [float(c) / len(present) for c in binned],
        "missing": 1.0 - len(present) / len(raw),
    }


def _is_number(value) -> bool:
    if value is None or value == "":
        return True  # missing values do not decide the type
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return not (isinstance(value, float) and math.isinf(value))
    try:
        number = float(value)
    except (TypeError, ValueError):
        return False
    return not math.isinf(number)


def profile_columns(columns: dict[str, list], *, prediction_column: str | None = None,
                    signature: list[dict] | None = None) -> dict:
    """Profile already-parsed columns (name -> list of values, None for missing)."""
    if not columns:
        raise ProfileError("The sample has no columns.")
    rows = len(next(iter(columns.values())))
    if rows == 0:
        raise ProfileError("The sample has a header but no rows.")
    if len(columns) > MAX_FEATURES:
        raise ProfileError(f"The sample has {len(columns)} columns; at most {MAX_FEATURES} are profiled.")
    if prediction_column and prediction_column not in columns:
        raise ProfileError(f"The prediction column {prediction_column!r} is not in the sample "
                           f"(columns: {', '.join(list(columns)[:10])}).")
    declared = {f["name"]: f.get("type") for f in (signature or [])}
    missing = [name for name in declared if name not in columns]
    if missing:
        raise ProfileError(f"The input signature names columns the sample lacks: {', '.join(missing)}.")

    def profile(name: str) -> dict:
        values = columns[name]
        kind = declared.get(name)
        if kind is None:
            kind = "numeric" if all(_is_number(v) for v in values) else "categorical"
        if kind == "numeric":
            bad = next((v for v in values if not _is_number(v)), None)
            if bad is not None:
                raise ProfileError(f"Column {name!r} is declared numeric but holds {bad!r}.")
            return _numeric_profile(name, [None if v in (None, "") else v for v in values])
        return _categorical_profile(name, values)

    feature_names = [n for n in columns if n != prediction_column and (not declared or n in declared)]
    return {
        "format": PROFILE_FORMAT,
        "rows": rows,
        "features": [profile(name) for name in feature_names],
        "prediction": profile(prediction_column) if prediction_column else None,
    }


def _read_csv(data: bytes) -> dict[str, list]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ProfileError("The CSV file is not UTF-8 text.") from exc
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text), dialect)
    header = next(reader, None)
    if not header or not any(h.strip() for h in header):
        raise ProfileError("The CSV file is empty or has no header row.")
    header = [h.strip() for h in header]
    if len(set(header)) != len(header):
        raise ProfileError("The CSV header repeats a column name.")
    columns: dict[str, list] = {name: [] for name in header}
    for line_number, row in enumerate(reader, start=2):
        if not row:
            continue
        if len(row) != len(header):
            raise ProfileError(f"Line {line_number} has {len(row)} fields; the header has {len(header)}.")
        for name, value in zip(header, row, strict=True):
            value = value.strip()
            columns[name].append(value if value != "" else None)
    return columns


def _read_parquet(data: bytes) -> dict[str, list]:
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:  # pragma: no cover - pyarrow is a dependency
        raise ProfileError("Parquet support is not installed.") from exc
    try:
        table = pq.read_table(io.BytesIO(data))
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for bad files
        raise ProfileError(f"The Parquet file cannot be read: {exc}") from exc
    return {name: table.column(name).to_pylist() for name in table.column_names}


def profile_from_file(upload, filename: str = "", *, prediction_column: str | None = None,
                      signature: list[dict] | None = None) -> dict:
    """Profile an uploaded CSV or Parquet sample (file object or bytes)."""
    data = upload if isinstance(upload, bytes) else upload.read()
    if not data:
        raise ProfileError("The file is empty.")
    name = (filename or getattr(upload, "name", "") or "").lower()
    if data[:4] == b"PAR1" or name.endswith(".parquet"):
        columns = _read_parquet(data)
    elif name.endswith((".csv", ".tsv", ".txt")) or not name:
        columns = _read_csv(data)
    else:
        raise ProfileError("Upload a CSV (.csv) or Parquet (.parquet) file.")
    return profile_columns(columns, prediction_column=prediction_column, signature=signature)
