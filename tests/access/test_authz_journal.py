"""The allow journal (``console/access/authz/journal.py``): allows made durable by a write to a
file of the process's own and shipped into ``StagedAllow`` by a thread — every allow exactly
once (many threads, rotation, a clean close), an orphaned journal shipped from its recorded
offset by whoever finds its process gone (a real process SIGKILLed), a live one left alone,
and no allow answered once the journal cannot take it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent import futures
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from django.db import OperationalError, connection

from console.access.authz import allows, journal
from console.access.authz.decision import Decision
from console.access.models import AllowJournalProgress, StagedAllow

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.django_db(transaction=True)]


def _decision(n: int) -> Decision:
    return Decision(200, "allowed", principal=f"svc-{n % 7}", user_id=n % 7 + 1, endpoint_id=n % 11 + 1,
                    endpoint_repr=f"fraud/ep-{n % 11}", project_id=3, project_name="fraud", token_prefix="ict_abcd")


@pytest.fixture
def journal_dir(settings, tmp_path):
    directory = tmp_path / "journal"
    settings.AUTHZ_ALLOW_JOURNAL_DIR = str(directory)
    settings.AUTHZ_ALLOW_SHIP_MS = 20
    journal.close_journal()
    yield directory
    journal.close_journal()


def _count() -> int:
    # The suite's SQLite database is shared-cache in memory: a read while the shipper's insert
    # holds the table is refused at once (no busy timeout there). Read again.
    for _ in range(100):
        try:
            return StagedAllow.objects.count()
        except OperationalError as exc:
            if "locked" not in str(exc):
                raise
            time.sleep(0.02)
    return StagedAllow.objects.count()


def _wait_for_rows(count: int, timeout: float = 20) -> int:
    deadline = time.monotonic() + timeout
    while (found := _count()) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return found


def _files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def _stage_from_threads(threads: int, each: int) -> None:
    def work(t: int) -> None:
        try:
            for i in range(each):
                allows.stage(_decision(t * each + i), method="POST")
        finally:
            connection.close()

    with futures.ThreadPoolExecutor(threads) as pool:
        list(pool.map(work, range(threads)))


@pytest.mark.parametrize("rotate", [64 << 20, 4096])
def test_allows_from_many_threads_are_shipped_exactly_once(journal_dir, settings, rotate):
    settings.AUTHZ_ALLOW_JOURNAL_ROTATE_BYTES = rotate
    _stage_from_threads(16, 100)
    assert _wait_for_rows(1600) == 1600
    own = journal.journal()
    assert own.appended == 1600
    assert journal.close_journal() is None  # ships what is left, removes its files
    assert StagedAllow.objects.count() == 1600
    assert _files(journal_dir) == []
    assert not AllowJournalProgress.objects.exists()
    row = StagedAllow.objects.filter(principal="svc-3").order_by("id").first()
    assert (row.user_id, row.endpoint_repr, row.project_name, row.token_prefix, row.method) == (
        4, f"fraud/ep-{row.endpoint_id - 1}", "fraud", "ict_abcd", "POST")
    assert abs((datetime.now(UTC) - row.decided_at).total_seconds()) < 60
    # Drained into the trail like any staged allow: 1,600 allows in the events' counts.
    assert allows.allows_drain() == 1600


def _write_orphan(directory: Path, name: str, rows: int) -> list[int]:
    """A journal left by a dead process: ``rows`` lines and a last line cut short. Returns the
    offset after each line."""
    directory.mkdir(parents=True, exist_ok=True)
    offsets, data = [], b""
    for n in range(rows):
        data += journal.line(allows._row(_decision(n), method="GET", at=time.time()))
        offsets.append(len(data))
    (directory / f"{name}{journal.SUFFIX}").write_bytes(data + b'["2026-12-05T10:00:00+00:00", 1, "cut')
    return offsets


def test_an_orphaned_journal_is_shipped_from_its_recorded_offset_exactly_once(journal_dir):
    offsets = _write_orphan(journal_dir, "web-0-123", 10)
    # Its process had shipped 4 rows (and their offset) before it died.
    AllowJournalProgress.objects.create(name="web-0-123", shipped_bytes=offsets[3], shipped_rows=4,
                                        updated_at=datetime.now(UTC))
    assert journal.adopt_orphans() == 6
    assert sorted(StagedAllow.objects.values_list("principal", flat=True)) == sorted(
        f"svc-{n % 7}" for n in range(4, 10))
    assert _files(journal_dir) == []
    assert not AllowJournalProgress.objects.exists()
    assert journal.adopt_orphans() == 0
    assert StagedAllow.objects.count() == 6


def test_an_unreadable_line_is_left_out_and_the_rest_shipped(journal_dir):
    _write_orphan(journal_dir, "web-0-124", 3)
    path = journal_dir / f"web-0-124{journal.SUFFIX}"
    data = path.read_bytes()
    first_end = data.index(b"\n") + 1
    path.write_bytes(data[:first_end] + b'{"not": "a row"}\n' + data[first_end:])
    assert journal.adopt_orphans() == 3
    assert StagedAllow.objects.count() == 3


_HOLDER = """
import os, sys, time, django
django.setup()
from console.access.authz import allows, journal
from console.access.authz.decision import Decision
d = Decision(200, "allowed", principal="svc-x", user_id=9, endpoint_id=5, endpoint_repr="fraud/ep-x",
             project_id=3, project_name="fraud", token_prefix="ict_wxyz")
for _ in range(int(sys.argv[1])):
    allows.stage(d, method="POST")
print("journaled", flush=True)
time.sleep(600)
"""


def test_a_killed_processs_journal_is_taken_over_and_a_live_ones_is_not(journal_dir):
    env = {**os.environ, "AUTHZ_ALLOW_JOURNAL_DIR": str(journal_dir), "AUTHZ_ALLOW_SHIP_MS": "600000",
           "DJANGO_SETTINGS_MODULE": "tests.settings"}
    env.pop("PYTEST_CURRENT_TEST", None)
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, "250"], cwd=ROOT, env=env,  # noqa: S603
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "journaled"
        assert len(_files(journal_dir)) == 1
        assert journal.adopt_orphans() == 0  # its process holds it: not an orphan
        assert _files(journal_dir) and not StagedAllow.objects.exists()
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
        assert journal.adopt_orphans() == 250
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    assert StagedAllow.objects.filter(principal="svc-x", endpoint_id=5).count() == 250
    assert _files(journal_dir) == []
    assert journal.adopt_orphans() == 0


def test_the_shipper_takes_over_orphans_on_its_own(journal_dir):
    _write_orphan(journal_dir, "web-1-555", 5)
    allows.stage(_decision(99), method="PUT")  # starts this process's journal and shipper
    assert _wait_for_rows(6) == 6
    # Removed once shipped: the rows are visible a moment before the file is gone.
    deadline = time.monotonic() + 10
    while any(name.startswith("web-1-555") for name in _files(journal_dir)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [name for name in _files(journal_dir) if name.startswith("web-1-555")] == []


def test_a_full_journal_refuses_the_allow(journal_dir, settings):
    settings.AUTHZ_ALLOW_SHIP_MS = 600_000  # nothing shipped
    settings.AUTHZ_ALLOW_JOURNAL_MAX_BYTES = 4096
    answered = 0
    with pytest.raises(allows.AllowNotRecorded, match="not yet shipped"):
        for n in range(1000):
            allows.stage(_decision(n), method="POST")
            answered += 1
    assert 10 < answered <= 4096 // 90  # lines of ~100 bytes
    assert journal.close_journal() is None
    assert StagedAllow.objects.count() == answered  # every allow answered, none refused one


@pytest.mark.postgres
def test_allows_wait_in_the_journal_while_the_database_refuses(journal_dir, monkeypatch):
    real_connect = allows._Committer._connect
    refusing = {"on": True}

    def connect(self):
        if refusing["on"]:
            raise psycopg.OperationalError("connection refused (test)")
        return real_connect(self)

    monkeypatch.setattr(allows._Committer, "_connect", connect)
    for n in range(50):
        allows.stage(_decision(n), method="POST")  # answered: durable in the journal
    time.sleep(0.3)
    own = journal.journal()
    assert StagedAllow.objects.count() == 0
    assert own.backlog() > 0 and "refused" in own.last_error
    refusing["on"] = False
    assert _wait_for_rows(50) == 50
    assert own.backlog() == 0


def test_a_batch_committed_whose_answer_was_lost_is_not_shipped_again(journal_dir, monkeypatch):
    """The connection drops after the database committed a batch: the shipper cannot know, so it
    resumes from the offset the database recorded with the rows — never from its own count."""
    real_insert = journal.Shipper._insert
    lost = []

    def insert(self, name, lines, offset):
        shipped = real_insert(self, name, lines, offset)
        if not lost:
            lost.append(offset)
            raise OperationalError("server closed the connection unexpectedly (test)")
        return shipped

    monkeypatch.setattr(journal.Shipper, "_insert", insert)
    for n in range(40):
        allows.stage(_decision(n), method="POST")
    assert _wait_for_rows(40) == 40
    time.sleep(0.3)  # the next cycles, had they shipped the lost batch again
    journal.close_journal()
    assert lost and StagedAllow.objects.count() == 40
