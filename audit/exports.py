"""Streaming exports of audit events as CSV and JSON Lines (bounded memory: rows are read
with a server-side cursor in chunks and written out as they come), and the one download
response the export page and the API both return."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator

from django.http import StreamingHttpResponse
from django.utils import timezone

from audit import digests, selectors, services

COLUMNS = (
    "id", "occurred_at", "received_at", "source", "actor_id", "actor_name", "action", "target_type",
    "target_id", "target_repr", "project_id", "project_name", "outcome", "source_ip", "user_agent",
    "request_id", "external_id", "digest", "details",
)
CHUNK_ROWS = 2000
FORMATS = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson; charset=utf-8"}
# Cells starting with these are formulas in spreadsheet programs (CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _rows(queryset) -> Iterator[dict]:
    yield from queryset.values(*COLUMNS).iterator(chunk_size=CHUNK_ROWS)


def _plain(row: dict) -> dict:
    row["occurred_at"] = digests._timestamp(row["occurred_at"])
    row["received_at"] = digests._timestamp(row["received_at"])
    return row


def _cell(value) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def csv_stream(queryset) -> Iterator[bytes]:
    """CSV with a header row; ``details`` as JSON; cells that a spreadsheet would run as a
    formula are prefixed with a single quote (JSON Lines keeps values exactly)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    for count, row in enumerate(_rows(queryset), start=1):
        row = _plain(row)
        row["details"] = json.dumps(row["details"], sort_keys=True, ensure_ascii=False)
        writer.writerow([_cell(row[c]) for c in COLUMNS])
        if count % 500 == 0:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()


def jsonl_stream(queryset) -> Iterator[bytes]:
    """One JSON object per line, values exactly as stored (digests can be recomputed)."""
    lines: list[str] = []
    for row in _rows(queryset):
        lines.append(json.dumps(_plain(row), ensure_ascii=False, sort_keys=True, default=str))
        if len(lines) >= 500:
            yield ("\n".join(lines) + "\n").encode()
            lines = []
    if lines:
        yield ("\n".join(lines) + "\n").encode()


def stream(queryset, fmt: str) -> Iterator[bytes]:
    return csv_stream(queryset) if fmt == "csv" else jsonl_stream(queryset)


def export_response(*, user, fmt: str, filters: selectors.EventFilters) -> StreamingHttpResponse:
    """The trail ``user`` may read, filtered, as a streamed ``fmt`` download. The export is
    recorded (who, which format, which filters) before a row is read."""
    services.record_export(actor=user, fmt=fmt, filters=filters.as_dict())
    events = selectors.event_search(user=user, filters=filters)
    response = StreamingHttpResponse(stream(events, fmt), content_type=FORMATS[fmt])
    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    response["Content-Disposition"] = f'attachment; filename="audit-trail-{stamp}.{fmt}"'
    response["Cache-Control"] = "no-store"
    return response
