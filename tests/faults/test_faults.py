"""The fault suite (issue #25, docs/robustness.md): each case breaks something for real — pool
processes and whole workers SIGKILLed, the broker killed, the database restarted, a cluster
frozen or broken — on a PostgreSQL and a redis-server the suite runs itself, with real Celery
worker and beat processes, and checks that the console converges on its own: the change is
applied, no event is lost or duplicated, and the audit trail verifies."""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid

import pytest
from django.core.management import call_command
from django.db import connection

from audit.ingest import batch_receive
from audit.models import AuditEvent, IngestBatch
from endpoints.models import Cluster, EndpointStatus, ReconcileAlert, Revision
from endpoints.services.endpoints import endpoint_create, endpoint_update
from tests.audit.samples import event_list, k8s_event
from tests.endpoints.endpoint_factories import deploy_setup
from tests.endpoints.registry_factories import ClusterFactory
from tests.faults.conftest import Stack, record_result, use_broker
from tests.fixtures.kube import Sandbox

CONVERGE_SECONDS = 60


@pytest.fixture
def sandbox_cluster(tmp_path):
    from endpoints.sandbox.controller import SandboxSettings
    from endpoints.sandbox.run import start_sandbox

    server, controller = start_sandbox(settings=SandboxSettings(storage_initializer=False,
                                                                models_dir=tmp_path / "models"))
    try:
        yield Sandbox(server, controller)
    finally:
        server.faults.stop()
        controller.stop()
        server.stop()


@pytest.fixture(scope="module")
def stacks(tmp_path_factory, postgres, redis_server, django_db_setup):
    """One worker and beat per broker, started when a test first asks and shared by the module's
    tests (each leaves them working: that is what the tests check)."""
    started: dict[str, Stack] = {}

    def get(broker: str) -> Stack:
        if broker not in started:
            stack = Stack(broker=broker, postgres=postgres, redis_server=redis_server,
                          var_dir=tmp_path_factory.mktemp(f"var-{broker}"))
            started[broker] = stack
            stack.start_worker(concurrency=2)
            stack.start_beat()
        stack = started[broker]
        if stack.workers[-1].process.poll() is not None:  # a case ended with its worker gone
            stack.start_worker(concurrency=2)
        return stack

    yield get
    for stack in started.values():
        stack.stop()


def _stack(stacks, redis_server, broker: str) -> Stack:
    stack = stacks(broker)
    use_broker(stack, redis_server)
    return stack


def _wait(predicate, timeout: float, what: str, *, stack: Stack | None = None) -> float:
    """Seconds until ``predicate()`` holds (fails after ``timeout``)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            if predicate():
                return time.monotonic() - started
        except Exception:  # noqa: BLE001 - e.g. the database restarting: try again
            connection.close()
        time.sleep(0.25)
    logs = "\n".join(f"--- {p.name}\n" + "\n".join(
        line[:300] for line in p.log.read_text(errors="replace").splitlines()
        if any(word in line for word in ("reconcile_endpoint", "ingest_batch", "Lost", "ERROR", "Error", "retry")))
        for p in (stack.workers if stack else []))
    state = list(EndpointStatus.objects.values("endpoint_id", "applied_generation", "last_reconcile_result",
                                               "phase", "last_error"))
    batches = list(IngestBatch.objects.values("pk", "status", "attempts", "error"))
    raise AssertionError(f"not converged within {timeout} s: {what}\nstatus {state}\nbatches {batches}\n{logs}")


def _applied(endpoint_id: int, generation: int) -> bool:
    status = EndpointStatus.objects.filter(pk=endpoint_id).first()
    return bool(status and status.applied_generation >= generation)


def _audit_clean() -> bool:
    call_command("audit_seal", verbosity=0)
    try:
        call_command("audit_verify", verbosity=0)
    except SystemExit as exc:
        return exc.code in (0, None)
    return True


def _deployed(sandbox, alice, stack, *, project: str = "fraud"):
    setup = deploy_setup(actor=alice, api_url=sandbox.url, project_name=project)
    endpoint = endpoint_create(actor=alice, project=setup.project, name="scorer", model_version=setup.v1,
                               deployment_mode="Knative")
    _wait(lambda: _applied(endpoint.pk, 1), CONVERGE_SECONDS, "generation 1 applied", stack=stack)
    return setup, endpoint


def _ingest(count: int) -> list[str]:
    """``count`` Kubernetes audit events in one batch, processed by the worker (ingest queue)."""
    ids = [str(uuid.uuid4()) for _ in range(count)]
    batch_receive(kind=IngestBatch.Kind.KUBERNETES, body=event_list([k8s_event(audit_id=i) for i in ids]),
                  content_type="application/json", item_count=count)
    return [f"{audit_id}:ResponseComplete" for audit_id in ids]  # the trail's id of each (audit/k8s.py)


def _lost_and_duplicated(ids: list[str]) -> tuple[int, int]:
    stored = list(AuditEvent.objects.filter(external_id__in=ids).values_list("external_id", flat=True))
    return len(set(ids) - set(stored)), len(stored) - len(set(stored))


def _change_once(endpoint, generation: int) -> int:
    """Duplicates of the change: more than one audit event or revision for ``generation``."""
    updates = AuditEvent.objects.filter(action="endpoint.update", target_id=str(endpoint.pk)).count()
    revisions = Revision.objects.filter(endpoint=endpoint, generation=generation).count()
    return (updates - 1) + (revisions - 1)


# --- pool processes SIGKILLed while the cluster is frozen ---------------------------------------

@pytest.mark.parametrize("broker", ["redis", "filesystem"])
def test_pool_processes_killed_while_the_cluster_is_frozen_resume_on_their_own(
        stacks, redis_server, sandbox_cluster, alice, broker):
    stack = _stack(stacks, redis_server, broker)
    worker = stack.workers[-1]
    _setup, endpoint = _deployed(sandbox_cluster, alice, stack, project=f"pool-{broker}")

    sandbox_cluster.server.faults.pause()  # every request to the cluster hangs
    endpoint_update(actor=alice, endpoint=endpoint, max_replicas=3)
    time.sleep(2)  # one pool process is in the frozen apply, the other waits for work
    killed_at = time.time()
    for _round in range(3):  # as in the trials: the pool's processes, and their replacements
        for pid in worker.children():
            signal_pid(pid)
        time.sleep(1.5)
    ids = _ingest(20)
    sandbox_cluster.server.faults.resume()

    from console import liveness

    seconds = _wait(lambda: _applied(endpoint.pk, 2) and liveness.done_at(stack.heartbeat_dir) > killed_at
                    and AuditEvent.objects.filter(external_id__in=ids).count() >= len(ids),
                    CONVERGE_SECONDS, "the change applied and new pool processes working", stack=stack)
    assert worker.process.poll() is None  # the same worker recovered: no restart was needed
    lost, duplicated = _lost_and_duplicated(ids)
    duplicates = duplicated + _change_once(endpoint, 2)
    audit_ok = _audit_clean()
    record_result(f"pool processes SIGKILLed, cluster frozen ({broker} broker)", seconds, lost=lost,
                  duplicates=duplicates, audit_ok=audit_ok)
    assert (lost, duplicates, audit_ok) == (0, 0, True)
    assert seconds < CONVERGE_SECONDS


def signal_pid(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


# --- the whole worker killed --------------------------------------------------------------------

def test_a_whole_worker_killed_mid_change_is_replaced_and_the_change_converges(
        stacks, redis_server, sandbox_cluster, alice):
    stack = _stack(stacks, redis_server, "redis")
    first = stack.workers[-1]
    _setup, endpoint = _deployed(sandbox_cluster, alice, stack, project="killed")

    sandbox_cluster.server.faults.pause()
    endpoint_update(actor=alice, endpoint=endpoint, max_replicas=3)
    ids = _ingest(20)
    time.sleep(2)
    killed = time.monotonic()
    first.kill()
    sandbox_cluster.server.faults.resume()
    stack.start_worker()  # what Kubernetes (or make run's watchdog) does

    _wait(lambda: _applied(endpoint.pk, 2) and AuditEvent.objects.filter(external_id__in=ids).count() >= len(ids),
          CONVERGE_SECONDS, "the change applied by the new worker", stack=stack)
    seconds = time.monotonic() - killed  # the new worker's start-up included
    lost, duplicated = _lost_and_duplicated(ids)
    duplicates = duplicated + _change_once(endpoint, 2)
    audit_ok = _audit_clean()
    record_result("whole worker SIGKILLed mid-change (redis broker)", seconds, lost=lost, duplicates=duplicates,
                  audit_ok=audit_ok)
    assert (lost, duplicates, audit_ok) == (0, 0, True)


# --- broker down during a change ----------------------------------------------------------------

def test_broker_down_during_a_change_answers_queued_and_the_periodic_pass_applies_it(
        stacks, redis_server, sandbox_cluster, alice):
    from rest_framework.test import APIClient

    from tests.endpoints.endpoint_factories import grant

    stack = _stack(stacks, redis_server, "redis")
    setup, endpoint = _deployed(sandbox_cluster, alice, stack, project="brokerdown")
    grant(alice, setup.project, "view", "deploy")
    api = APIClient()
    api.force_authenticate(alice)

    redis_server.kill()
    response = api.patch(f"/api/v1/endpoints/{endpoint.pk}/", {"max_replicas": 4}, format="json")
    assert response.status_code == 200, response.content
    assert "queued" in response.json()
    # A client that retries after the "queued" answer changes nothing: the change is there once.
    redis_server.start()

    back = time.monotonic()
    # Known upstream issue (docs/robustness.md): a worker holding unacknowledged messages when
    # Redis goes away may exit ("Unrecoverable error: AttributeError ... 'hostname'" in kombu's
    # restore_unacked). It exits non-zero, and its supervisor starts it again — as here.
    time.sleep(3)
    restarted = stack.workers[-1].process.poll() is not None
    if restarted:
        stack.start_worker()
    _wait(lambda: _applied(endpoint.pk, 2), CONVERGE_SECONDS, "the periodic pass applied the change", stack=stack)
    seconds = time.monotonic() - back
    assert stack.beat.process.poll() is None, stack.beat.tail()  # beat rides it out
    duplicates = _change_once(endpoint, 2)
    audit_ok = _audit_clean()
    record_result("broker (redis-server) killed during a change" + (" (worker exited, restarted)" if restarted
                                                                    else ""), seconds, lost=0,
                  duplicates=duplicates, audit_ok=audit_ok)
    assert (duplicates, audit_ok) == (0, True)


# --- database restarted -------------------------------------------------------------------------

def test_database_restarted_under_the_worker_and_beat(stacks, postgres, redis_server, sandbox_cluster, alice):
    stack = _stack(stacks, redis_server, "redis")
    _setup, endpoint = _deployed(sandbox_cluster, alice, stack, project="dbrestart")

    connection.close()
    postgres.restart()
    connection.close()
    restarted = time.time()
    endpoint_update(actor=alice, endpoint=endpoint, max_replicas=3)
    ids = _ingest(20)

    from console.models import Heartbeat

    seconds = _wait(lambda: _applied(endpoint.pk, 2)
                    and AuditEvent.objects.filter(external_id__in=ids).count() >= len(ids)
                    and Heartbeat.objects.filter(component="worker",
                                                 last_seen_at__gt=_aware(restarted)).exists(),
                    CONVERGE_SECONDS, "the change applied and heartbeats recorded after the restart", stack=stack)
    lost, duplicated = _lost_and_duplicated(ids)
    duplicates = duplicated + _change_once(endpoint, 2)
    audit_ok = _audit_clean()
    record_result("PostgreSQL restarted (immediate stop) under worker and beat", seconds, lost=lost,
                  duplicates=duplicates, audit_ok=audit_ok)
    assert (lost, duplicates, audit_ok) == (0, 0, True)


def _aware(timestamp: float):
    from datetime import UTC, datetime

    return datetime.fromtimestamp(timestamp, tz=UTC)


# --- one of three clusters broken ---------------------------------------------------------------

def test_one_broken_cluster_of_three_does_not_stop_the_periodic_pass(stacks, redis_server, sandbox_cluster,
                                                                      alice, tmp_path):
    stack = _stack(stacks, redis_server, "redis")
    kubeconfig = tmp_path / "broken.kubeconfig"
    kubeconfig.write_text("clusters: [this is: not, a kubeconfig\n")
    broken = ClusterFactory(name="a-broken", connection=Cluster.Connection.KUBECONFIG,
                            kubeconfig_path=str(kubeconfig), api_url="")
    deploy_setup(actor=alice, api_url=sandbox_cluster.url, project_name="bank")
    _setup, endpoint = _deployed(sandbox_cluster, alice, stack, project="third")
    sandbox_cluster.wait_ready("third", "scorer", timeout=30)
    sandbox_cluster.store.patch("inferenceservices", "third", "scorer",
                                {"spec": {"predictor": {"maxReplicas": 9}}}, manager="kubectl-edit")

    seconds = _wait(lambda: (sandbox_cluster.isvc("third", "scorer")["spec"]["predictor"]["maxReplicas"] == 1
                             and ReconcileAlert.objects.filter(cluster=broken, kind="reconcile_failed").exists()),
                    CONVERGE_SECONDS, "drift corrected on the third cluster, alert on the broken one", stack=stack)
    duplicates = max(0, AuditEvent.objects.filter(action="endpoint.drift_corrected").count() - 1)
    duplicates += max(0, ReconcileAlert.objects.filter(cluster=broken).count() - 1)
    audit_ok = _audit_clean()
    record_result("one of three clusters broken (kubeconfig unreadable)", seconds, lost=0, duplicates=duplicates,
                  audit_ok=audit_ok)
    assert (duplicates, audit_ok) == (0, True)
