"""Writes of the monitoring app.

- ``inference_records_ingest``: turns paired payload-logger events into ``InferenceRecord``s
  and, in the same transaction, adds them to the minute and hour latency rollups and to the
  live bin counts drift is computed from. Rollups and counts are atomic SQL increments
  (``INSERT ... ON CONFLICT DO UPDATE SET n = n + excluded.n``, the same statement on
  PostgreSQL and SQLite), so concurrent workers never lose an update; a pair delivered
  twice is recognised by its (endpoint, component, event id) and counted once.
- ``drift_compute``: drift of the windows holding hours marked in the backlog.
- ``monitoring_config_update``: per-endpoint thresholds, audited.
- ``monitoring_prune``: retention.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, models, transaction
from django.db.models import Q, Sum
from django.utils import timezone

from audit import services as audit
from console import bulk
from endpoints.models import Endpoint, ModelVersion
from endpoints.services import notifications
from monitoring import drift, extract, metrics
from monitoring.models import (
    BinCount,
    DriftBacklog,
    DriftWindow,
    FeatureDrift,
    InferenceRecord,
    LatencyRollup,
    MonitoringConfig,
)

logger = logging.getLogger(__name__)

ANNOTATION_MODEL_VERSION = "inference-console.io/model-version"
PRINCIPAL_HEADER = "X-Console-Principal"
PAIR_OK = "ok"
PAIR_TIMEOUT = "timeout"


# --- atomic increments ----------------------------------------------------------------------------

def _adapt(field: models.Field, value):
    if isinstance(field, models.DateTimeField):
        return connection.ops.adapt_datetimefield_value(value)
    return value


MAX_SQL_PARAMETERS = 30_000  # under PostgreSQL's 65,535 and SQLite's 32,766


def upsert_add(model: type[models.Model], keys: Sequence[str], adds: Sequence[str], rows: Iterable[tuple],
               *, replace: Sequence[str] = ()) -> int:
    """Insert rows of ``model`` or, where a row with the same ``keys`` exists, add the new
    values of ``adds`` to it (and overwrite ``replace``). ``keys`` must be a unique constraint
    and each key may appear once in ``rows``. Rows go in multi-row statements, in key order,
    so concurrent writers lock rows in the same order."""
    quote = connection.ops.quote_name
    fields = [model._meta.get_field(name) for name in (*keys, *adds, *replace)]
    table = quote(model._meta.db_table)
    columns = [quote(f.column) for f in fields]
    key_columns = columns[: len(keys)]
    updates = [f"{c} = {table}.{c} + EXCLUDED.{c}" for c in columns[len(keys): len(keys) + len(adds)]]
    updates += [f"{c} = EXCLUDED.{c}" for c in columns[len(keys) + len(adds):]]
    ordered = sorted(rows, key=lambda row: tuple(str(v) for v in row[: len(keys)]))
    if not ordered:
        return 0
    conflict = f"ON CONFLICT ({', '.join(key_columns)}) DO UPDATE SET {', '.join(updates)}"
    if connection.vendor == "postgresql":  # one array per column: a statement of fixed text
        bulk.execute_arrays(bulk.unnest_insert_sql(model, [*keys, *adds, *replace], suffix=conflict),
                            bulk.columns_of(([_adapt(f, v) for f, v in zip(fields, row, strict=True)]
                                             for row in ordered), len(fields)))
        return len(ordered)
    placeholder = f"({', '.join(['%s'] * len(columns))})"
    per_statement = max(1, MAX_SQL_PARAMETERS // len(columns))
    with connection.cursor() as cursor:
        for start in range(0, len(ordered), per_statement):
            chunk = ordered[start:start + per_statement]
            params = [_adapt(f, v) for row in chunk for f, v in zip(fields, row, strict=True)]
            # Identifiers come from model metadata (quoted), values are parameters.
            sql = (f"INSERT INTO {table} ({', '.join(columns)}) VALUES {', '.join([placeholder] * len(chunk))} "  # noqa: S608
                   f"ON CONFLICT ({', '.join(key_columns)}) DO UPDATE SET {', '.join(updates)}")
            cursor.execute(sql, params)
    return len(ordered)


# --- ingest ---------------------------------------------------------------------------------------

def _floor(moment: datetime, seconds: int) -> datetime:
    stamp = int(moment.timestamp())
    return datetime.fromtimestamp(stamp - stamp % seconds, tz=UTC)


def _metadata_value(metadata: dict, header: str) -> str:
    for key, values in (metadata or {}).items():
        if str(key).lower() == header.lower():
            if isinstance(values, list | tuple):
                return str(values[0]) if values else ""
            return str(values)
    return ""


def _annotation(annotations: dict, key: str) -> str:
    return str((annotations or {}).get(key, "") or "")


def parse_version_label(label: str) -> tuple[str, int] | None:
    """``"iris:2"`` -> ("iris", 2); None when the label is not ``<model>:<version>``."""
    name, sep, number = (label or "").rpartition(":")
    if not sep or not name or not number.isdigit():
        return None
    return name, int(number)


@dataclass
class _VersionInfo:
    version: ModelVersion
    feature_names: list[str]
    prediction_name: str | None
    profile: dict | None


# Reference profiles are immutable (set when a version is registered), so each worker keeps
# the parsed ones it used for a while instead of reading a large JSON document with every
# batch. Keyed by id and creation time (an id reused after a rollback is another version).
_PROFILE_CACHE: dict[tuple[int, datetime], tuple[float, dict | None]] = {}
_PROFILE_CACHE_SIZE = 256
_PROFILE_CACHE_SECONDS = 600.0


def reference_profile(version: ModelVersion) -> dict | None:
    """The version's reference profile (None without one), cached per worker."""
    key = (version.pk, version.created_at)
    now = time.monotonic()
    cached = _PROFILE_CACHE.get(key)
    if cached is not None and now - cached[0] < _PROFILE_CACHE_SECONDS:
        return cached[1]
    if len(_PROFILE_CACHE) >= _PROFILE_CACHE_SIZE:
        _PROFILE_CACHE.pop(next(iter(_PROFILE_CACHE)))
    profile = ModelVersion.objects.filter(pk=version.pk).values_list("reference_profile", flat=True).first()
    _PROFILE_CACHE[key] = (now, profile if isinstance(profile, dict) else None)
    return _PROFILE_CACHE[key][1]


def _version_info(version: ModelVersion) -> _VersionInfo:
    profile = reference_profile(version)
    prediction = (profile or {}).get("prediction") or {}
    return _VersionInfo(
        version=version,
        feature_names=extract.input_order(profile, version.input_signature),
        prediction_name=version.prediction_column or prediction.get("name"),
        profile=profile,
    )


class _Resolver:
    """Endpoints and model versions of one batch of pairs, loaded with a bounded number of queries."""

    def __init__(self, pairs: Sequence):
        ids = {p.endpoint_id for p in pairs if p.endpoint_id}
        names = {(p.project_id, p.inference_service) for p in pairs if not p.endpoint_id and p.inference_service}
        query = Q(pk__in=ids)
        for project_id, name in names:
            query |= Q(project_id=project_id, name=name)
        version_fields = ("version", "created_at", "input_signature", "prediction_column", "model__name")
        endpoints = (Endpoint.objects.filter(query).select_related("model_version__model", "canary_version__model")
                     .only("project_id", "name", "logging_mode", "model_version_id", "canary_version_id",
                           *(f"{relation}__{name}" for relation in ("model_version", "canary_version")
                             for name in version_fields)))
        self.by_id = {e.pk: e for e in endpoints}
        self.by_name = {(e.project_id, e.name): e for e in endpoints}
        self._versions: dict[tuple[int, str, int], ModelVersion | None] = {}
        self._infos: dict[int, _VersionInfo] = {}
        for endpoint in endpoints:
            for version in (endpoint.model_version, endpoint.canary_version):
                if version is not None:
                    self._versions[(endpoint.project_id, version.model.name, version.version)] = version
        wanted = set()
        for pair in pairs:
            endpoint = self.endpoint(pair)
            parsed = parse_version_label(_annotation(pair.annotations, ANNOTATION_MODEL_VERSION))
            if endpoint is not None and parsed is not None:
                key = (endpoint.project_id, *parsed)
                if key not in self._versions:
                    wanted.add(key)
        if wanted:
            condition = Q(pk__in=[])
            for project_id, model_name, number in wanted:
                condition |= Q(model__project_id=project_id, model__name=model_name, version=number)
            for version in ModelVersion.objects.filter(condition).select_related("model").defer("reference_profile"):
                self._versions[(version.model.project_id, version.model.name, version.version)] = version
            for key in wanted:
                self._versions.setdefault(key, None)

    def endpoint(self, pair) -> Endpoint | None:
        if pair.endpoint_id:
            return self.by_id.get(pair.endpoint_id)
        return self.by_name.get((pair.project_id, pair.inference_service))

    def version(self, endpoint: Endpoint, label: str) -> tuple[ModelVersion | None, str]:
        """The model version a logged annotation names, and its role on the endpoint now."""
        parsed = parse_version_label(label)
        if parsed is None:
            # No annotation: with a single version served it can only be the primary one.
            if endpoint.canary_version_id is None:
                return endpoint.model_version, InferenceRecord.Role.PRIMARY
            return None, InferenceRecord.Role.OTHER
        version = self._versions.get((endpoint.project_id, *parsed))
        if version is None:
            return None, InferenceRecord.Role.OTHER
        if version.pk == endpoint.model_version_id:
            return version, InferenceRecord.Role.PRIMARY
        if version.pk == endpoint.canary_version_id:
            return version, InferenceRecord.Role.CANARY
        return version, InferenceRecord.Role.OTHER

    def info(self, version: ModelVersion) -> _VersionInfo:
        if version.pk not in self._infos:
            self._infos[version.pk] = _version_info(version)
        return self._infos[version.pk]


def _status(pair, endpoint: Endpoint) -> str:
    if pair.status == PAIR_OK and pair.response_time is not None:
        return InferenceRecord.Status.OK
    if pair.status == PAIR_TIMEOUT and endpoint.logging_mode == Endpoint.LoggingMode.ALL:
        # The logger logs a response only for HTTP 200 and the console asked for both events:
        # a request left alone means the model failed, answered an error or never answered.
        return InferenceRecord.Status.ERROR
    return InferenceRecord.Status.UNPAIRED


def _build_record(pair, endpoint: Endpoint, resolver: _Resolver) -> tuple[InferenceRecord, dict] | None:
    request_time = pair.request_time or pair.response_time
    if request_time is None:
        return None
    label = _annotation(pair.annotations, ANNOTATION_MODEL_VERSION)
    version, role = resolver.version(endpoint, label)
    status = _status(pair, endpoint)
    latency = None
    if status == InferenceRecord.Status.OK and pair.request_time is not None:
        latency = max(0.0, (pair.response_time - pair.request_time).total_seconds() * 1000.0)
    info = resolver.info(version) if version is not None else None
    profile = (info.profile if info else None) or {}
    bins: dict[str, np.ndarray] = {}
    prediction_bins = np.empty(0, dtype=np.int64)
    found = extract.Extracted()
    try:
        found = extract.extract(pair.request_body, pair.response_body,
                                feature_names=info.feature_names if info else [],
                                prediction_name=info.prediction_name if info else None)
        for feature in profile.get("features", []):
            values = found.columns.get(feature["name"])
            if values is not None and found.rows:
                bins[feature["name"]] = extract.bin_values(feature, values)
        if profile.get("prediction") and found.predictions:
            prediction_bins = extract.bin_values(profile["prediction"], found.predictions)
    except Exception:  # noqa: BLE001 - a payload we cannot read must not fail the batch
        logger.warning("could not extract features of event %s", pair.event_id, exc_info=True)
        bins, prediction_bins = {}, np.empty(0, dtype=np.int64)
    record = InferenceRecord(
        endpoint=endpoint,
        model_version=version,
        version_label=label[:120],
        role=role,
        component=(pair.component or "predictor")[:20],
        event_id=str(pair.event_id)[:200],
        request_time=request_time,
        response_time=pair.response_time,
        latency_ms=latency,
        status=status,
        caller=_metadata_value(pair.metadata, PRINCIPAL_HEADER)[:150],
        rows=found.rows or len(found.predictions),
        feature_bins=[bins[f["name"]].tolist() if f["name"] in bins else [] for f in profile.get("features", [])]
        if bins else [],
        prediction_bins=prediction_bins.tolist(),
        predictions=[extract.as_json_value(v) for v in found.predictions[:20]],
        prompt_tokens=found.prompt_tokens,
        completion_tokens=found.completion_tokens,
    )
    prediction_name = (profile.get("prediction") or {}).get("name", "")
    return record, {"bins": bins, "prediction_bins": prediction_bins, "prediction_name": prediction_name}


_RECORD_FIELDS = [f for f in InferenceRecord._meta.concrete_fields if not f.primary_key]


def _insert_new_postgresql(records: list[InferenceRecord]) -> list[InferenceRecord]:
    """One statement (arrays per column) that skips the events already recorded, by this batch's
    predecessors or by a concurrent worker (ON CONFLICT waits for its commit): no prior query."""
    rows = []
    for record in records:
        rows.append([bulk.json_text(getattr(record, f.attname)) if isinstance(f, models.JSONField)
                     else getattr(record, f.attname) for f in _RECORD_FIELDS])
    by_key = {(r.endpoint_id, r.component, r.event_id): r for r in records}
    for pk, endpoint_id, component, event_id in bulk.execute_arrays(bulk.unnest_insert_sql(
            InferenceRecord, [f.name for f in _RECORD_FIELDS],
            suffix="ON CONFLICT (endpoint_id, component, event_id) DO NOTHING "
                   "RETURNING id, endpoint_id, component, event_id"), bulk.columns_of(rows, len(_RECORD_FIELDS))):
        by_key[(endpoint_id, component, event_id)].pk = pk
    return [record for record in records if record.pk is not None]


def _insert_new(records: list[InferenceRecord]) -> list[InferenceRecord]:
    """Insert records; those whose event a concurrent delivery inserted first are skipped."""
    if not records:
        return []
    if connection.vendor == "postgresql":
        return _insert_new_postgresql(records)
    try:
        with transaction.atomic():
            InferenceRecord.objects.bulk_create(records)
        return records
    except IntegrityError:
        inserted = []
        for record in records:
            record.pk = None
            try:
                with transaction.atomic():
                    record.save(force_insert=True)
                inserted.append(record)
            except IntegrityError:
                continue
        return inserted


def _rollup_rows(records: list[InferenceRecord]) -> list[tuple]:
    """Sums per (endpoint, resolution, start, version) of a batch of records, vectorised."""
    if not records:
        return []
    size = len(records)
    endpoint_ids = np.fromiter((r.endpoint_id for r in records), dtype=np.int64, count=size)
    versions = np.fromiter((r.model_version_id or 0 for r in records), dtype=np.int64, count=size)
    stamps = np.fromiter((int(r.request_time.timestamp()) for r in records), dtype=np.int64, count=size)
    status = [r.status for r in records]
    errors = np.fromiter((s == InferenceRecord.Status.ERROR for s in status), dtype=np.int64, count=size)
    unpaired = np.fromiter((s == InferenceRecord.Status.UNPAIRED for s in status), dtype=np.int64, count=size)
    latency = np.fromiter((np.nan if r.latency_ms is None else r.latency_ms for r in records), dtype=float,
                          count=size)
    measured = ~np.isnan(latency)
    prompt = np.fromiter((r.prompt_tokens or 0 for r in records), dtype=np.int64, count=size)
    completion = np.fromiter((r.completion_tokens or 0 for r in records), dtype=np.int64, count=size)
    buckets = metrics.bucket_index(np.where(measured, latency, 0.0))
    rows = []
    for resolution in (LatencyRollup.MINUTE, LatencyRollup.QUARTER, LatencyRollup.HOUR):
        keys = np.stack([endpoint_ids, stamps - stamps % resolution, versions], axis=1)
        unique, inverse = np.unique(keys, axis=0, return_inverse=True)
        inverse = inverse.reshape(-1)
        groups = len(unique)

        def total(values, groups=groups, inverse=inverse):
            return np.bincount(inverse, weights=values, minlength=groups)

        histogram = np.zeros((groups, metrics.BUCKET_COUNT), dtype=np.int64)
        np.add.at(histogram, (inverse[measured], buckets[measured]), 1)
        sums = [np.bincount(inverse, minlength=groups), total(errors), total(unpaired), total(measured),
                total(np.where(measured, latency, 0.0)), total(prompt), total(completion)]
        for g in range(groups):
            endpoint_id, start, version = (int(v) for v in unique[g])
            rows.append((endpoint_id, resolution, datetime.fromtimestamp(start, tz=UTC), version,
                         int(sums[0][g]), int(sums[1][g]), int(sums[2][g]), int(sums[3][g]), float(sums[4][g]),
                         int(sums[5][g]), int(sums[6][g]), *histogram[g].tolist()))
    return rows


ROLLUP_KEYS = ("endpoint", "resolution", "start", "version_key")
ROLLUP_ADDS = ("requests", "errors", "unpaired", "latency_count", "latency_sum_ms", "prompt_tokens",
               "completion_tokens", *metrics.BUCKET_FIELDS)
BIN_KEYS = ("endpoint", "model_version", "hour", "is_prediction", "feature", "bin")


def _bin_rows(records: list[InferenceRecord], binned: dict[int, dict]) -> list[tuple]:
    counts: dict[tuple, int] = defaultdict(int)
    for record in records:
        if record.model_version_id is None:
            continue
        found = binned[id(record)]
        hour = _floor(record.request_time, 3600)
        # Counted value by value: a request holds a few rows, for which np.unique per feature
        # cost more than the whole count.
        for name, bins in found["bins"].items():
            for value in bins.tolist():
                counts[(record.endpoint_id, record.model_version_id, hour, False, name, value)] += 1
        for value in found["prediction_bins"].tolist():
            counts[(record.endpoint_id, record.model_version_id, hour, True, found["prediction_name"], value)] += 1
    return [(*key, count) for key, count in counts.items()]


def add_to_rollups(records: list[InferenceRecord], binned: dict[int, dict] | None = None) -> None:
    """Add inserted records to the latency rollups, the live bin counts and the drift backlog."""
    upsert_add(LatencyRollup, ROLLUP_KEYS, ROLLUP_ADDS, _rollup_rows(records))
    if binned:
        bin_rows = _bin_rows(records, binned)
        upsert_add(BinCount, BIN_KEYS, ("count",), bin_rows)
        now = timezone.now()
        marks = {(row[0], row[1], row[2]) for row in bin_rows}
        upsert_add(DriftBacklog, ("endpoint", "model_version", "hour"), (), [(*m, now) for m in marks],
                   replace=("marked_at",))


def _already_recorded(keys, chunk: int = 500) -> set[tuple]:
    """Which (endpoint, component, event id) keys have records: one IN query per endpoint,
    component and chunk of ids (a batch usually holds one endpoint)."""
    grouped: dict[tuple[int, str], list[str]] = defaultdict(list)
    for endpoint_id, component, event_id in keys:
        grouped[(endpoint_id, component)].append(event_id)
    found = set()
    for (endpoint_id, component), ids in grouped.items():
        for start in range(0, len(ids), chunk):
            found.update(InferenceRecord.objects.filter(
                endpoint_id=endpoint_id, component=component, event_id__in=ids[start:start + chunk],
            ).values_list("endpoint_id", "component", "event_id"))
    return found


def inference_records_ingest(pairs: Sequence) -> list[InferenceRecord]:
    """Record paired payload-logger events (``audit.inference.InferencePair`` or anything with
    the same attributes) and add them to rollups and bin counts, atomically. Pairs of unknown
    endpoints are skipped; a pair already recorded is not counted again. Returns the new records."""
    if not pairs:
        return []
    resolver = _Resolver(pairs)
    seen: dict[tuple, tuple[InferenceRecord, dict]] = {}
    for pair in pairs:
        endpoint = resolver.endpoint(pair)
        if endpoint is None:
            logger.info("inference event %s for unknown endpoint %s/%s skipped", pair.event_id,
                        pair.namespace, pair.inference_service)
            continue
        built = _build_record(pair, endpoint, resolver)
        if built is None:
            continue
        key = (endpoint.pk, built[0].component, built[0].event_id)
        previous = seen.get(key)
        # The same event twice in one batch: keep the answered one.
        if previous is None or (previous[0].status != InferenceRecord.Status.OK
                                and built[0].status == InferenceRecord.Status.OK):
            seen[key] = built
    if not seen:
        return []
    with transaction.atomic():
        # PostgreSQL skips recorded events in the insert itself (ON CONFLICT DO NOTHING).
        existing = set() if connection.vendor == "postgresql" else _already_recorded(seen)
        fresh = [built for key, built in seen.items() if key not in existing]
        inserted = _insert_new([record for record, _ in fresh])
        binned = {id(record): found for record, found in fresh}
        add_to_rollups(inserted, binned)
    return inserted


# --- drift ----------------------------------------------------------------------------------------

def config_for(endpoint: Endpoint) -> MonitoringConfig:
    """The endpoint's monitoring settings (an unsaved default row when none was stored)."""
    try:
        return endpoint.monitoring_config
    except MonitoringConfig.DoesNotExist:
        return MonitoringConfig(endpoint=endpoint)


def window_bounds(moment: datetime, hours: int) -> tuple[datetime, datetime]:
    """The window of ``hours`` holding ``moment``, aligned on multiples of ``hours`` since the epoch (UTC)."""
    start = _floor(moment, hours * 3600)
    return start, start + timedelta(hours=hours)


def _feature_comparisons(profile: dict, counts: dict[tuple[bool, str], dict[int, int]]) -> list[tuple]:
    """(profile feature, is_prediction, comparison) for every profiled feature with live rows."""
    out = []
    targets = [(f, False) for f in profile.get("features", [])]
    if profile.get("prediction"):
        targets.append((profile["prediction"], True))
    for feature, is_prediction in targets:
        bins = counts.get((is_prediction, feature["name"]))
        if not bins:
            continue
        size = extract.bin_count(feature)
        live = np.zeros(size, dtype=float)
        for index, count in bins.items():
            if 0 <= index < size:
                live[index] += count
        comparison = drift.compare(
            feature.get("proportions", []), live, numeric=feature.get("type") != "categorical",
            reference_missing=float(feature.get("missing") or 0.0), current_missing=int(bins.get(-1, 0)))
        out.append((feature, is_prediction, comparison))
    return out


def drift_compute(*, endpoint: Endpoint, start: datetime, end: datetime,
                  config: MonitoringConfig | None = None) -> list[DriftWindow]:
    """Compute and store the drift of every model version of ``endpoint`` with live rows in
    [start, end). Idempotent: a window computed again replaces its previous result."""
    config = config or config_for(endpoint)
    sums = (BinCount.objects.filter(endpoint=endpoint, hour__gte=start, hour__lt=end)
            .values_list("model_version_id", "is_prediction", "feature", "bin").annotate(total=Sum("count")))
    by_version: dict[int, dict[tuple[bool, str], dict[int, int]]] = defaultdict(lambda: defaultdict(dict))
    for version_id, is_prediction, feature, index, total in sums:
        by_version[version_id][(is_prediction, feature)][index] = int(total)
    if not by_version:
        return []
    versions = ModelVersion.objects.in_bulk(list(by_version))
    windows = []
    now = timezone.now()
    with transaction.atomic():
        for version_id, counts in by_version.items():
            version = versions.get(version_id)
            profile = version.reference_profile if version is not None else None
            if not isinstance(profile, dict):
                continue
            comparisons = _feature_comparisons(profile, counts)
            if not comparisons:
                continue
            statuses = {}
            for feature, is_prediction, comparison in comparisons:
                statuses[(is_prediction, feature["name"])] = drift.status_for(
                    comparison.psi, warning=config.psi_warning, alert=config.psi_alert)
            features_only = [c for c in comparisons if not c[1]] or comparisons
            rows = max(c[2].rows for c in features_only)
            top = max(comparisons, key=lambda c: c[2].psi)
            status = drift.worst(statuses.values()) if rows >= config.min_window_rows else drift.INSUFFICIENT
            window, _ = DriftWindow.objects.update_or_create(
                endpoint=endpoint, model_version=version, start=start, end=end,
                defaults={"rows": rows, "status": status, "max_psi": top[2].psi,
                          "top_feature": top[0]["name"], "psi_warning": config.psi_warning,
                          "psi_alert": config.psi_alert, "computed_at": now},
            )
            FeatureDrift.objects.filter(window=window).delete()
            FeatureDrift.objects.bulk_create([
                FeatureDrift(window=window, feature=feature["name"], is_prediction=is_prediction,
                             numeric=feature.get("type") != "categorical", psi=c.psi, js=c.js, ks=c.ks,
                             rows=c.rows, status=statuses[(is_prediction, feature["name"])])
                for feature, is_prediction, c in comparisons
            ])
            windows.append(window)
            _notify_drift_change(window)
    return windows


def _notify_drift_change(window: DriftWindow) -> None:
    """Notify when the newest window of an endpoint's model version enters or leaves the alert
    state (compared with the window before it; too little data changes nothing)."""
    if window.status == DriftWindow.Status.INSUFFICIENT:
        return
    same = DriftWindow.objects.filter(endpoint=window.endpoint_id, model_version=window.model_version_id)
    if same.filter(end__gt=window.end).exists():
        return  # an older window computed again: the state it would change is not the current one
    previous = (same.filter(end__lte=window.start).exclude(status=DriftWindow.Status.INSUFFICIENT)
                .order_by("-end").first())
    was_alerting = previous is not None and previous.status == DriftWindow.Status.ALERT
    alerting = window.status == DriftWindow.Status.ALERT
    if alerting != was_alerting:
        notifications.drift_alert_changed(window, alerting=alerting)


def drift_compute_backlog(*, endpoint: Endpoint, limit_hours: int = 24 * 14) -> list[DriftWindow]:
    """Recompute the windows of ``endpoint`` that hold hours marked in the drift backlog, then
    clear the marks that were not refreshed while computing."""
    snapshot = timezone.now()
    config = config_for(endpoint)
    marks = list(DriftBacklog.objects.filter(endpoint=endpoint, marked_at__lte=snapshot)
                 .order_by("-hour").values_list("pk", "hour")[:limit_hours])
    if not marks:
        return []
    windows = sorted({window_bounds(hour, config.drift_window_hours) for _, hour in marks})
    results = []
    for start, end in windows:
        results += drift_compute(endpoint=endpoint, start=start, end=end, config=config)
    DriftBacklog.objects.filter(pk__in=[pk for pk, _ in marks], marked_at__lte=snapshot).delete()
    return results


def endpoints_with_drift_backlog() -> list[int]:
    return sorted(set(DriftBacklog.objects.values_list("endpoint_id", flat=True).distinct()))


# --- configuration ------------------------------------------------------------------------------

CONFIG_FIELDS = ("psi_warning", "psi_alert", "drift_window_hours", "min_window_rows")


@transaction.atomic
def monitoring_config_update(*, actor, endpoint: Endpoint, **changes) -> MonitoringConfig:
    """Change an endpoint's drift thresholds, window or minimum rows; audited. A window change
    marks the retained hours for recomputation with the new window."""
    unknown = set(changes) - set(CONFIG_FIELDS)
    if unknown:
        raise ValueError(f"unknown monitoring settings: {', '.join(sorted(unknown))}")
    config, _ = MonitoringConfig.objects.select_for_update().get_or_create(endpoint=endpoint)
    before = {name: getattr(config, name) for name in CONFIG_FIELDS}
    for name, value in changes.items():
        setattr(config, name, value)
    if config.psi_alert <= config.psi_warning:
        raise ValidationError({"psi_alert": "The alert threshold must be above the warning threshold."})
    config.full_clean(exclude=["endpoint"])
    after = {name: getattr(config, name) for name in CONFIG_FIELDS}
    if after == before:
        return config
    config.save()
    changed = {name for name in CONFIG_FIELDS if before[name] != after[name]}
    if changed & {"drift_window_hours", "psi_warning", "psi_alert", "min_window_rows"}:
        hours = (BinCount.objects.filter(endpoint=endpoint)
                 .values_list("model_version_id", "hour").distinct())
        now = timezone.now()
        upsert_add(DriftBacklog, ("endpoint", "model_version", "hour"), (),
                   [(endpoint.pk, version_id, hour, now) for version_id, hour in hours], replace=("marked_at",))
    audit.record(
        action="monitoring.config.update", actor=actor, target=endpoint, project=endpoint.project,
        details={"old": {k: before[k] for k in changed}, "new": {k: after[k] for k in changed}},
    )
    return config


# --- retention ------------------------------------------------------------------------------------

def _delete_in_chunks(queryset, chunk: int = 5000) -> int:
    deleted = 0
    while True:
        pks = list(queryset.values_list("pk", flat=True)[:chunk])
        if not pks:
            return deleted
        deleted += queryset.model.objects.filter(pk__in=pks).delete()[0]


def monitoring_prune(*, now: datetime | None = None) -> dict[str, int]:
    """Delete records, rollups, bin counts and drift results past their retention
    (``MONITORING_*_RETENTION_DAYS``; 0 keeps them). Chunked, so no long lock is held."""
    now = now or timezone.now()

    def cutoff(setting: str):
        days = getattr(settings, setting)
        return now - timedelta(days=days) if days else None

    results = {}
    records = cutoff("MONITORING_RECORD_RETENTION_DAYS")
    if records:
        results["records"] = _delete_in_chunks(InferenceRecord.objects.filter(request_time__lt=records))
    minutes = cutoff("MONITORING_MINUTE_ROLLUP_RETENTION_DAYS")
    if minutes:
        results["minute_rollups"] = _delete_in_chunks(
            LatencyRollup.objects.filter(resolution=LatencyRollup.MINUTE, start__lt=minutes))
        # Quarter-hour rows serve the 24-hour range only: kept as long as minute rows.
        results["quarter_rollups"] = _delete_in_chunks(
            LatencyRollup.objects.filter(resolution=LatencyRollup.QUARTER, start__lt=minutes))
    long_term = cutoff("MONITORING_ROLLUP_RETENTION_DAYS")
    if long_term:
        results["hour_rollups"] = _delete_in_chunks(
            LatencyRollup.objects.filter(resolution=LatencyRollup.HOUR, start__lt=long_term))
        results["bin_counts"] = _delete_in_chunks(BinCount.objects.filter(hour__lt=long_term))
        results["drift_windows"] = _delete_in_chunks(DriftWindow.objects.filter(end__lt=long_term))
        results["backlog"] = _delete_in_chunks(DriftBacklog.objects.filter(hour__lt=long_term))
    return results
