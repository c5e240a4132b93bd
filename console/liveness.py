"""Liveness of the Celery worker and beat from files on their own host: plain Python, no Django,
so a Kubernetes exec probe and ``make run``'s watchdog can read it cheaply.

A process that runs but does nothing useful must not look alive (issue #25: a worker whose
pool processes were blocked for good answered every probe). So the proof is work done:

* **worker** — every ``WORKER_HEARTBEAT_SECONDS`` the worker's main process publishes a
  heartbeat task to a queue only it consumes (``console/celery.py``) and records in
  ``worker.sent`` when the oldest heartbeat not yet answered was published (0: none pending).
  Any task a pool process finishes touches ``worker.done``. The worker is *wedged* when a
  heartbeat has been pending longer than the limit: published, yet no pool process finished
  anything since. The limit must exceed the hard task time limit, or a pool busy with long
  tasks would be taken for a wedged one. ``worker.sent`` is rewritten at every tick, so its
  age also shows whether the main process still runs its event loop.
* **beat** — every task beat publishes touches ``beat.alive``: beat's scheduler ticks (the
  worker heartbeat entry alone runs every 15 s).

``python -m console.liveness worker|beat`` exits 0 when alive, 1 with the reason otherwise.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

WORKER_HEARTBEAT_SECONDS = 10.0
SENT, DONE, BEAT = "worker.sent", "worker.done", "beat.alive"


def default_dir() -> Path:
    """``HEARTBEAT_DIR``, else ``heartbeat/`` under the console's var directory."""
    if os.environ.get("HEARTBEAT_DIR"):
        return Path(os.environ["HEARTBEAT_DIR"])
    var = os.environ.get("CONSOLE_VAR_DIR") or str(Path(__file__).resolve().parents[1] / "var")
    return Path(var) / "heartbeat"


def default_worker_limit() -> float:
    """The hard task time limit plus a minute: longer than any task may hold a pool process."""
    return float(os.environ.get("CELERY_TASK_TIME_LIMIT", "300")) + 60.0


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
    os.replace(temporary, path)


def _touch(path: Path) -> None:
    try:
        os.utime(path)
    except FileNotFoundError:
        _write(path, "")


def reset(directory: Path) -> None:
    """A worker starts: nothing pending, nothing done yet."""
    _write(directory / SENT, "0")
    (directory / DONE).unlink(missing_ok=True)


def done_at(directory: Path) -> float:
    try:
        return (directory / DONE).stat().st_mtime
    except FileNotFoundError:
        return 0.0


def mark_done(directory: Path) -> None:
    """A pool process finished a task."""
    _touch(directory / DONE)


def mark_sent(directory: Path, oldest_pending: float) -> None:
    """The main process published a heartbeat; ``oldest_pending`` is 0 when nothing waits."""
    _write(directory / SENT, repr(oldest_pending))


def mark_beat(directory: Path) -> None:
    _touch(directory / BEAT)


def check_worker(directory: Path, *, limit: float, now: float | None = None,
                 ready: bool = False) -> tuple[bool, str]:
    """Alive: the main loop ticks and no heartbeat waited longer than ``limit``. ``ready`` also
    asks that a pool process has finished a task since the worker started."""
    now = time.time() if now is None else now
    sent_file = directory / SENT
    try:
        oldest = float(sent_file.read_text() or 0)
        ticked = sent_file.stat().st_mtime
    except (FileNotFoundError, ValueError):
        return False, f"no heartbeat file in {directory}: the worker has not started its heartbeat"
    if now - ticked > limit:
        return False, f"the worker's main loop last published a heartbeat {now - ticked:.0f} s ago"
    done = done_at(directory)
    if ready and not done:
        return False, "no pool process has finished a task yet"
    if oldest and done < oldest and now - oldest > limit:
        return False, (f"a heartbeat has waited {now - oldest:.0f} s (limit {limit:.0f} s) and no pool process "
                       "finished a task since: the pool is wedged")
    return True, "ok"


def check_beat(directory: Path, *, limit: float, now: float | None = None) -> tuple[bool, str]:
    now = time.time() if now is None else now
    try:
        age = now - (directory / BEAT).stat().st_mtime
    except FileNotFoundError:
        return False, f"no heartbeat file in {directory}: beat has not published anything yet"
    if age > limit:
        return False, f"beat last published a task {age:.0f} s ago (limit {limit:.0f} s)"
    return True, "ok"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m console.liveness", description=__doc__.split("\n")[0])
    parser.add_argument("component", choices=["worker", "beat"])
    parser.add_argument("--dir", type=Path, default=None, help="heartbeat directory (default: HEARTBEAT_DIR)")
    parser.add_argument("--max-age", type=float, default=None,
                        help="seconds (worker: CELERY_TASK_TIME_LIMIT + 60; beat: 60)")
    parser.add_argument("--ready", action="store_true",
                        help="worker: also require a task finished since it started (readiness)")
    args = parser.parse_args(argv)
    directory = args.dir or default_dir()
    if args.component == "worker":
        ok, reason = check_worker(directory, limit=args.max_age or default_worker_limit(), ready=args.ready)
    else:
        ok, reason = check_beat(directory, limit=args.max_age or 60.0)
    print(reason, file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
