"""Retention: archive sealed events to Apache Iceberg, then prune old ones from the database.

Archive: every sealed event is appended to the Iceberg table ``<namespace>.events``
(pyiceberg, SQL catalog), partitioned by day of ``occurred_at``, with its digest and the
sequence of the seal covering it, in seal order, a few dozen seals per snapshot. The snapshot
summary names the seals it holds (``console.seals``), so a run that died between the Iceberg
commit and the database commit finds its snapshot again instead of writing the rows twice.
The table is plain Iceberg (Parquet files + metadata): Spark, Trino, DuckDB or pyiceberg read
it directly.

Prune: events are deleted only when their whole seal is archived and every event of the
seal is older than ``AUDIT_RETENTION_DAYS``, through the one documented bypass
(``audit.db.bypass(PRUNE)``); the seal itself stays forever, so verification checks the
pruned range against the seal using the archived rows.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, timedelta
from pathlib import Path
from urllib.parse import quote

from django.conf import settings
from django.db import connections, transaction
from django.db.models import Q
from django.utils import timezone

from audit import digests
from audit import services as audit
from audit.db import PRUNE, bypass
from audit.models import AuditEvent, AuditSeal, AuditSealArchive, InferenceEventPart, IngestBatch

logger = logging.getLogger(__name__)

TABLE = "events"
SEALS_PER_SNAPSHOT = 50
SNAPSHOT_PROPERTY = "console.seals"
RUN_BUDGET_SECONDS = 180  # below the Celery soft time limit
INGEST_RECORD_DAYS = 30  # processed batches and de-duplication records of inference events


# --- the Iceberg table ----------------------------------------------------------------------

def catalog_uri() -> str:
    """SQLAlchemy URI of the Iceberg SQL catalog (see AUDIT_ARCHIVE_CATALOG_URI)."""
    configured = settings.AUDIT_ARCHIVE_CATALOG_URI
    if configured and configured != "database":
        return configured
    if configured == "database":
        db = settings.DATABASES["default"]
        if db["ENGINE"].endswith("sqlite3"):
            return f"sqlite:///{db['NAME']}"
        auth = quote(db.get("USER") or "", safe="")
        if db.get("PASSWORD"):
            auth += ":" + quote(db["PASSWORD"], safe="")
        host = db.get("HOST") or "localhost"
        port = f":{db['PORT']}" if db.get("PORT") else ""
        return f"postgresql+psycopg://{auth}@{host}{port}/{db['NAME']}"
    path = Path(settings.VAR_DIR) / "audit-archive" / "catalog.sqlite3"
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def warehouse_uri() -> str:
    configured = settings.AUDIT_ARCHIVE_WAREHOUSE
    if "://" in configured:
        return configured
    path = Path(configured).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path.as_uri()


def catalog():
    from pyiceberg.catalog.sql import SqlCatalog

    return SqlCatalog("console_audit", uri=catalog_uri(), warehouse=warehouse_uri())


def _schema():
    from pyiceberg.schema import Schema
    from pyiceberg.types import LongType, NestedField, StringType, TimestamptzType

    columns = [
        ("id", LongType(), True),
        ("seal_sequence", LongType(), True),
        ("occurred_at", TimestamptzType(), True),
        ("received_at", TimestamptzType(), True),
        ("source", StringType(), True),
        ("actor_id", StringType(), True),
        ("actor_name", StringType(), True),
        ("action", StringType(), True),
        ("target_type", StringType(), True),
        ("target_id", StringType(), True),
        ("target_repr", StringType(), True),
        ("project_id", LongType(), False),
        ("project_name", StringType(), True),
        ("outcome", StringType(), True),
        ("source_ip", StringType(), False),
        ("user_agent", StringType(), True),
        ("request_id", StringType(), True),
        ("details", StringType(), True),  # canonical JSON
        ("external_id", StringType(), True),
        ("digest", StringType(), True),
    ]
    return Schema(*[
        NestedField(field_id=i, name=name, field_type=kind, required=required)
        for i, (name, kind, required) in enumerate(columns, start=1)
    ])


def _arrow_schema():

    from pyiceberg.io.pyarrow import schema_to_pyarrow

    return schema_to_pyarrow(_schema(), include_field_ids=False)


def table(cat=None):
    """The archive table, created (day-partitioned on occurred_at) on first use."""
    from pyiceberg.partitioning import PartitionField, PartitionSpec
    from pyiceberg.transforms import DayTransform

    cat = cat or catalog()
    namespace = settings.AUDIT_ARCHIVE_NAMESPACE
    cat.create_namespace_if_not_exists(namespace)
    schema = _schema()
    spec = PartitionSpec(PartitionField(source_id=schema.find_field("occurred_at").field_id, field_id=1000,
                                        transform=DayTransform(), name="occurred_day"))
    return cat.create_table_if_not_exists(f"{namespace}.{TABLE}", schema=schema, partition_spec=spec,
                                          properties={"format-version": "2"})


# --- archiving ------------------------------------------------------------------------------

def _range_filter(ranges) -> Q:
    condition = Q(pk__in=[])
    for first, last in ranges:
        condition |= Q(id__gte=first, id__lte=last)
    return condition


def _rows_for(seals: list[AuditSeal]) -> list[dict]:
    rows = []
    for seal in seals:
        for values in AuditEvent.objects.filter(_range_filter(seal.ranges)).order_by("id").values(
            "id", "received_at", "digest", *digests.CANONICAL_FIELDS
        ):
            values["seal_sequence"] = seal.sequence
            values["details"] = json.dumps(values["details"], sort_keys=True, separators=(",", ":"),
                                           ensure_ascii=False)
            values["occurred_at"] = values["occurred_at"].astimezone(UTC)
            values["received_at"] = values["received_at"].astimezone(UTC)
            rows.append(values)
    return rows


def _archived_seal_snapshots(tbl) -> dict[int, int]:
    """seal sequence -> snapshot id, from the snapshot summaries."""
    found: dict[int, int] = {}
    for snapshot in tbl.snapshots():
        summary = snapshot.summary
        value = summary.additional_properties.get(SNAPSHOT_PROPERTY) if summary is not None else None
        if value:
            for seq in value.split(","):
                found[int(seq)] = snapshot.snapshot_id
    return found


def archive_sealed(*, limit_seals: int | None = None, deadline: float | None = None) -> int:
    """Append sealed, not yet archived events to the Iceberg table. Returns seals archived."""
    import pyarrow as pa

    pending = AuditSeal.objects.filter(archive__isnull=True).order_by("sequence")
    if limit_seals is not None:
        pending = pending[:limit_seals]
    pending = list(pending)
    if not pending:
        return 0
    tbl = table()
    already = _archived_seal_snapshots(tbl)
    done = 0
    for start in range(0, len(pending), SEALS_PER_SNAPSHOT):
        if deadline is not None and time.monotonic() > deadline:
            break
        chunk = pending[start:start + SEALS_PER_SNAPSHOT]
        fresh = [s for s in chunk if s.sequence not in already]
        rows = _rows_for(fresh)
        snapshot_id = None
        if rows:
            batch = pa.Table.from_pylist(rows, schema=_arrow_schema())
            tbl.append(batch, snapshot_properties={SNAPSHOT_PROPERTY: ",".join(str(s.sequence) for s in fresh)})
            snapshot_id = tbl.current_snapshot().snapshot_id
        counts: dict[int, int] = {}
        for row in rows:
            counts[row["seal_sequence"]] = counts.get(row["seal_sequence"], 0) + 1
        now = timezone.now()
        with transaction.atomic():
            AuditSealArchive.objects.bulk_create([
                AuditSealArchive(
                    seal=seal, table=f"{settings.AUDIT_ARCHIVE_NAMESPACE}.{TABLE}",
                    snapshot_id=already.get(seal.sequence) or snapshot_id or 0,
                    rows=seal.event_count if seal.sequence in already else counts.get(seal.sequence, 0),
                    archived_at=now,
                )
                for seal in chunk
            ], ignore_conflicts=True)
        done += len(chunk)
    return done


def archived_rows(sequences: list[int]) -> dict[int, dict[int, dict]]:
    """Archived events of the given seals: seal sequence -> event id -> canonical field values."""
    from pyiceberg.expressions import In

    if not sequences:
        return {}
    result = table().scan(row_filter=In("seal_sequence", set(sequences))).to_arrow()
    out: dict[int, dict[int, dict]] = {}
    for row in result.to_pylist():
        row["details"] = json.loads(row["details"])
        row["occurred_at"] = row["occurred_at"].astimezone(UTC)
        out.setdefault(row["seal_sequence"], {})[row["id"]] = row
    return out


# --- pruning --------------------------------------------------------------------------------

def prune_archived(*, now=None, deadline: float | None = None) -> int:
    """Delete events of archived seals older than the retention period. Returns events deleted."""
    days = settings.AUDIT_RETENTION_DAYS
    if not days:
        return 0
    now = now or timezone.now()
    cutoff = now - timedelta(days=days)
    archives = (
        AuditSealArchive.objects.filter(pruned_at__isnull=True, seal__max_occurred_at__lt=cutoff)
        .select_related("seal").order_by("seal__sequence")
    )
    deleted = 0
    seals_pruned = []
    for archive in archives.iterator(chunk_size=100):
        if deadline is not None and time.monotonic() > deadline:
            break
        with bypass(PRUNE):
            with connections["default"].cursor() as cursor:
                for first, last in archive.seal.ranges:
                    cursor.execute("DELETE FROM audit_auditevent WHERE id >= %s AND id <= %s", [first, last])
                    deleted += cursor.rowcount
            AuditSealArchive.objects.filter(pk=archive.pk).update(pruned_at=now)
        seals_pruned.append(archive.seal.sequence)
    if seals_pruned:
        audit.record(action="audit.prune", actor=None, actor_name="retention", target_type="auditseal",
                     target_id=f"{seals_pruned[0]}-{seals_pruned[-1]}",
                     target_repr=f"seals {seals_pruned[0]}–{seals_pruned[-1]}",
                     details={"seals": len(seals_pruned), "events": deleted, "retention_days": days,
                              "cutoff": cutoff.isoformat()})
    return deleted


def prune_ingest_records(*, now=None) -> dict:
    """Processed batches and dispatched inference-event records past their use."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=INGEST_RECORD_DAYS)
    batches, _ = IngestBatch.objects.filter(status=IngestBatch.Status.DONE, processed_at__lt=cutoff).delete()
    parts, _ = InferenceEventPart.objects.filter(dispatched_at__lt=cutoff).delete()
    return {"batches": batches, "parts": parts}


def archive_and_prune(*, now=None) -> dict:
    """The periodic retention run: archive what is sealed, prune what is archived and old."""
    deadline = time.monotonic() + RUN_BUDGET_SECONDS
    archived = archive_sealed(deadline=deadline)
    pruned = prune_archived(now=now, deadline=deadline)
    return {"archived_seals": archived, "pruned_events": pruned, **prune_ingest_records(now=now)}
