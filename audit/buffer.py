"""The payload-logger buffer: what the receiver does per request, and how workers drain it.

Receiver (``audit.views.ingest.kserve_receiver``), per POST: the ingest key is looked up in a
per-process cache (``project_for_ingest_key``; an entry lives at most
``AUDIT_INGEST_KEY_CACHE_SECONDS``, so a rotated key is refused within that time), the buffer
depth is compared with ``AUDIT_INGEST_BUFFER_MAX_DEPTH`` (also cached for a second; beyond it:
503 with ``Retry-After``, counted per InferenceService), the delivery is parsed for its shape and
namespace, and ``buffer_append`` writes ONE row in autocommit. The 202 follows the commit.

Workers (``python manage.py ingest_worker``, or the periodic ``drain_ingest_buffer_task``) call
``buffer_drain``: each round takes up to ``AUDIT_INGEST_DRAIN_BATCH`` rows in id order
(PostgreSQL: ``FOR UPDATE SKIP LOCKED``, so workers share the buffer without waiting on each
other), stores the events' de-duplication records and dispatches the pairs to the consumers
with set-based writes, and deletes the rows, all in one transaction. A worker killed mid-batch
rolls back; the rows are taken again. Processing is idempotent by (project, CloudEvents id,
type), so taking a row twice — or a logger sending an event twice — adds nothing.

A row that cannot be processed (a consumer raising on its events) is moved, alone, to a failed
``IngestBatch`` with its error, where the retry sweep and the ingest pages handle it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.utils import timezone

from audit import cloudevents
from audit import services as audit
from audit.directory import ProjectRef, get_directory
from audit.models import IngestBatch, IngestBufferEntry, IngestRefusal

logger = logging.getLogger(__name__)


# --- the receiver's caches ------------------------------------------------------------------

class _TTLCache:
    """A small per-process cache whose entries expire after ``ttl`` seconds (thread-safe)."""

    def __init__(self):
        self._items: dict = {}
        self._lock = threading.Lock()

    def get(self, key, ttl: float, load):
        now = time.monotonic()
        with self._lock:
            found = self._items.get(key)
        if found is not None and now - found[0] < ttl:
            return found[1]
        value = load()
        with self._lock:
            if len(self._items) > 10_000:  # unknown keys must not grow it without bound
                self._items.clear()
            self._items[key] = (now, value)
        return value

    def peek(self, key, ttl: float):
        """The cached value, or ``MISS`` when there is none fresh enough (never loads)."""
        with self._lock:
            found = self._items.get(key)
        if found is not None and time.monotonic() - found[0] < ttl:
            return found[1]
        return MISS

    def clear(self):
        with self._lock:
            self._items.clear()


MISS = object()


_keys = _TTLCache()
_depth = _TTLCache()


def project_for_ingest_key(key: str) -> ProjectRef | None:
    """The project of an ingest key (None for an unknown key), from a cache that forgets an
    answer after ``AUDIT_INGEST_KEY_CACHE_SECONDS``: a rotated key stops working within that."""
    return _keys.get(key, settings.AUDIT_INGEST_KEY_CACHE_SECONDS,
                     lambda: get_directory().project_for_ingest_key(key))


def buffer_depth() -> int:
    """Deliveries waiting in the buffer (exact: one COUNT)."""
    return IngestBufferEntry.objects.count()


def _depth_estimate() -> int:
    # The ids of waiting rows lie between the lowest and the highest: an upper bound read from
    # the primary key's two ends, which costs the same at any depth (COUNT does not).
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT MIN(id), MAX(id) FROM {IngestBufferEntry._meta.db_table}")  # noqa: S608 - fixed identifiers
        low, high = cursor.fetchone()
    return 0 if low is None else int(high) - int(low) + 1


def buffer_full() -> bool:
    """Is the buffer at or beyond ``AUDIT_INGEST_BUFFER_MAX_DEPTH``? (re-read once a second)."""
    limit = settings.AUDIT_INGEST_BUFFER_MAX_DEPTH
    if not limit:
        return False
    return _depth.get("depth", settings.AUDIT_INGEST_DEPTH_CACHE_SECONDS, _depth_estimate) >= limit


def cached_receiver_state(key: str):
    """What the receiver needs before reading a body, from the caches alone (no database, so an
    event loop may ask): the key's project, or ``MISS`` when the key's entry or the depth has
    expired or the buffer is full (then ask ``project_for_ingest_key``/``buffer_full``)."""
    project = _keys.peek(key, settings.AUDIT_INGEST_KEY_CACHE_SECONDS)
    if project is MISS or project is None:
        return MISS
    limit = settings.AUDIT_INGEST_BUFFER_MAX_DEPTH
    if limit:
        depth = _depth.peek("depth", settings.AUDIT_INGEST_DEPTH_CACHE_SECONDS)
        if depth is MISS or depth >= limit:
            return MISS
    return project


def reset_caches() -> None:
    """Forget cached keys and depth (tests; a key rotation needs no call, it expires)."""
    _keys.clear()
    _depth.clear()


# --- receiving ------------------------------------------------------------------------------

def _row(project: ProjectRef, content_type: str, headers: dict, body: bytes) -> tuple:
    return (project.pk, timezone.now(), content_type[:200], json.dumps(headers), body)


def buffer_append_async(*, project: ProjectRef, content_type: str, headers: dict, body: bytes):
    """``buffer_append`` for an event loop: hands the row to the process's group writer and
    returns an asyncio future that resolves to the row's id once it is committed (no thread of
    the caller waits)."""
    import asyncio

    loop = asyncio.get_running_loop()
    future = loop.create_future()
    _writer().submit(_row(project, content_type, headers, body), _Slot(loop=loop, future=future))
    return future


def buffer_append(*, project: ProjectRef, content_type: str, headers: dict, body: bytes) -> int:
    """Store one accepted delivery and return its id once it is committed. Under
    ``AUDIT_INGEST_GROUP_COMMIT`` (and outside any transaction) the row is handed to the
    process's group writer, which commits the rows of every request waiting at that moment in
    one statement: the WAL flush of a commit, not the insert, is what each request waits for."""
    row = _row(project, content_type, headers, body)
    if settings.AUDIT_INGEST_GROUP_COMMIT and not connection.in_atomic_block:
        return _writer().append(row)
    return _insert_rows([row])[0]


def _insert_rows(rows: list[tuple]) -> list[int]:
    table = IngestBufferEntry._meta.db_table
    ops = connection.ops
    json_param = "%s::jsonb" if connection.vendor == "postgresql" else "%s"
    values = ", ".join([f"(%s, %s, %s, {json_param}, %s)"] * len(rows))
    params = []
    for project_id, received_at, content_type, headers, body in rows:
        params += [project_id, ops.adapt_datetimefield_value(received_at), content_type, headers, body]
    # One statement is one transaction in autocommit: one round trip, where an explicit
    # transaction costs three (BEGIN, INSERT, COMMIT).
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {table} (project_id, received_at, content_type, headers, body) "  # noqa: S608
                       f"VALUES {values} RETURNING id", params)
        return [pk for (pk,) in cursor.fetchall()]


class _Slot:
    """Where the group writer puts a row's id (or error): a thread waits on ``done``; an event
    loop's request gets its ``future`` resolved on that loop."""

    __slots__ = ("done", "error", "future", "loop", "pk")

    def __init__(self, *, loop=None, future=None):
        self.done = threading.Event() if loop is None else None
        self.loop = loop
        self.future = future
        self.pk = None
        self.error = None


def _resolve(slots: list[_Slot]) -> None:
    for slot in slots:
        if slot.future.done():  # the request went away meanwhile
            continue
        if slot.error is not None:
            slot.future.set_exception(slot.error)
        else:
            slot.future.set_result(slot.pk)


class _GroupWriter:
    """Writer threads (``AUDIT_INGEST_WRITERS`` per process) that insert what the requests hand
    them: a free writer takes everything waiting (at most 1,000 rows) into one multi-row INSERT
    and one commit, then answers every request of that commit. No delay is added: a lone request
    is committed at once. Several writers keep several commits in flight, so the rows arriving
    during one commit's WAL flush are inserted meanwhile and PostgreSQL flushes them together
    (one writer would serialise the flushes: measured 273 commits/s for one committer and 1,140/s
    for eight on the development machine)."""

    def __init__(self):
        self._cond = threading.Condition()
        self._pending: list[tuple[tuple, _Slot]] = []
        self._threads: list[threading.Thread] = []

    def submit(self, row: tuple, slot: _Slot) -> None:
        with self._cond:
            self._pending.append((row, slot))
            self._threads = [thread for thread in self._threads if thread.is_alive()]
            if len(self._threads) < settings.AUDIT_INGEST_WRITERS:
                thread = threading.Thread(target=self._run, name="ingest-group-writer", daemon=True)
                self._threads.append(thread)
                thread.start()
            self._cond.notify()

    def append(self, row: tuple) -> int:
        slot = _Slot()
        self.submit(row, slot)
        slot.done.wait()
        if slot.error is not None:
            raise slot.error
        return slot.pk

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending:
                    self._cond.wait()
                batch, self._pending = self._pending[:1000], self._pending[1000:]
            try:
                ids = _insert_rows([row for row, _ in batch])
                for (_, slot), pk in zip(batch, ids, strict=True):
                    slot.pk = pk
            except Exception as exc:  # noqa: BLE001 - handed to every waiting request (a 500: not acknowledged)
                logger.exception("ingest buffer insert failed")
                connection.close()  # a broken connection is opened afresh for the next batch
                for _, slot in batch:
                    slot.error = exc
            by_loop: dict = defaultdict(list)
            for _, slot in batch:
                if slot.loop is None:
                    slot.done.set()
                else:
                    by_loop[slot.loop].append(slot)
            for loop, slots in by_loop.items():  # one wake-up per loop, not per request
                with contextlib.suppress(RuntimeError):  # the loop closed (the process is stopping)
                    loop.call_soon_threadsafe(_resolve, slots)


_writers: dict[int, _GroupWriter] = {}


def _writer() -> _GroupWriter:
    # One per process: a gunicorn worker forked from a master that had one starts its own.
    pid = os.getpid()
    writer = _writers.get(pid)
    if writer is None:
        writer = _writers.setdefault(pid, _GroupWriter())
    return writer


# --- refusals (back-pressure) ---------------------------------------------------------------

class _RefusalCounter:
    """Refusals counted in memory and added to ``IngestRefusal`` at most once per
    ``AUDIT_INGEST_REFUSAL_FLUSH_SECONDS`` (one upsert per InferenceService), so an overloaded
    receiver does not add a database write per refused request."""

    def __init__(self):
        self._counts: dict[tuple[int, str, str], int] = defaultdict(int)
        self._last: dict[tuple[int, str, str], datetime] = {}
        self._flushed = 0.0
        self._lock = threading.Lock()

    def add(self, project: ProjectRef, inference_service: str) -> None:
        key = (project.pk, project.name, inference_service[:253])
        with self._lock:
            self._counts[key] += 1
            self._last[key] = timezone.now()
            due = time.monotonic() - self._flushed >= settings.AUDIT_INGEST_REFUSAL_FLUSH_SECONDS
        if due:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            counts, last = dict(self._counts), dict(self._last)
            self._counts.clear()
            self._last.clear()
            self._flushed = time.monotonic()
        if counts:
            refusals_record(counts=counts, last=last)


_refusals = _RefusalCounter()


def refusal_count(project: ProjectRef, inference_service: str) -> None:
    """Count one delivery refused because the buffer was full."""
    _refusals.add(project, inference_service)


def refusals_flush() -> None:
    _refusals.flush()


def _upsert_sql() -> str:
    table = IngestRefusal._meta.db_table
    return (f"INSERT INTO {table} (project_id, inference_service, hour, count, last_refused_at) "  # noqa: S608
            f"VALUES (%s, %s, %s, %s, %s) ON CONFLICT (project_id, inference_service, hour) DO UPDATE SET "
            f"count = {table}.count + excluded.count, last_refused_at = excluded.last_refused_at")


def refusals_record(*, counts: dict[tuple[int, str, str], int], last: dict) -> None:
    """Add refusal counts (keyed by project id, project name, InferenceService) to their hour,
    and audit them as ``ingest.refuse`` at most once per project and
    ``AUDIT_INGEST_REFUSAL_AUDIT_SECONDS`` (shared through the cache across processes)."""
    ops = connection.ops
    by_project: dict[tuple[int, str], dict[str, int]] = defaultdict(dict)
    with transaction.atomic(), connection.cursor() as cursor:
        for (project_id, project_name, isvc), count in sorted(counts.items()):
            moment = last[(project_id, project_name, isvc)]
            hour = moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
            cursor.execute(_upsert_sql(), [project_id, isvc, ops.adapt_datetimefield_value(hour), count,
                                           ops.adapt_datetimefield_value(moment)])
            by_project[(project_id, project_name)][isvc] = count
        interval = settings.AUDIT_INGEST_REFUSAL_AUDIT_SECONDS
        for (project_id, project_name), services in by_project.items():
            if interval and not cache.add(f"audit:ingest-refusal-audited:{project_id}", 1, timeout=interval):
                continue
            audit.record(
                action="ingest.refuse", actor=None, actor_name="", target_type="project",
                target_id=str(project_id), target_repr=project_name,
                project=ProjectRef(pk=project_id, name=project_name, namespace=""),
                outcome=audit.FAILURE, source_ip=None, user_agent="", request_id="",
                details={"reason": "buffer full", "refused": services,
                         "max_depth": settings.AUDIT_INGEST_BUFFER_MAX_DEPTH,
                         "note": f"further refusals are counted, not audited, for {interval} s"},
            )


# --- draining -------------------------------------------------------------------------------

def _claim(limit: int) -> list[tuple]:
    qs = IngestBufferEntry.objects.order_by("id")
    if connection.features.has_select_for_update_skip_locked:
        qs = qs.select_for_update(skip_locked=True)
    rows = qs.values_list("id", "project_id", "received_at", "content_type", "headers", "body")[:limit]
    return [(pk, project_id, received_at, content_type, headers or {}, bytes(body))
            for pk, project_id, received_at, content_type, headers, body in rows]


def _delete(ids: list[int]) -> None:
    table = IngestBufferEntry._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":  # one array parameter, not one per id
            cursor.execute(f"DELETE FROM {table} WHERE id = ANY(%s::bigint[])", [ids])  # noqa: S608
            return
        for start in range(0, len(ids), 1000):
            chunk = ids[start:start + 1000]
            cursor.execute(f"DELETE FROM {table} WHERE id IN ({', '.join(['%s'] * len(chunk))})", chunk)  # noqa: S608


def _process(rows: list[tuple]) -> tuple[int, int]:
    from audit.ingest import events_store_and_dispatch

    by_project: dict[int, list] = defaultdict(list)
    for _pk, project_id, received_at, content_type, headers, body in rows:
        for event in cloudevents.parse_delivery(headers, body, content_type,
                                                max_depth=settings.AUDIT_INGEST_MAX_JSON_DEPTH):
            by_project[project_id].append((event, received_at))
    _lock_lone_halves(by_project)
    created = duplicates = 0
    for project_id, events in by_project.items():
        c, d = events_store_and_dispatch(project_id, events)
        created += c
        duplicates += d
    return created, duplicates


def _lone_key(project_id: int, event_id: str) -> int:
    digest = hashlib.blake2b(f"{project_id}:{event_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _lock_lone_halves(by_project: dict[int, list]) -> None:
    """Several workers drain at once (SKIP LOCKED), so a request and its response may be taken
    by two workers whose transactions overlap: neither would see the other's half and the pair
    would wait for the sweep. Before writing anything, a batch takes a transaction lock on each
    event whose partner is not in the batch, in one sorted order (no deadlock between batches):
    the second worker waits for the first one's commit, then finds its half and pairs them."""
    if connection.vendor != "postgresql":
        return  # SQLite runs one write transaction at a time
    keys = set()
    for project_id, events in by_project.items():
        kinds: dict[str, set[str]] = defaultdict(set)
        for event, _received in events:
            kinds[event.id].add(event.kind)
        keys.update(_lone_key(project_id, event_id) for event_id, found in kinds.items()
                    if not {"request", "response"} <= found)
    if keys:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(pg_advisory_xact_lock(k)) FROM "
                           "(SELECT k FROM unnest(%s::bigint[]) AS k ORDER BY k) AS sorted", [sorted(keys)])


def _move_to_failed(row: tuple, exc: Exception) -> None:
    pk, project_id, received_at, content_type, headers, body = row
    project = get_directory().projects_by_id({project_id}).get(project_id)
    IngestBatch.objects.create(
        kind=IngestBatch.Kind.KSERVE, status=IngestBatch.Status.FAILED, received_at=received_at,
        project_id=project_id, project_name=project.name if project else "", content_type=content_type,
        headers=headers, body=body, body_size=len(body), body_sha256=hashlib.sha256(body).hexdigest(),
        attempts=1, error=f"{type(exc).__name__}: {exc}"[:4000],
        next_attempt_at=timezone.now() + timedelta(minutes=1),  # the backoff of a first failure
    )
    _delete([pk])


def drain_once(*, limit: int | None = None) -> dict:
    """Process one batch of buffered deliveries in one transaction. Returns counts
    (``deliveries`` taken, ``events`` new, ``duplicates``, ``failed`` moved to batches)."""
    limit = limit or settings.AUDIT_INGEST_DRAIN_BATCH
    counts = {"deliveries": 0, "events": 0, "duplicates": 0, "failed": 0}
    try:
        with transaction.atomic():
            rows = _claim(limit)
            if not rows:
                return counts
            counts["events"], counts["duplicates"] = _process(rows)
            _delete([row[0] for row in rows])
            counts["deliveries"] = len(rows)
        return counts
    except Exception:
        logger.exception("ingest buffer batch failed; processing its deliveries one by one")
    # One delivery spoilt the batch: take them one at a time and set the bad ones aside.
    for _ in range(limit):
        with transaction.atomic():
            rows = _claim(1)
            if not rows:
                break
            try:
                with transaction.atomic():
                    created, duplicates = _process(rows)
                    _delete([rows[0][0]])
                counts["events"] += created
                counts["duplicates"] += duplicates
            except Exception as exc:
                logger.exception("buffered delivery %s failed; kept as a failed ingest batch", rows[0][0])
                _move_to_failed(rows[0], exc)
                counts["failed"] += 1
            counts["deliveries"] += 1
    return counts


def buffer_drain(*, limit: int | None = None, max_seconds: float | None = None, stop=None) -> dict:
    """Drain the buffer until it is empty (or ``max_seconds`` passed, or ``stop()`` is true)."""
    started = time.monotonic()
    totals = {"deliveries": 0, "events": 0, "duplicates": 0, "failed": 0}
    while True:
        counts = drain_once(limit=limit)
        for key, value in counts.items():
            totals[key] += value
        if not counts["deliveries"]:
            break
        if max_seconds is not None and time.monotonic() - started >= max_seconds:
            break
        if stop is not None and stop():
            break
    return totals
