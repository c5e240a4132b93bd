"""The fault suite's machinery (docs/robustness.md): a PostgreSQL and a redis-server of its own
(tests/fixtures/servers.py) that it kills and restarts, the test database on that PostgreSQL,
real `celery worker` and `celery beat` processes with the console's production settings, the
sandbox cluster, and the table of results (time to converge, events lost, duplicates,
audit_verify).

Run it on its own: ``pytest tests/faults`` (not part of ``make test``; CI runs it in a leg of
its own). It needs no DATABASE_URL or REDIS_URL: it never touches the machine's services.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from pathlib import Path

import pytest

from tests.fixtures.servers import PostgresServer, Process, RedisServer

ROOT = Path(__file__).resolve().parents[2]
RESULTS: list[dict] = []
# Short limits so the suite is quick: a task is killed after 10 s, a killed worker's messages
# come back after 15 s, beat reconciles every 5 s.
WORKER_ENV = {
    "CELERY_TASK_SOFT_TIME_LIMIT": "8",
    "CELERY_TASK_TIME_LIMIT": "10",
    "CELERY_VISIBILITY_TIMEOUT": "15",
    "RECONCILE_INTERVAL_SECONDS": "5",
    "WORKER_HEARTBEAT_MAX_AGE": "30",
}


def pytest_collection_modifyitems(items):
    for item in items:
        if Path(str(item.fspath)).parent == Path(__file__).parent:
            item.add_marker(pytest.mark.faults)
            item.add_marker(pytest.mark.celery_worker)
            item.add_marker(pytest.mark.django_db(transaction=True))


def pytest_sessionfinish(session):
    if not RESULTS:
        return
    out = ROOT / "test-output"
    out.mkdir(exist_ok=True)
    (out / "faults.json").write_text(json.dumps(RESULTS, indent=2))
    lines = ["", "fault suite results:", f"{'case':<58} {'converged':>9} {'lost':>4} {'dup':>4} audit_verify"]
    lines += [f"{r['case']:<58} {r['seconds']:>8.1f}s {r['lost']:>4} {r['duplicates']:>4} {r['audit_verify']}"
              for r in RESULTS]
    print("\n".join(lines), file=sys.stderr)


@pytest.fixture(scope="session", autouse=True)
def _flush_retries_deadlocks():
    """Each test ends with pytest-django's flush (one TRUNCATE of every table), while the
    module's worker and beat, shared by its tests, go on running their periodic tasks. Their
    queries take the same tables' locks in another order, and PostgreSQL may then break the
    deadlock by aborting the TRUNCATE (CI saw it once). A deadlock is transient: the flush is
    tried again. Session-scoped, so it is in place when each test's database is torn down."""
    from django.core.management.base import CommandError
    from django.core.management.commands import flush
    from django.db import OperationalError

    original = flush.Command.handle

    def handle(self, **options):
        for attempt in range(1, 6):
            try:
                return original(self, **options)
            except CommandError as exc:
                cause = exc.__cause__
                if attempt == 5 or not (isinstance(cause, OperationalError) and "deadlock" in str(cause)):
                    raise
                time.sleep(0.5 * attempt)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(flush.Command, "handle", handle)
        yield


@pytest.fixture(scope="session")
def postgres(tmp_path_factory):
    server = PostgresServer(tmp_path_factory.mktemp("postgres"))
    yield server
    server.remove()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def django_db_modify_db_settings(postgres):
    """The test database lives on the suite's own PostgreSQL."""
    import dj_database_url
    from django.conf import settings
    from django.db import connections

    config = dj_database_url.parse(postgres.url("faults"))
    config.update(TEST={"NAME": "test_faults"}, CONN_MAX_AGE=0)
    settings.DATABASES["default"] = config
    connections.__dict__.pop("settings", None)
    connections.close_all()
    with contextlib.suppress(AttributeError):
        del connections["default"]


def database_url(postgres) -> str:
    return postgres.url("test_faults")


class Stack:
    """A worker and beat on one broker and the suite's database."""

    def __init__(self, *, broker: str, postgres, redis_server, var_dir: Path):
        self.broker, self.var_dir = broker, var_dir
        var_dir.mkdir(parents=True, exist_ok=True)
        self.heartbeat_dir = var_dir / "heartbeat"
        env = {k: v for k, v in os.environ.items()
               if k not in ("REDIS_URL", "CONSOLE_TEST_REDIS_URL", "PYTEST_XDIST_WORKER", "PYTEST_CURRENT_TEST",
                            "PROMETHEUS_MULTIPROC_DIR", "DATABASE_URL", "HEARTBEAT_DIR")}
        env.update(WORKER_ENV)
        env.update({"DJANGO_SETTINGS_MODULE": "console.settings", "DATABASE_URL": database_url(postgres),
                    "DEBUG": "true", "CONSOLE_VAR_DIR": str(var_dir), "PYTHONUNBUFFERED": "1"})
        if broker == "redis":
            env["REDIS_URL"] = redis_server.url
        self.env = env
        self.celery = str(Path(sys.executable).parent / "celery")
        self.workers: list[Process] = []
        self.beat: Process | None = None

    def start_worker(self, *, concurrency: int = 2) -> Process:
        index = len(self.workers)
        worker = Process(f"worker-{index}", [
            self.celery, "-A", "console", "worker", "--loglevel", "INFO", "--concurrency", str(concurrency),
            "--without-gossip", "--without-mingle", "--hostname", f"fault{index}-{os.getpid()}@localhost",
        ], self.env, self.var_dir / f"worker-{index}.log")
        self.workers.append(worker)
        self.wait_consuming(worker)
        return worker

    def start_beat(self) -> Process:
        self.beat = Process("beat", [self.celery, "-A", "console", "beat", "--loglevel", "INFO",
                                     "--schedule", str(self.var_dir / "celerybeat-schedule")],
                            self.env, self.var_dir / "beat.log")
        return self.beat

    def wait_consuming(self, worker: Process, timeout: float = 60) -> None:
        """Until a pool process of ``worker`` has finished a task (its own heartbeat at least)."""
        from console import liveness

        started = time.time()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if liveness.done_at(self.heartbeat_dir) > started - 1 and worker.process.poll() is None:
                return
            if worker.process.poll() is not None:
                raise AssertionError(f"{worker.name} exited:\n{worker.tail()}")
            time.sleep(0.2)
        raise AssertionError(f"{worker.name} consumed nothing within {timeout} s:\n{worker.tail()}")

    def stop(self) -> None:
        for process in [*self.workers, *([self.beat] if self.beat else [])]:
            process.stop()


def use_broker(stack: Stack, redis_server) -> None:
    """Point this test process's Celery at the stack's broker (publishing only, never eager)."""
    from console.celery import app

    if stack.broker == "redis":
        app.conf.update(broker_url=redis_server.url, broker_transport=None, task_always_eager=False,
                        broker_transport_options={"visibility_timeout": 15})
    else:
        folders = {name: str(stack.var_dir / "broker" / folder) for name, folder in (
            ("data_folder_in", "queue"), ("data_folder_out", "queue"), ("processed_folder", "processed"),
            ("control_folder", "control"))}
        for folder in folders.values():
            Path(folder).mkdir(parents=True, exist_ok=True)
        app.conf.update(broker_url="filesystem://", broker_transport="console.broker:Transport",
                        task_always_eager=False, broker_transport_options={**folders, "store_processed": False})
    app._pool = None
    app.amqp._producer_pool = None


def record_result(case: str, seconds: float, *, lost: int, duplicates: int, audit_ok: bool) -> None:
    RESULTS.append({"case": case, "seconds": round(seconds, 1), "lost": lost, "duplicates": duplicates,
                    "audit_verify": "clean" if audit_ok else "FAILED"})
