"""Audit trail throughput: events ingested per second end to end (receiver → stored batch →
worker → rows), events verified per second, and — on PostgreSQL — the COPY rate of the same
rows into a scratch table, measured in the same run as the ceiling for inserts.

    make bench PYTEST_ARGS="-k audit"
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/<db> make bench PYTEST_ARGS="-k audit"

The worker runs in-process (Celery eager, on commit), so the figures are one process doing
both halves; a deployment with separate web and worker processes overlaps them.
"""

from __future__ import annotations

import json
import os
import time
import uuid

import pytest
from django.db import connection
from django.test import Client, override_settings
from django.urls import reverse

from audit import buffer, sealing
from audit.models import AuditEvent, IngestBatch
from audit.verify import verify
from tests.audit import samples

K8S_BATCHES = int(os.environ.get("BENCH_K8S_BATCHES", "50"))  # of 400 events each
KSERVE_CALLS = int(os.environ.get("BENCH_KSERVE_CALLS", "300"))  # request + response, one POST each
KSERVE_BATCHES = int(os.environ.get("BENCH_KSERVE_BATCHES", "10"))  # cloudevents-batch+json of 400 events
VERIFY_EVENTS = int(os.environ.get("BENCH_VERIFY_EVENTS", "100000"))

pytestmark = pytest.mark.django_db(transaction=True)


def _rate(count: int, seconds: float) -> float:
    return round(count / seconds, 1) if seconds else float("inf")


@pytest.fixture
def ingest_setup(settings):
    from console.access import roles, tokens
    from tests.endpoints.endpoint_factories import EndpointFactory, ProjectFactory
    from tests.factories import UserFactory

    settings.AUDIT_SEAL_GRACE_SECONDS = 0
    roles.ensure_global_roles()
    ingester = UserFactory(username="bench-ingester", is_service_account=True, password=None, roles=[roles.INGESTER])
    _, token = tokens.token_create(actor=ingester, user=ingester, name="bench", scopes=["ingest"])
    project = ProjectFactory(name="fraud", namespace="fraud")
    EndpointFactory(project=project, name="scorer")
    return {"token": token, "project": project}


def test_audit_ingest_verify_and_copy_rates(ingest_setup, report, settings):
    client = Client()
    token, project = ingest_setup["token"], ingest_setup["project"]

    # 1. Kubernetes audit webhook: EventLists of 400 events.
    bodies = [samples.event_list([samples.k8s_event(verb=("get", "patch", "list", "update")[i % 4],
                                                    namespace="fraud", name=f"obj-{i % 50}")
                                  for i in range(400)]) for _ in range(K8S_BATCHES)]
    start = time.perf_counter()
    for body in bodies:
        response = client.post(reverse("ingest:kubernetes"), data=body, content_type="application/json",
                               HTTP_AUTHORIZATION=f"Bearer {token}")
        assert response.status_code == 202
    k8s_seconds = time.perf_counter() - start
    k8s_events = AuditEvent.objects.filter(source="kubernetes").count()
    assert k8s_events == 400 * K8S_BATCHES
    report["k8s_events"] = k8s_events
    report["k8s_body_kib_per_batch"] = round(len(bodies[0]) / 1024, 1)
    report["k8s_ingest_events_per_second"] = _rate(k8s_events, k8s_seconds)

    # 2. KServe payload logger, binary mode: one POST per event, pairs dispatched to every
    # configured consumer (I/O audit and monitoring), then to the I/O audit alone.
    url = reverse("ingest:kserve", kwargs={"ingest_key": project.ingest_key})

    def binary_run(consumers: list[str], label: str) -> None:
        deliveries = []
        for i in range(KSERVE_CALLS):
            event_id = str(uuid.uuid4())
            for kind in ("request", "response"):
                deliveries.append(samples.binary_event(event_id=event_id, kind=kind, namespace="fraud",
                                                       body=b'{"instances": [[%d, 2.5, 3.1, 0.2]]}' % i))
        before = AuditEvent.objects.filter(source="inference").count()
        with override_settings(INFERENCE_EVENT_CONSUMERS=consumers):
            start = time.perf_counter()
            for delivery in deliveries:
                response = client.post(url, data=delivery.body, content_type=delivery.content_type,
                                       **delivery.headers)
                assert response.status_code == 202
            buffer.buffer_drain()  # the ingest worker, in-process
            seconds = time.perf_counter() - start
        assert AuditEvent.objects.filter(source="inference").count() - before == KSERVE_CALLS
        report[f"kserve_binary_{label}_logger_events_per_second"] = _rate(len(deliveries), seconds)
        report[f"kserve_binary_{label}_ms_per_post"] = round(1000 * seconds / len(deliveries), 1)

    binary_run(list(settings.INFERENCE_EVENT_CONSUMERS), "all_consumers")
    binary_run(["audit.consumers.record_inference_io"], "io_audit_only")
    report["consumers"] = list(settings.INFERENCE_EVENT_CONSUMERS)

    # 3. KServe batched (forwarders): cloudevents-batch+json of 400 events (200 pairs).
    batch_bodies = []
    for _ in range(KSERVE_BATCHES):
        events = []
        for _ in range(200):
            event_id = str(uuid.uuid4())
            events += [samples.structured_event(event_id=event_id, kind="request", namespace="fraud"),
                       samples.structured_event(event_id=event_id, kind="response", namespace="fraud")]
        batch_bodies.append(json.dumps(events).encode())
    start = time.perf_counter()
    for body in batch_bodies:
        response = client.post(url, data=body, content_type="application/cloudevents-batch+json")
        assert response.status_code == 202
    buffer.buffer_drain()
    batched_seconds = time.perf_counter() - start
    assert AuditEvent.objects.filter(source="inference").count() == 2 * KSERVE_CALLS + 200 * KSERVE_BATCHES
    report["kserve_batched_logger_events_per_second"] = _rate(400 * KSERVE_BATCHES, batched_seconds)
    assert not IngestBatch.objects.exclude(status="done").exists()

    # 4. Seal and verify a trail of VERIFY_EVENTS events.
    extra = VERIFY_EVENTS - AuditEvent.objects.count()
    if extra > 0:
        from tests.audit.test_export_memory import _bulk_events

        _bulk_events(extra)
    total = AuditEvent.objects.count()
    start = time.perf_counter()
    seals = sealing.seal_pending()
    seal_seconds = time.perf_counter() - start
    report["sealed_events"] = total
    report["seal_events_per_second"] = _rate(total, seal_seconds)
    report["seals"] = len(seals)
    start = time.perf_counter()
    result = verify()
    verify_seconds = time.perf_counter() - start
    assert result.ok, result.summary()
    report["verify_events_per_second"] = _rate(result.events, verify_seconds)

    # 5. The ceiling: PostgreSQL COPY of the same rows into a scratch copy of the table.
    if connection.vendor == "postgresql":
        columns = ["occurred_at", "received_at", "source", "actor_id", "actor_name", "action", "target_type",
                   "target_id", "target_repr", "project_id", "project_name", "outcome", "source_ip", "user_agent",
                   "request_id", "details", "external_id", "digest"]
        rows = list(AuditEvent.objects.filter(source="kubernetes").values_list(*columns))
        rows = [tuple(json.dumps(v) if isinstance(v, dict) else v for v in row) for row in rows]
        with connection.cursor() as cursor:
            cursor.execute("CREATE TEMP TABLE bench_copy (LIKE audit_auditevent INCLUDING ALL)")
            raw = cursor.cursor  # psycopg cursor
            start = time.perf_counter()
            with raw.copy(f"COPY bench_copy ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            copy_seconds = time.perf_counter() - start
            cursor.execute("SELECT count(*) FROM bench_copy")
            assert cursor.fetchone()[0] == len(rows)
            cursor.execute("DROP TABLE bench_copy")
        report["postgres_copy_rows_per_second"] = _rate(len(rows), copy_seconds)
        report["k8s_ingest_share_of_copy_ceiling"] = round(
            report["k8s_ingest_events_per_second"] / report["postgres_copy_rows_per_second"], 3)
    else:
        report["postgres_copy_rows_per_second"] = "n/a (SQLite run; set DATABASE_URL to a PostgreSQL database)"
    report["database"] = connection.vendor
