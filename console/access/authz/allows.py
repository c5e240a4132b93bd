"""Durable allow decisions: an allowed check is answered only once a row saying so is committed
(``StagedAllow``), and the rows become ``infer.allow`` audit events later, when they are drained.

**Staging (the check's path).** ``stage`` hands the row to the process's *group writer*:
threads (``AUTHZ_ALLOW_WRITERS``, 2, each with its own connection) that insert every row waiting
when they wake in one multi-row INSERT and one commit, then release every check of that commit. What a check waits for is the commit's WAL flush, and
concurrent checks share it: with 8 checks in flight a commit carries about 8 allows. No delay is
added to wait for company: a lone check is committed at once. Inside a transaction (a test's, a
caller's) the row is written on the caller's connection and commits with it. When the row
cannot be committed (database down) the check is not allowed: ``AllowNotRecorded`` is raised and
the transports answer 503 / ``UNAVAILABLE``, which Envoy (``failure_mode_allow: false``) refuses.

**How durable.** By default (``AUTHZ_ALLOW_SYNCHRONOUS_COMMIT = False``) the writer's commits
are asynchronous (PostgreSQL's ``synchronous_commit = off``, for its own connection only): an
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

import logging
import os
import threading
import time
from datetime import UTC, datetime

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from audit import services as audit
from audit.models import AuditEvent
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
    __slots__ = ("callback", "done", "error")

    def __init__(self, callback=None):
        self.done = threading.Event()
        self.error: BaseException | None = None
        self.callback = callback


class GroupWriter:
    """The process's writer threads (``AUTHZ_ALLOW_WRITERS``, see the module docstring): each
    takes everything waiting when it wakes. With more than one, a check that arrives while a
    commit is on its way need not wait for it to finish before its own starts."""

    def __init__(self):
        self._cond = threading.Condition()
        self._pending: list[tuple[tuple, _Slot]] = []
        self._threads: list[threading.Thread] = []
        self.commits = 0
        self.rows = 0
        self._local = threading.local()

    def submit(self, row: tuple, callback=None) -> _Slot:
        """Queue ``row``; ``callback(error_or_None)`` runs on the writer thread once it is
        committed (or failed), and ``slot.done`` is set."""
        slot = _Slot(callback)
        with self._cond:
            self._pending.append((row, slot))
            if len(self._threads) < max(1, getattr(settings, "AUTHZ_ALLOW_WRITERS", 2)):
                thread = threading.Thread(target=self._run, name="authz-allow-writer", daemon=True)
                self._threads.append(thread)
                thread.start()
            self._cond.notify()
        return slot

    def _configure(self) -> None:
        """``AUTHZ_ALLOW_SYNCHRONOUS_COMMIT = False``: this thread's connection (used for
        nothing else) commits without waiting for the WAL flush (PostgreSQL)."""
        if getattr(settings, "AUTHZ_ALLOW_SYNCHRONOUS_COMMIT", True) or connection.vendor != "postgresql":
            return
        connection.ensure_connection()
        if connection.connection is not getattr(self._local, "configured", None):
            with connection.cursor() as cursor:
                cursor.execute("SET synchronous_commit TO off")
            self._local.configured = connection.connection

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending:
                    self._cond.wait()
                batch = self._pending[:MAX_ROWS_PER_COMMIT]
                del self._pending[:MAX_ROWS_PER_COMMIT]
            error = None
            try:
                self._configure()
                _insert([row for row, _ in batch])
                self.commits += 1
                self.rows += len(batch)
            except Exception as exc:  # noqa: BLE001 - handed to every waiting check (not allowed)
                logger.exception("staging %d allowed checks failed", len(batch))
                error = exc
                try:
                    connection.close()  # a broken connection is opened afresh for the next batch
                except Exception:  # noqa: BLE001
                    logger.debug("closing the writer's connection failed", exc_info=True)
            for _, slot in batch:
                slot.error = error
                slot.done.set()
                if slot.callback is not None:
                    try:
                        slot.callback(error)
                    except Exception:  # noqa: BLE001 - one waiter's failure must not stop the writer
                        logger.exception("an allow waiter's callback failed")


_writers: dict[int, GroupWriter] = {}


def writer() -> GroupWriter:
    """The current process's writer (a forked worker starts its own)."""
    pid = os.getpid()
    found = _writers.get(pid)
    if found is None:
        found = _writers.setdefault(pid, GroupWriter())
    return found


def _group_commit() -> bool:
    return getattr(settings, "AUTHZ_ALLOW_GROUP_COMMIT", True) and not connection.in_atomic_block


def stage(decision, *, method: str, at: float | None = None) -> None:
    """Commit one allowed check; returns once it is durable (raises ``AllowNotRecorded``)."""
    row = _row(decision, method=method, at=time.time() if at is None else at)
    if not _group_commit():
        try:
            _insert([row])
        except Exception as exc:
            raise AllowNotRecorded(str(exc)) from exc
        return
    slot = writer().submit(row)
    slot.done.wait()
    if slot.error is not None:
        raise AllowNotRecorded(str(slot.error)) from slot.error


def stage_later(decision, *, method: str, at: float | None, callback) -> None:
    """``stage`` for an event loop: ``callback(error_or_None)`` runs on the writer thread once
    the row is committed (the caller moves the answer back to its loop)."""
    writer().submit(_row(decision, method=method, at=time.time() if at is None else at), callback)


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
