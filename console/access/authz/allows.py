"""Durable allow decisions: an allowed check is answered only once it is durable — written to
its process's allow journal (``journal``, the default: shipped into ``StagedAllow`` rows in
batches) or a row saying so committed (``StagedAllow``, the journal off) — and the rows become
``infer.allow`` audit events later, when they are drained. What follows is the committed path.

**Staging (the check's path).** ``stage`` commits the row by *group commit*, leader and
followers: the check's own thread takes one of the process's committers (``AUTHZ_ALLOW_WRITERS``,
1 by default, each a connection of its own) and commits every row waiting, its own among them, in one
INSERT; a check that finds every committer busy waits, and its row goes into the next commit
(the committer that finishes wakes it to lead). What a check waits for is one INSERT round trip
(and the WAL flush with synchronous commits), shared by the checks that arrived meanwhile; no
delay is added to wait for company, and no thread is handed the work (each hand-off between
threads cost more CPU than the INSERT). Inside a transaction (a test's, a caller's) the row is
written on the caller's connection and commits with it. When the row cannot be committed
(database down) the check is not allowed: ``AllowNotRecorded`` is raised and the transports
answer 503 / ``UNAVAILABLE``, which Envoy (``failure_mode_allow: false``) refuses.

**How durable.** By default (``AUTHZ_ALLOW_SYNCHRONOUS_COMMIT = False``) the committers' commits
are asynchronous (PostgreSQL's ``synchronous_commit = off``, on their own connections only): an
answered allow is committed and visible in the database server, so it survives a crash of the
authorizer, the workers or the broker and a clean database restart; a crash of the database
server itself (or its machine) may lose the allows of its last ``3 × wal_writer_delay`` (0.6 s
by default). That keeps the disk's flush latency (4–15 ms measured on the shared 2-core box,
under load) out of every inference request. ``True``: every commit also waits for the WAL
flush, and an answered allow survives the database server's crash too.

**Draining (a worker's job).** ``allows_drain`` (the Celery beat task ``drain_allows_task``, or
``manage.py authz_allows_drain``) takes staged rows in id order — on PostgreSQL with ``FOR
UPDATE SKIP LOCKED`` so drainers never wait for each other — aggregates them into one event per
principal, endpoint, minute and pass (with the count, first and last moment, methods and the
staged id range) and deletes them, in one transaction: a drainer killed mid-pass rolls back and
the rows are taken again; they can never be counted twice. Each event's ``external_id`` names
its first staged row, so the trail refuses a second copy of it as well.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import queue
import threading
import time
from datetime import UTC, datetime

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from audit import services as audit
from audit.models import AuditEvent
from console.access.authz.journal import journal, line, row_json
from console.access.models import StagedAllow

logger = logging.getLogger(__name__)

MAX_ROWS_PER_COMMIT = 1000
_COLUMNS = ("decided_at", "user_id", "principal", "endpoint_id", "endpoint_repr", "project_id", "project_name",
            "token_prefix", "method")


class AllowNotRecorded(Exception):
    """The allow could not be committed: the check must not be answered as allowed."""


def _row(decision, *, method: str, at: float) -> tuple:
    return (datetime.fromtimestamp(at, tz=UTC), decision.user_id, decision.principal[:150], decision.endpoint_id,
            decision.endpoint_repr[:512], decision.project_id, decision.project_name[:200],
            decision.token_prefix[:32], method[:16])


def _insert(rows: list[tuple]) -> None:
    """One multi-row INSERT on the thread's connection, one round trip: in autocommit it is its
    own transaction; inside a caller's transaction it commits with it. (COPY was tried: two
    round trips per commit, no CPU saved at the batch sizes seen here.)"""
    ops = connection.ops
    placeholders = "(" + ", ".join(["%s"] * len(_COLUMNS)) + ")"
    params: list = []
    for row in rows:
        params.append(ops.adapt_datetimefield_value(row[0]))
        params.extend(row[1:])
    sql = (f"INSERT INTO {StagedAllow._meta.db_table} ({', '.join(_COLUMNS)}) "  # noqa: S608 - fixed identifiers
           f"VALUES {', '.join([placeholders] * len(rows))}")
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


class _Slot:
    """One check waiting for its row's commit. ``wake`` is a lock held from the start: the
    committer releases it when the row is committed (``done``) or failed (``error``), or a
    committer that finishes releases it to ask this check to lead the next commit."""

    __slots__ = ("row", "done", "error", "wake")

    def __init__(self, row: tuple):
        self.row = row
        self.done = False
        self.error: BaseException | None = None
        self.wake = threading.Lock()
        self.wake.acquire()

    def release(self) -> None:
        with contextlib.suppress(RuntimeError):  # already released: the check will not block
            self.wake.release()


class _Committer:
    """One committer's connection. On PostgreSQL a plain psycopg connection of its own (not
    Django's, which belongs to one thread: any check's thread may lead a commit with it),
    autocommit, ``synchronous_commit = off`` unless ``AUTHZ_ALLOW_SYNCHRONOUS_COMMIT``, and one
    prepared INSERT whose only parameter is the rows as JSON text (measured on the 2-core box:
    ~60 µs of client CPU per commit, against ~110–150 µs for a multi-row VALUES list or one
    array per column, whose parameters the driver converts one by one). A database reached
    through a pooler that cannot keep prepared statements sets ``prepare_threshold: None`` in
    its OPTIONS, which is respected. Elsewhere (SQLite: ``make run``) the leading thread's own
    Django connection."""

    _sql: str | None = None

    def __init__(self):
        self.raw = None
        self.cursor = None
        self.prepare: bool | None = True

    @classmethod
    def sql(cls) -> str:
        if cls._sql is None:
            fields = [StagedAllow._meta.get_field(name) for name in _COLUMNS]
            casts = {"decided_at": "::timestamptz", "user_id": "::integer", "endpoint_id": "::integer",
                     "project_id": "::integer"}
            values = ", ".join(f"(r->>{i}){casts.get(name, '')}" for i, name in enumerate(_COLUMNS))
            columns = ", ".join(connection.ops.quote_name(field.column) for field in fields)
            # Identifiers from model metadata; the rows are the one parameter.
            cls._sql = (f"INSERT INTO {connection.ops.quote_name(StagedAllow._meta.db_table)} ({columns}) "  # noqa: S608
                        f"SELECT {values} FROM json_array_elements(%s::json) AS r")
        return cls._sql

    def insert(self, rows: list[tuple]) -> None:
        if connection.vendor != "postgresql":
            _insert(rows)
            return
        payload = "[" + ",".join(row_json(row) for row in rows) + "]"
        self.writer().execute(self.sql(), [payload], prepare=self.prepare)

    def writer(self):
        """The cursor of this committer's own connection (PostgreSQL), opened when needed."""
        if self.raw is None or self.raw.closed or self.raw.broken:
            self.close()
            self.raw = self._connect()
            self.cursor = self.raw.cursor()
        return self.cursor

    def _connect(self):
        import psycopg

        params = dict(connection.get_connection_params())
        params.pop("cursor_factory", None)  # psycopg's own cursor: server-side binding
        options = connection.settings_dict.get("OPTIONS", {})
        self.prepare = None if "prepare_threshold" in options and options["prepare_threshold"] is None else True
        raw = psycopg.connect(autocommit=True, **params)
        if not getattr(settings, "AUTHZ_ALLOW_SYNCHRONOUS_COMMIT", True):
            raw.execute("SET synchronous_commit TO off")
        return raw

    def close(self) -> None:
        if self.raw is not None:
            try:
                self.raw.close()
            except Exception:  # noqa: BLE001 - a broken connection is opened afresh next time
                logger.debug("closing a committer's connection failed", exc_info=True)
            self.raw = self.cursor = None
        if connection.vendor != "postgresql":
            connection.close()


class GroupCommit:
    """Leader/follower group commit (see the module docstring). A check queues its row and,
    if one of the process's committers (``AUTHZ_ALLOW_WRITERS``, 1 by default; 1 on SQLite) is free,
    takes it and commits every row waiting, its own among them, on the committer's connection,
    then answers. Otherwise it waits: its row goes in a commit already being prepared, or the
    next committer to finish wakes it to lead. No thread is handed the work, so a lone check
    costs its own INSERT and nothing else, and concurrent checks share commits."""

    def __init__(self):
        self._pending: collections.deque[_Slot] = collections.deque()
        self._free: queue.SimpleQueue[_Committer] = queue.SimpleQueue()
        count = max(1, getattr(settings, "AUTHZ_ALLOW_WRITERS", 1)) if connection.vendor == "postgresql" else 1
        for _ in range(count):
            self._free.put(_Committer())
        self.commits = 0
        self.rows = 0

    def commit(self, row: tuple) -> None:
        """Returns once ``row`` is committed; raises what the commit raised."""
        slot = _Slot(row)
        self._pending.append(slot)
        while not slot.done:
            try:
                committer = self._free.get_nowait()
            except queue.Empty:
                slot.wake.acquire()  # committed, failed, or asked to lead
                continue
            try:
                self._lead(committer)
            finally:
                self._free.put(committer)
                try:
                    waiting = self._pending[0]
                except IndexError:
                    pass
                else:
                    waiting.release()  # rows are waiting and a committer is free: lead
            if not slot.done:  # another committer has this row in flight
                slot.wake.acquire()
        if slot.error is not None:
            raise slot.error

    def _lead(self, committer: _Committer) -> None:
        batch: list[_Slot] = []
        try:
            while len(batch) < MAX_ROWS_PER_COMMIT:
                batch.append(self._pending.popleft())
        except IndexError:
            pass
        if not batch:
            return
        error = None
        try:
            committer.insert([slot.row for slot in batch])
            self.commits += 1
            self.rows += len(batch)
        except Exception as exc:  # noqa: BLE001 - handed to every waiting check (not allowed)
            logger.exception("staging %d allowed checks failed", len(batch))
            error = exc
            committer.close()
        for slot in batch:
            slot.error = error
            slot.done = True
            slot.release()


_groups: dict[int, GroupCommit] = {}


def group() -> GroupCommit:
    """The current process's group commit (a forked worker starts its own)."""
    pid = os.getpid()
    found = _groups.get(pid)
    if found is None:
        found = _groups.setdefault(pid, GroupCommit())
    return found


def _group_commit() -> bool:
    return getattr(settings, "AUTHZ_ALLOW_GROUP_COMMIT", True) and not connection.in_atomic_block


def stage(decision, *, method: str, at: float | None = None) -> None:
    """Make one allowed check durable; returns once it is (raises ``AllowNotRecorded``): written
    to this process's allow journal (``journal``) when ``AUTHZ_ALLOW_JOURNAL_DIR`` is set, else
    committed. Inside a transaction (a test's, a caller's) the row is written on the caller's
    connection and commits with it."""
    row = _row(decision, method=method, at=time.time() if at is None else at)
    try:
        if not connection.in_atomic_block and (own := journal()) is not None:
            own.append(line(row))
        elif _group_commit():
            group().commit(row)
        else:
            _insert([row])
    except Exception as exc:
        raise AllowNotRecorded(str(exc)) from exc


# --- draining --------------------------------------------------------------------------------

def staged_count() -> int:
    return StagedAllow.objects.count()


def _claim(limit: int) -> list[tuple]:
    qs = StagedAllow.objects.order_by("id")
    if connection.features.has_select_for_update_skip_locked:
        qs = qs.select_for_update(skip_locked=True)
    return list(qs.values_list("id", *_COLUMNS)[:limit])


def _events(rows: list[tuple]) -> list[AuditEvent]:
    groups: dict[tuple[int, int, int], list[tuple]] = {}
    for row in rows:
        decided_at = row[1]
        groups.setdefault((row[2], row[4], int(decided_at.timestamp() // 60)), []).append(row)
    events = []
    for (user_id, endpoint_id, minute), members in sorted(groups.items(), key=lambda item: item[1][0][0]):
        first, last = members[0], members[-1]
        start = datetime.fromtimestamp(minute * 60, tz=UTC)
        times = [m[1] for m in members]
        events.append(AuditEvent(
            occurred_at=start, source=AuditEvent.Source.AUTHZ, action="infer.allow",
            outcome=audit.SUCCESS, actor_id=str(user_id), actor_name=last[3][:256], target_type="endpoint",
            target_id=str(endpoint_id), target_repr=last[5][:512], project_id=last[6],
            project_name=last[7] or "", source_ip=None, user_agent="", request_id="",
            external_id=f"allow:{user_id}:{endpoint_id}:{minute}:{first[0]}",
            details={"count": len(members), "minute": start.isoformat(),
                     "first": min(times).astimezone(UTC).isoformat(), "last": max(times).astimezone(UTC).isoformat(),
                     "methods": sorted({m[9] for m in members}), "user_id": user_id,
                     "project_id": last[6], "project": last[7], "token": last[8],
                     "staged_ids": [first[0], last[0]] if len(members) > 1 else [first[0]]},
        ))
    return events


def drain_once(*, limit: int = 10_000) -> int:
    """One pass: up to ``limit`` staged allows into the trail and out of staging, in one
    transaction. Returns how many staged allows it took."""
    with transaction.atomic():
        rows = _claim(limit)
        if not rows:
            return 0
        audit.record_many(_events(rows))
        ids = [row[0] for row in rows]
        with connection.cursor() as cursor:
            for start in range(0, len(ids), 1000):
                chunk = ids[start:start + 1000]
                cursor.execute(f"DELETE FROM {StagedAllow._meta.db_table} "  # noqa: S608 - fixed identifiers
                               f"WHERE id IN ({', '.join(['%s'] * len(chunk))})", chunk)
    return len(rows)


def allows_drain(*, limit: int = 10_000, max_seconds: float | None = None) -> int:
    """Drain staged allows until none are left (or ``max_seconds`` passed). Returns the count."""
    started = time.monotonic()
    total = 0
    while True:
        taken = drain_once(limit=limit)
        total += taken
        if not taken or (max_seconds is not None and time.monotonic() - started >= max_seconds):
            return total


def oldest_staged_age(now: datetime | None = None) -> float | None:
    """Seconds since the oldest allow still waiting to be drained (None when none waits)."""
    oldest = StagedAllow.objects.order_by("id").values_list("decided_at", flat=True).first()
    if oldest is None:
        return None
    return ((now or timezone.now()) - oldest).total_seconds()


def staged_allow_families():
    """/metrics (scrape time): allows waiting to be drained and the age of the oldest — a
    drain that has stopped shows here long before anyone misses an event in the trail."""
    from prometheus_client.core import GaugeMetricFamily

    waiting = GaugeMetricFamily("console_authz_staged_allows",
                                "Allowed inference checks committed but not yet drained into the audit trail.")
    oldest = GaugeMetricFamily("console_authz_staged_allows_oldest_age_seconds",
                               "Age of the oldest allowed check waiting to be drained (0: none).")
    waiting.add_metric([], staged_count())
    oldest.add_metric([], max(0.0, oldest_staged_age() or 0.0))
    yield waiting
    yield oldest
