"""Integration with a real Celery worker on Redis and the sandbox cluster (CI runs these):
an endpoint is applied end to end, and a worker killed in the middle of a task is replaced by
one that receives the redelivered message and converges."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest
from django.db import connection

from endpoints.models import EndpointStatus
from endpoints.services.endpoints import endpoint_create
from tests.endpoints.endpoint_factories import deploy_setup
from tests.fixtures.kube import wait_for
from tests.fixtures.servers import Process

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.redis,
    pytest.mark.postgres,
    pytest.mark.celery_worker,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]

VISIBILITY_TIMEOUT = 8


def _database_url() -> str:
    s = connection.settings_dict
    password = f":{s['PASSWORD']}" if s.get("PASSWORD") else ""
    return f"postgres://{s['USER']}{password}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


class Worker(Process):
    """A `celery worker` subprocess against the test database and Redis (this xdist worker's
    database, tests/settings.py), with the console's production settings."""

    def __init__(self, log: Path):
        env = dict(os.environ)
        env.update({
            "DJANGO_SETTINGS_MODULE": "console.settings",
            "DATABASE_URL": _database_url(),
            "DEBUG": "true",
            "CELERY_TASK_SOFT_TIME_LIMIT": "4",
            "CELERY_TASK_TIME_LIMIT": "6",
            "CELERY_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT),
            "PYTHONUNBUFFERED": "1",
        })
        env.pop("PYTEST_CURRENT_TEST", None)
        super().__init__("worker", [
            str(Path(sys.executable).parent / "celery"), "-A", "console", "worker", "--loglevel", "INFO",
            "--concurrency", "1", "--without-gossip", "--without-mingle", "--without-heartbeat",
            "--hostname", f"test-{os.getpid()}-{time.monotonic_ns()}@localhost"], env, log)

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if b"ready." in self.log.read_bytes():
                return
            if self.process.poll() is not None:
                raise AssertionError(f"worker exited:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.2)
        raise AssertionError(f"worker not ready:\n{self.log.read_text()[-3000:]}")


@pytest.fixture
def worker_factory(tmp_path):
    from console.celery import app

    app.control.purge()
    workers: list[Worker] = []

    def start() -> Worker:
        worker = Worker(tmp_path / f"worker-{len(workers)}.log")
        workers.append(worker)
        worker.wait_ready()
        return worker

    yield start
    for worker in workers:
        worker.stop()


def _wait_for(predicate, timeout: float, message: str):
    return wait_for(predicate, timeout, message, interval=0.25)


def _received(worker: Worker, task: str) -> bool:
    return any(line.startswith(f"Task {task}[") and line.endswith("] received")
               for line in (raw.partition("] ")[2].strip() for raw in worker.log.read_text().splitlines()))


def _applied(endpoint_id: int, generation: int) -> bool:
    status = EndpointStatus.objects.filter(pk=endpoint_id).first()
    return bool(status and status.applied_generation >= generation and status.last_reconcile_result == "applied")


def test_endpoint_is_applied_end_to_end_by_a_worker(sandbox, alice, worker_factory):
    worker_factory()
    setup = deploy_setup(actor=alice, api_url=sandbox.url, project_name="fraud")
    endpoint = endpoint_create(actor=alice, project=setup.project, name="scorer",
                               model_version=setup.v1, deployment_mode="Knative")
    _wait_for(lambda: _applied(endpoint.pk, 1), 60, "the worker to apply generation 1")
    sandbox.wait_ready("fraud", "scorer")
    _wait_for(lambda: EndpointStatus.objects.get(pk=endpoint.pk).phase == "Ready", 30,
              "the status sync task to record Ready")


def test_a_worker_killed_mid_task_is_replaced_and_the_redelivered_task_converges(sandbox, alice, worker_factory):
    first = worker_factory()
    setup = deploy_setup(actor=alice, api_url=sandbox.url, project_name="fraud")
    # Every apply hangs for a while: the worker will be in the middle of it when killed.
    sandbox.server.faults.latency(30)
    endpoint = endpoint_create(actor=alice, project=setup.project, name="scorer",
                               model_version=setup.v1, deployment_mode="Knative")
    # Wait for this task's own "received" line: the worker writes it after recording the
    # message as unacknowledged in Redis. Any other line will not do: the worker's heartbeat
    # task is received every 10 s, and a kill in the instant between Redis handing the
    # reconcile message to a pending BRPOP and the worker recording it loses the message
    # (kombu's Redis transport delivers at most once across that gap).
    _wait_for(lambda: _received(first, "endpoints.tasks.reconcile_endpoint_task"), 30,
              "the worker to receive the reconcile task")
    first.kill()
    sandbox.server.faults.clear()
    assert not _applied(endpoint.pk, 1)
    # A new worker restores the unacknowledged message once the visibility timeout passes.
    worker_factory()
    _wait_for(lambda: _applied(endpoint.pk, 1), VISIBILITY_TIMEOUT + 60, "the redelivered task to apply")
    sandbox.wait_ready("fraud", "scorer")
