"""Verifying the audit trail against its seals (``python manage.py audit_verify`` and the
integrity page).

Everything is recomputed: each event's digest from its content, each seal's events digest
and fingerprints from the events it covers (read back from the Iceberg archive for seals
whose events retention pruned), each seal's hash, HMAC and link to the previous seal. It
reports, in trail order, every

- ``modified`` event: its content no longer matches the digest it was sealed with;
- ``reordered`` events: two sealed events whose contents traded places (ids swapped);
- ``deleted`` event: a sealed id that is gone (and was not pruned by retention);
- ``inserted`` event: an event no seal covers, below the sealer's low-water mark;
- broken seal (``seal``): missing from the sequence, altered, signed with an unknown key, or
  a wrong signature or chain link.

Events above the low-water mark that no seal covers yet are counted as ``unsealed``: they are
waiting for the next sealer run, not a failure.

On PostgreSQL the events of each group of seals (``GROUP_EVENTS``) are read and checked in
``AUDIT_VERIFY_PROCESSES`` forked processes, each on its own connection, and so is the pass for
uncovered events; their findings are merged in trail order, so the report is the one a single
process gives (tested). A process that cannot fork safely (threads running, a daemon such as a
Celery worker child, a transaction open: children would not see its rows) verifies alone.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from dataclasses import dataclass, field
from datetime import UTC
from types import SimpleNamespace

from django.conf import settings
from django.db import connection, connections, transaction
from django.utils.dateparse import parse_datetime

from audit import digests, sealing
from audit.models import AuditEvent, AuditSeal, AuditSealArchive

MAX_PROBLEMS = 1000


@dataclass(frozen=True)
class Problem:
    kind: str  # modified | reordered | deleted | inserted | seal
    message: str
    event_id: int | None = None
    seal_sequence: int | None = None
    position: int = 0  # for ordering: the event id (or the seal's first event id)

    def as_dict(self) -> dict:
        return {"kind": self.kind, "message": self.message, "event_id": self.event_id,
                "seal": self.seal_sequence}


@dataclass
class Report:
    seals: int = 0
    events: int = 0
    archived_events: int = 0
    unsealed: int = 0
    problems: list[Problem] = field(default_factory=list)
    truncated: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first(self) -> Problem | None:
        return min(self.problems, key=lambda p: (p.position, p.seal_sequence or 0)) if self.problems else None

    def add(self, problem: Problem) -> None:
        if len(self.problems) >= MAX_PROBLEMS:
            self.truncated = True
            return
        self.problems.append(problem)

    def summary(self) -> dict:
        first = self.first
        return {
            "ok": self.ok,
            "seals": self.seals,
            "events": self.events,
            "archived_events": self.archived_events,
            "unsealed": self.unsealed,
            "problem_count": len(self.problems),
            "first_problem": first.as_dict() if first else None,
            "problems": [p.as_dict() for p in sorted(self.problems, key=lambda p: p.position)[:20]],
        }


def _content_digest(values: dict) -> str:
    return digests.event_digest(SimpleNamespace(**values))


def _check_events(report: Report, seal: AuditSeal, found: dict[int, tuple[str, str]], *, source: str) -> None:
    """Compare the events found for ``seal`` (id -> (digest recomputed from the content, digest
    column)) with what it sealed."""
    expected_ids = sealing.expand(seal.ranges)
    fps = seal.fingerprints
    expected_fp = {event_id: fps[i * 16:(i + 1) * 16] for i, event_id in enumerate(expected_ids)}
    if len(expected_ids) != seal.event_count or len(fps) != 16 * seal.event_count:
        report.add(Problem("seal", f"seal {seal.sequence}: covered ids and fingerprints do not match its count",
                           seal_sequence=seal.sequence, position=seal.first_event_id))
        return
    actual: dict[int, str] = {}
    for event_id in expected_ids:
        values = found.get(event_id)
        if values is None:
            report.add(Problem("deleted", f"event {event_id} was deleted (sealed by seal {seal.sequence})",
                               event_id=event_id, seal_sequence=seal.sequence, position=event_id))
            continue
        content, stored = values
        actual[event_id] = content
        if source == "database" and content != stored and sealing.fingerprint(content) == expected_fp[event_id]:
            # Only the stored digest column was changed: the content is the sealed one.
            report.add(Problem("modified", f"event {event_id}: its digest column was altered",
                               event_id=event_id, seal_sequence=seal.sequence, position=event_id))
    mismatched = [i for i in expected_ids if i in actual and sealing.fingerprint(actual[i]) != expected_fp[i]]
    by_fp = {expected_fp[i]: i for i in mismatched}
    reported: set[int] = set()
    for event_id in mismatched:
        if event_id in reported:
            continue
        other = by_fp.get(sealing.fingerprint(actual[event_id]))
        if other is not None and other != event_id and sealing.fingerprint(actual[other]) == expected_fp[event_id]:
            report.add(Problem("reordered", f"events {min(event_id, other)} and {max(event_id, other)} were "
                               f"swapped (each holds the other's sealed content; seal {seal.sequence})",
                               event_id=min(event_id, other), seal_sequence=seal.sequence,
                               position=min(event_id, other)))
            reported.update({event_id, other})
            continue
        where = "in the archive" if source == "archive" else ""
        report.add(Problem("modified", f"event {event_id} was modified {where}after it was sealed (seal "
                           f"{seal.sequence})".replace("  ", " "),
                           event_id=event_id, seal_sequence=seal.sequence, position=event_id))
        reported.add(event_id)
    if not mismatched and len(actual) == len(expected_ids):
        recomputed = sealing.events_digest((i, actual[i]) for i in expected_ids)
        if recomputed != seal.events_digest:
            report.add(Problem("seal", f"seal {seal.sequence}: events digest does not match its events",
                               seal_sequence=seal.sequence, position=seal.first_event_id))
    if source == "archive":
        report.archived_events += len(actual)
    else:
        report.events += len(actual)


def _check_seal(report: Report, seal: AuditSeal, previous: AuditSeal | None, expected_sequence: int) -> None:
    position = seal.first_event_id
    if seal.sequence != expected_sequence:
        report.add(Problem("seal", f"seal {expected_sequence} is missing (next is seal {seal.sequence})",
                           seal_sequence=expected_sequence, position=position))
    elif previous is not None and seal.previous_hash != previous.seal_hash:
        report.add(Problem("seal", f"seal {seal.sequence}: its link to seal {previous.sequence} is broken",
                           seal_sequence=seal.sequence, position=position))
    elif previous is None and seal.previous_hash:
        report.add(Problem("seal", f"seal {seal.sequence}: the first seal links to a predecessor",
                           seal_sequence=seal.sequence, position=position))
    recomputed = sealing.compute_seal_hash(seal)
    if recomputed != seal.seal_hash:
        report.add(Problem("seal", f"seal {seal.sequence} was altered (its hash does not match its content)",
                           seal_sequence=seal.sequence, position=position))
        return
    valid = sealing.signature_valid(seal, recomputed)
    if valid is None:
        report.add(Problem("seal", f"seal {seal.sequence} is signed with key {seal.key_id!r}, which is not "
                           "configured (AUDIT_SIGNING_KEYS)", seal_sequence=seal.sequence, position=position))
    elif not valid:
        report.add(Problem("seal", f"seal {seal.sequence}: wrong signature (forged or altered)",
                           seal_sequence=seal.sequence, position=position))


_COLUMNS = ("id", "digest", *digests.CANONICAL_FIELDS)
GROUP_EVENTS = 50_000  # events of the seals verified together (one streamed query)


# On PostgreSQL the database writes occurred_at in the canonical form itself (UTC, microseconds,
# "Z"), which spares a datetime per row parsed by the driver and formatted again.
_CANONICAL_TIME_SQL = "to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"


def _stream_digests(first: int, last: int) -> dict[int, tuple[str, str]]:
    """Every event with first <= id <= last as id -> (recomputed digest, digest column), read as
    tuples through a server-side cursor on PostgreSQL (no model instances, no per-row
    conversions beyond what the digest needs)."""
    found: dict[int, tuple[str, str]] = {}
    sqlite = connection.vendor == "sqlite"
    canonical_time = connection.vendor == "postgresql"
    columns = [_CANONICAL_TIME_SQL if name == "occurred_at" and canonical_time else name for name in _COLUMNS]
    sql = (f"SELECT {', '.join(columns)} FROM {AuditEvent._meta.db_table} "  # noqa: S608 - fixed identifiers
           "WHERE id >= %s AND id <= %s ORDER BY id")
    row_digest = digests.row_digest
    with transaction.atomic(), connection.chunked_cursor() as cursor:
        cursor.execute(sql, [first, last])
        while rows := cursor.fetchmany(5000):
            for row in rows:
                if sqlite:  # timestamps stored as naive UTC (text, or parsed by the driver)
                    moment = parse_datetime(row[2]) if isinstance(row[2], str) else row[2]
                    row = (*row[:2], moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment, *row[3:])
                found[row[0]] = (row_digest(row[2:], canonical_time=canonical_time), row[1])
    return found


def _verify_group(report: Report, group: list[AuditSeal]) -> None:
    found = _stream_digests(min(s.first_event_id for s in group), max(s.last_event_id for s in group))
    for seal in group:
        _check_events(report, seal, found, source="database")


def _processes(requested: int | None) -> int:
    wanted = settings.AUDIT_VERIFY_PROCESSES if requested is None else requested
    wanted = wanted or os.cpu_count() or 1
    if (wanted <= 1 or connection.vendor != "postgresql" or connection.in_atomic_block
            or multiprocessing.current_process().daemon or threading.active_count() > 1
            or "fork" not in multiprocessing.get_all_start_methods()):
        return 1
    return wanted


class _Done:
    """A step whose findings are already known (same interface as an ``AsyncResult``)."""

    def __init__(self, value):
        self.value = value

    def get(self):
        return self.value


def _findings(report: Report) -> tuple:
    return report.events, report.archived_events, report.unsealed, report.problems, report.truncated


def _group_in_child(group: list[AuditSeal]) -> tuple:
    part = Report()
    try:
        _verify_group(part, group)
    finally:
        connection.close()
    return _findings(part)


def _uncovered_in_child(covered: list[list[int]], floor: int) -> tuple:
    part = Report()
    try:
        _check_uncovered(part, covered, floor)
    finally:
        connection.close()
    return _findings(part)


def _merge(report: Report, findings: tuple) -> None:
    events, archived, unsealed, problems, truncated = findings
    report.events += events
    report.archived_events += archived
    report.unsealed += unsealed
    for problem in problems:
        report.add(problem)
    report.truncated = report.truncated or truncated


def verify(*, progress=None, processes: int | None = None) -> Report:
    """Verify the whole trail. ``progress(done_seals)`` is called now and then. ``processes``
    (default ``AUDIT_VERIFY_PROCESSES``) verifies the events in that many forked processes where
    that is safe (see the module's docstring); the report is the same either way."""
    from audit import retention

    workers = _processes(processes)
    pool = None
    if workers > 1:
        # The children must not share the parent's connections: close them before forking (the
        # parent opens new ones as it needs them; no transaction is open, checked above).
        connections.close_all()
        pool = multiprocessing.get_context("fork").Pool(workers, initializer=_child_start)
    try:
        report = _verify(progress=progress, pool=pool, retention=retention)
    except BaseException:
        if pool is not None:
            pool.terminate()
            pool.join()
        raise
    if pool is not None:
        pool.close()  # the children exit once their queue is empty
        pool.join()
    return report


def _child_start() -> None:
    # A child must stop when the pool stops it, whatever handlers its parent installed (the
    # ingest worker's SIGTERM handler only sets a flag).
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _verify(*, progress, pool, retention) -> Report:
    report = Report()
    previous: AuditSeal | None = None
    expected_sequence = 1
    all_ranges: list[list[int]] = []
    floor = 0
    pruned = set(AuditSealArchive.objects.filter(pruned_at__isnull=False).values_list("seal_id", flat=True))
    archive_queue: list[AuditSeal] = []
    # The event checks in trail order, merged at the end (a child's, or one done here), so the
    # problems are listed (and truncated) as one process lists them.
    steps: list = []
    seal_checks = Report()  # the seals' own problems since the last step, in their place

    def push_seal_checks():
        nonlocal seal_checks
        if seal_checks.problems:
            steps.append(_Done(_findings(seal_checks)))
            seal_checks = Report()

    def flush_archive():
        if not archive_queue:
            return
        push_seal_checks()
        part = Report()
        rows_by_seal = retention.archived_rows([s.sequence for s in archive_queue])
        for queued in archive_queue:
            rows = rows_by_seal.get(queued.sequence, {})
            found = {event_id: (_content_digest({k: values[k] for k in digests.CANONICAL_FIELDS}), values["digest"])
                     for event_id, values in rows.items()}
            _check_events(part, queued, found, source="archive")
        archive_queue.clear()
        steps.append(_Done(_findings(part)))

    group: list[AuditSeal] = []

    def flush_group():
        if not group:
            return
        push_seal_checks()
        if pool is not None:
            steps.append(pool.apply_async(_group_in_child, (list(group),)))
        else:
            part = Report()
            _verify_group(part, group)
            steps.append(_Done(_findings(part)))
        group.clear()

    for seal in AuditSeal.objects.order_by("sequence").iterator(chunk_size=200):
        report.seals += 1
        _check_seal(seal_checks, seal, previous, expected_sequence)
        if seal.pk in pruned:
            archive_queue.append(seal)
            if len(archive_queue) >= 100:
                flush_archive()
        else:
            group.append(seal)
            if sum(s.event_count for s in group) >= GROUP_EVENTS:
                flush_group()
        all_ranges.extend(seal.ranges)
        floor = max(floor, seal.floor)
        expected_sequence = seal.sequence + 1
        previous = seal
        if progress and report.seals % 100 == 0:
            progress(report.seals)
    flush_group()
    flush_archive()
    push_seal_checks()
    covered = sealing.merge_ranges(all_ranges)
    if pool is not None:
        steps.append(pool.apply_async(_uncovered_in_child, (covered, floor)))
    else:
        part = Report()
        _check_uncovered(part, covered, floor)
        steps.append(_Done(_findings(part)))
    for step in steps:
        _merge(report, step.get())
    return report


UNCOVERED_SQL_RANGES = 200  # up to this many covered ranges, PostgreSQL lists the uncovered ids


def _uncovered_ids(covered: list[list[int]]):
    """The ids of events outside ``covered`` (sorted, merged, inclusive ranges), ascending. On
    PostgreSQL with few ranges (a trail without retention gaps has one) the database filters
    them, rather than sending every id to Python to be checked."""
    if connection.vendor == "postgresql" and len(covered) <= UNCOVERED_SQL_RANGES:
        where = " AND ".join(["NOT (id BETWEEN %s AND %s)"] * len(covered)) or "TRUE"
        with transaction.atomic(), connection.chunked_cursor() as cursor:
            cursor.execute(f"SELECT id FROM {AuditEvent._meta.db_table} WHERE {where} ORDER BY id",  # noqa: S608
                           [bound for first_last in covered for bound in first_last])
            while rows := cursor.fetchmany(20000):
                yield from (event_id for (event_id,) in rows)
        return
    coverage = sealing._Coverage(covered)
    for event_id in AuditEvent.objects.order_by("id").values_list("id", flat=True).iterator(chunk_size=20000):
        if not coverage.covers(event_id):
            yield event_id


def _check_uncovered(report: Report, covered: list[list[int]], floor: int) -> None:
    for event_id in _uncovered_ids(covered):
        if event_id <= floor:
            report.add(Problem("inserted", f"event {event_id} is covered by no seal although every event up to "
                               f"{floor} was sealed: it was inserted", event_id=event_id, position=event_id))
        else:
            report.unsealed += 1
