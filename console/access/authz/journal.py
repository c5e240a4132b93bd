"""The allow journal: an allowed check is made durable by copying one line into a file of its
process's own, and a thread of that process ships the file into ``StagedAllow`` in batches.

Why. Committing each allow before answering (``allows``: group commit) puts a database round trip
and its wake-ups in every inference request: measured on 2 cores, the gRPC check answered 51 % of
a bare server's rate with it and 70 % without it, the lean HTTP app 37 % and 88 %. A line copied
into a local file costs a microsecond and survives what the commit survived on the authorizer's
side: the process's crash (SIGKILL, OOM kill) — the data is in the kernel's page cache, not the
process — and a restart of its container (the directory is a volume of the pod).

**The file.** ``<AUTHZ_ALLOW_JOURNAL_DIR>/<host>-<pid>-<ns>.allows``, allocated on disk at its
full size (``AUTHZ_ALLOW_JOURNAL_ROTATE_BYTES``) and mapped into memory (``_create`` says why not
``write()``); one JSON array per line in ``StagedAllow``'s column order, the unwritten rest NUL
bytes; lines are copied in under a lock (a check returns once its line is in).
The process holds an exclusive ``flock`` on it for as long as it lives; the kernel drops the lock
when the process dies, however it dies, which is how others know a journal is orphaned. A file
is created under a hidden name, locked, then renamed, so no one can take a new journal for an
orphan. When a file is full a process starts a new one and removes the old one once shipped.

**Shipping, exactly once.** Every ``AUTHZ_ALLOW_SHIP_MS`` the process's shipper thread reads what
was appended since its last offset and inserts those rows and the new offset
(``AllowJournalProgress``) in one transaction — one statement on PostgreSQL. A shipper that dies
between the two cannot exist: either both are committed or neither. A file fully shipped is
unlinked, then its progress row deleted (a crash in between leaves a row of a few bytes behind;
the reverse order could ship a file twice, so such rows are left alone).

**Orphans.** Every ``ADOPT_EVERY`` cycles (and at start) the shipper tries to lock each other
journal in the directory; one it can lock belongs to a dead process: it is shipped from its
recorded offset, to its last complete line (a line cut short by the crash was never answered),
and removed. The processes of one pod share the directory (gunicorn's workers, the gRPC
server's processes), so a killed worker's journal is taken over by a sibling or by its
replacement within seconds; ``manage.py authz_allows_drain`` does the same on demand.

**When it cannot journal** (no disk for a new file) or the shipper is more than
``AUTHZ_ALLOW_JOURNAL_MAX_BYTES`` behind (the database has been down for a while) the check is
not allowed: ``OSError`` reaches ``allows.stage``, which raises ``AllowNotRecorded`` (503 /
``UNAVAILABLE``). While the database is down, warm allows go on being answered and journaled
up to that bound, and reach the trail once it is back.

**How durable.** As the commit with ``synchronous_commit = off``: an answered allow survives a
crash of any console process and of the container; losing the machine (or the pod's volume)
loses what was not yet shipped — at most one ship interval plus one commit, 0.2 s by default.
Turn the journal off (``AUTHZ_ALLOW_JOURNAL_DIR`` empty) to commit every allow before answering.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import mmap
import os
import socket
import threading
import time
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from console import metrics

logger = logging.getLogger(__name__)

SUFFIX = ".allows"
MAX_BATCH_BYTES = 2 << 20
ADOPT_EVERY = 10
TEMP_ABANDONED_SECONDS = 60


class JournalFull(OSError):
    """The shipper is too far behind: the allow is not journaled (the check is not allowed)."""


def journal_dir() -> Path | None:
    value = getattr(settings, "AUTHZ_ALLOW_JOURNAL_DIR", "")
    return Path(value) if value else None


def row_json(row: tuple) -> str:
    """``row`` (``allows._row``'s tuple) as a JSON array in ``StagedAllow``'s column order, time in
    ISO 8601: a journal line, and an element of the committers' one-parameter INSERT."""
    return json.dumps([row[0].isoformat(), *row[1:]], ensure_ascii=False)


def line(row: tuple) -> bytes:
    """One journal line."""
    return (row_json(row) + "\n").encode()


@dataclass(eq=False)
class _File:
    path: Path
    name: str
    fd: int  # read and write, locked
    size: int  # allocated: lines go in [0, size)
    map: mmap.mmap
    written: int = 0
    shipped: int = 0
    closed: bool = False

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            with contextlib.suppress(BufferError, ValueError):
                self.map.close()
            with contextlib.suppress(OSError):
                os.close(self.fd)


def _create(directory: Path, size: int) -> _File:
    """A new journal of ``size`` bytes, allocated on disk before its first line (so writing
    into it can never meet a full disk) and mapped into memory: a line is copied into the
    page cache without a system call — a ``write()`` would let go of the GIL, and taking it
    back waited behind other threads for up to the switch interval (5 ms), which was the
    check's p99. The file's pages are the kernel's: they outlive the process as written data
    does."""
    directory.mkdir(parents=True, exist_ok=True)
    name = f"{socket.gethostname()}-{os.getpid()}-{time.time_ns()}"
    temp, path = directory / f".{name}.tmp", directory / f"{name}{SUFFIX}"
    fd = os.open(temp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.posix_fallocate(fd, 0, size)
        mapped = mmap.mmap(fd, size, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ | mmap.PROT_WRITE)
        os.rename(temp, path)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    return _File(path=path, name=name, fd=fd, size=size, map=mapped)


# --- shipping (any process: a file's owner, or whoever holds an orphan's lock) --------------------

_upsert_sql: str | None = None


def _ship_sql() -> str:
    """PostgreSQL: the rows and the journal's new offset in ONE statement (one transaction)."""
    global _upsert_sql
    if _upsert_sql is None:
        from console.access.authz.allows import _Committer
        from console.access.models import AllowJournalProgress

        table = connection.ops.quote_name(AllowJournalProgress._meta.db_table)
        insert = _Committer.sql().replace("%s::json", "%(rows)s::json")
        _upsert_sql = (f"WITH staged AS ({insert} RETURNING 1) "  # noqa: S608 - identifiers from model metadata
                       f"INSERT INTO {table} (name, shipped_bytes, shipped_rows, updated_at) "
                       f"SELECT %(name)s, %(offset)s, count(*), now() FROM staged "
                       f"ON CONFLICT (name) DO UPDATE SET shipped_bytes = EXCLUDED.shipped_bytes, "
                       f"shipped_rows = {table}.shipped_rows + EXCLUDED.shipped_rows, "
                       f"updated_at = EXCLUDED.updated_at")
    return _upsert_sql


def _parsed(raw: bytes, name: str) -> tuple | None:
    """One line as a staged-allow row, or None (logged) when it is not one: a journal damaged on
    disk must not stop every later allow from being shipped."""
    try:
        row = json.loads(raw)
        if not (isinstance(row, list) and len(row) == 9):
            raise ValueError("not a staged-allow row")
        decided_at = parse_datetime(row[0])
        if decided_at is None:
            raise ValueError("no time")
        return (decided_at.astimezone(UTC), *row[1:])
    except (ValueError, TypeError, AttributeError):
        logger.error("allow journal %s: an unreadable line was left out: %r", name, raw[:300])
        return None


class Shipper:
    """Ships journals on one connection: the committer's own (PostgreSQL), else the thread's
    Django connection (SQLite)."""

    def __init__(self):
        from console.access.authz.allows import _Committer

        self.committer = _Committer()

    def close(self) -> None:
        self.committer.close()

    def recorded_offset(self, name: str) -> int:
        from console.access.models import AllowJournalProgress

        found = AllowJournalProgress.objects.filter(name=name).values_list("shipped_bytes", flat=True).first()
        return found or 0

    def remove(self, path: Path, name: str) -> None:
        """A journal fully shipped: the file, then its progress row (this order: see the module
        docstring)."""
        from console.access.models import AllowJournalProgress

        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        AllowJournalProgress.objects.filter(name=name).delete()

    def ship(self, name: str, fd: int, start: int, end: int) -> tuple[int, int]:
        """Ship the complete lines of ``fd`` between ``start`` and ``end``; returns (the offset
        reached, rows shipped). A line without its newline at ``end`` stays for later (or, in
        an orphan, is a write its process never finished)."""
        offset, shipped = start, 0
        while offset < end:
            data = os.pread(fd, min(end - offset, MAX_BATCH_BYTES), offset)
            unwritten = data.find(b"\0")  # an allocated journal's rest: no line holds a NUL byte
            if unwritten >= 0:
                data, end = data[:unwritten], offset + unwritten
            if not data:
                break
            cut = data.rfind(b"\n")
            if cut < 0:
                if len(data) >= MAX_BATCH_BYTES:  # one line longer than a batch: never ours
                    raise OSError(f"allow journal {name}: a line longer than {MAX_BATCH_BYTES} bytes at {offset}")
                break
            lines = data[:cut].split(b"\n")
            shipped += self._insert(name, lines, offset + cut + 1)
            offset += cut + 1
        return offset, shipped

    def _insert(self, name: str, lines: list[bytes], offset: int) -> int:
        if connection.vendor != "postgresql":
            return self._insert_portable(name, lines, offset)
        import psycopg

        try:
            return self._insert_rows(name, lines, offset)
        except (psycopg.errors.DataError, psycopg.errors.IntegrityError) as exc:  # a line that is not a row
            logger.warning("allow journal %s: a batch was refused (%s); shipping its readable lines", name, exc)
        return self._insert_rows(name, [raw for raw in lines if _parsed(raw, name) is not None], offset)

    def _insert_rows(self, name: str, lines: list[bytes], offset: int) -> int:
        cursor = self.committer.writer()
        payload = b"[" + b",".join(lines) + b"]"
        cursor.execute(_ship_sql(), {"rows": payload.decode(), "name": name, "offset": offset},
                       prepare=self.committer.prepare)
        return len(lines)

    @staticmethod
    def _insert_portable(name: str, lines: list[bytes], offset: int) -> int:
        from console.access.authz.allows import _insert
        from console.access.models import AllowJournalProgress

        rows = [row for raw in lines if (row := _parsed(raw, name)) is not None]
        with transaction.atomic():
            if rows:
                _insert(rows)
            progress, created = AllowJournalProgress.objects.get_or_create(
                name=name, defaults={"shipped_bytes": offset, "shipped_rows": len(rows),
                                     "updated_at": timezone.now()})
            if not created:
                progress.shipped_bytes, progress.updated_at = offset, timezone.now()
                progress.shipped_rows += len(rows)
                progress.save(update_fields=["shipped_bytes", "shipped_rows", "updated_at"])
        return len(rows)

    def adopt(self, directory: Path, *, own: frozenset[str] = frozenset()) -> int:
        """Ship and remove every journal in ``directory`` whose process is gone. Returns the rows."""
        total = 0
        try:
            entries = list(os.scandir(directory))
        except FileNotFoundError:
            return 0
        for entry in entries:
            if entry.name.endswith(SUFFIX) and entry.name[:-len(SUFFIX)] not in own:
                total += self._adopt_one(Path(entry.path))
            elif entry.name.startswith(".") and entry.name.endswith(".tmp"):
                _remove_abandoned_temp(Path(entry.path))
        return total

    def _adopt_one(self, path: Path) -> int:
        name = path.name[:-len(SUFFIX)]
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return 0
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return 0  # its process is alive (or another is taking it over)
            try:
                if os.stat(path).st_ino != os.fstat(fd).st_ino:
                    return 0  # taken over and removed meanwhile; this name is a new file's
            except FileNotFoundError:
                return 0
            start = self.recorded_offset(name)
            size = os.fstat(fd).st_size
            offset, rows = self.ship(name, fd, start, size)
            cut_short = os.pread(fd, 4096, offset).split(b"\0", 1)[0] if offset < size else b""
            if cut_short:
                logger.warning("allow journal %s: %d bytes after its last complete line dropped (a line its "
                               "process never finished, so never answered)", name, len(cut_short))
            self.remove(path, name)
            if rows:
                logger.warning("allow journal %s of a stopped process: %d allows shipped", name, rows)
            return rows
        finally:
            os.close(fd)


def _remove_abandoned_temp(path: Path) -> None:
    """A hidden file left by a process that died between creating and naming its journal
    (nothing was ever written to it)."""
    try:
        if time.time() - path.stat().st_mtime < TEMP_ABANDONED_SECONDS:
            return
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.unlink(path)
    except (BlockingIOError, FileNotFoundError):
        pass
    finally:
        os.close(fd)


# --- the process's own journal ---------------------------------------------------------------------

class Journal:
    """This process's journal: ``append`` on the check's path, a shipper thread behind it."""

    def __init__(self, directory: Path):
        self.directory = directory
        self._lock = threading.Lock()
        self.current: _File | None = None
        self.retired: list[_File] = []
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.appended = 0
        self._uncertain = False
        self.last_error: str | None = None

    @staticmethod
    def _rotate_bytes() -> int:
        return getattr(settings, "AUTHZ_ALLOW_JOURNAL_ROTATE_BYTES", 16 << 20)

    @staticmethod
    def _max_bytes() -> int:
        return getattr(settings, "AUTHZ_ALLOW_JOURNAL_MAX_BYTES", 256 << 20)

    @staticmethod
    def _interval() -> float:
        return max(getattr(settings, "AUTHZ_ALLOW_SHIP_MS", 200), 1) / 1000

    def _files(self) -> list[_File]:
        return [*self.retired, *([self.current] if self.current else [])]

    def backlog(self) -> int:
        """Bytes journaled and not yet shipped."""
        return sum(f.written - f.shipped for f in self._files())

    def append(self, data: bytes) -> None:
        """Returns once ``data`` (one line) is in the journal; raises ``OSError`` otherwise."""
        with self._lock:
            file = self.current
            if file is None or file.written + len(data) > file.size:
                file = self._rotate(len(data))
            if self.backlog() + len(data) > self._max_bytes():
                raise JournalFull(f"{self.backlog()} bytes of allows not yet shipped to the database "
                                  f"(AUTHZ_ALLOW_JOURNAL_MAX_BYTES): {self.last_error or 'shipping is behind'}")
            end = file.written + len(data)
            file.map[file.written:end] = data
            file.written = end
            self.appended += 1
        if self._thread is None:
            self._start()

    def _rotate(self, needed: int) -> _File:
        fresh = _create(self.directory, max(self._rotate_bytes(), needed))
        if self.current is not None:
            self.retired.append(self.current)
        self.current = fresh
        self._wake.set()
        return fresh

    def own_names(self) -> frozenset[str]:
        with self._lock:
            return frozenset(f.name for f in self._files())

    # The shipper thread.

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name="authz-allow-shipper", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        shipper = Shipper()
        cycle, failures = 0, 0
        try:
            while not self._stopping.is_set():
                self._wake.wait(self._interval() * min(2 ** failures, 25))
                self._wake.clear()
                if self._stopping.is_set():
                    break  # ``close`` ships the rest
                try:
                    self.ship_once(shipper, adopt=cycle % ADOPT_EVERY == 0)
                    failures, self.last_error = 0, None
                except Exception as exc:  # noqa: BLE001 - retried; the journal keeps every allow meanwhile
                    # A commit whose answer was lost may have happened: the next cycle starts from
                    # the offsets the database recorded, not from this process's own count.
                    self._uncertain = True
                    failures = min(failures + 1, 5)
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    logger.warning("shipping allows failed (%d bytes waiting): %s", self.backlog(), exc)
                    shipper.close()
                cycle += 1
        finally:
            shipper.close()
            connection.close()  # this thread's own Django connection

    def ship_once(self, shipper: Shipper, *, adopt: bool = False) -> int:
        """Ship what this process has journaled (and, with ``adopt``, dead processes' journals)."""
        with self._lock:
            files = [(f, f.written) for f in self._files()]
        if self._uncertain:
            for file, _ in files:
                file.shipped = shipper.recorded_offset(file.name)
            self._uncertain = False
        rows = 0
        for file, end in files:
            if file.shipped < end:
                offset, count = shipper.ship(file.name, file.fd, file.shipped, end)
                file.shipped = offset
                rows += count
        for file, _ in files:
            if file is not self.current and file.shipped >= file.written:
                self._finish(shipper, file)
        metrics.AUTHZ_ALLOWS_SHIPPED.inc(rows)
        metrics.AUTHZ_ALLOW_JOURNAL_BACKLOG.set(self.backlog())
        if adopt:
            rows += shipper.adopt(self.directory, own=self.own_names())
        return rows

    def _finish(self, shipper: Shipper, file: _File) -> None:
        shipper.remove(file.path, file.name)
        with self._lock:
            if file in self.retired:
                self.retired.remove(file)
        file.close()

    def close(self, timeout: float = 10.0) -> bool:
        """Stop the shipper, ship everything, remove the files (a clean exit). Returns False when
        something is left for another process to take over (the database did not answer)."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
            if self._thread.is_alive():
                return False
        shipper = Shipper()
        try:
            with self._lock:
                if self.current is not None:
                    self.retired.append(self.current)
                    self.current = None
            self.ship_once(shipper, adopt=True)  # a sibling killed meanwhile: its journal too
            return not self.retired
        except Exception:  # noqa: BLE001 - the files stay: a sibling or the next process ships them
            logger.warning("shipping allows at exit failed; the journal stays for the next process", exc_info=True)
            return False
        finally:
            shipper.close()
            with self._lock:
                for file in self.retired:
                    file.close()  # releases the lock: the journal is now an orphan to adopt


_journals: dict[int, Journal] = {}
_journals_lock = threading.Lock()


def journal() -> Journal | None:
    """This process's journal (a forked process starts its own), or None when turned off."""
    pid = os.getpid()
    found = _journals.get(pid)
    if found is None:
        directory = journal_dir()
        if directory is None:
            return None
        with _journals_lock:
            found = _journals.get(pid)
            if found is None:
                found = _journals[pid] = Journal(directory)
                import atexit

                atexit.register(close_journal)
    return found


def start() -> None:
    """Start this process's shipper now (authorizer processes, at start), so journals that
    stopped processes left in the directory are shipped before this one answers its first allow."""
    found = journal()
    if found is not None:
        found._start()


def close_journal() -> None:
    """Ship and remove this process's journal (at exit, or when a server stops)."""
    found = _journals.pop(os.getpid(), None)
    if found is not None:
        found.close()


def adopt_orphans() -> int:
    """Ship and remove the journals of stopped processes in ``AUTHZ_ALLOW_JOURNAL_DIR``."""
    directory = journal_dir()
    if directory is None:
        return 0
    own = _journals[os.getpid()].own_names() if os.getpid() in _journals else frozenset()
    shipper = Shipper()
    try:
        return shipper.adopt(directory, own=own)
    finally:
        shipper.close()

