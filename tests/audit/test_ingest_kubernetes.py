"""The Kubernetes audit webhook receiver: EventLists from the API server's webhook backend."""

from __future__ import annotations

import pytest
from django.test import override_settings

from audit.models import AuditEvent, IngestBatch
from tests.audit import samples
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def fraud_project(db):
    from tests.endpoints.endpoint_factories import ProjectFactory

    return ProjectFactory(name="fraud", namespace="fraud")


def test_event_list_is_stored_normalised_with_what_compliance_needs(post_k8s, ingest_token, fraud_project):
    items = [samples.k8s_event(verb="patch", code=200),
             samples.k8s_event(verb="delete", code=403, decision="forbid", impersonate="bob@example.com"),
             samples.k8s_event(verb="get", code=500, stage="ResponseComplete")]
    response = post_k8s(samples.event_list(items), ingest_token)
    assert response.status_code == 202, response.content
    assert response.json()["events"] == 3
    events = {e.details["verb"]: e for e in AuditEvent.objects.filter(source="kubernetes")}
    patch = events["patch"]
    assert patch.action == "k8s.patch" and patch.outcome == "success"
    assert patch.actor_name == "alice@example.com"
    assert patch.target_type == "k8s:inferenceservices" and patch.target_id == "fraud/scorer"
    assert patch.source_ip == "192.0.2.10"  # the last of sourceIPs: the immediate peer
    assert patch.details["sourceIPs"] == ["10.0.0.7", "192.0.2.10"]
    assert patch.details["objectRef"]["apiGroup"] == "serving.kserve.io"
    assert patch.details["responseStatus"]["code"] == 200
    assert patch.details["annotations"]["authorization.k8s.io/decision"] == "allow"
    assert patch.project_id == fraud_project.pk
    assert patch.external_id == f"{patch.details['auditID']}:ResponseComplete"
    assert "requestObject" not in patch.details and "never kept" not in str(patch.details)
    assert patch.user_agent.startswith("kubectl/")
    delete = events["delete"]
    assert delete.outcome == "denied"
    assert delete.details["impersonatedUser"]["username"] == "bob@example.com"
    assert delete.actor_name == "alice@example.com"
    assert events["get"].outcome == "error"
    batch = IngestBatch.objects.get()
    assert batch.status == "done" and batch.created_count == 3 and batch.body is None
    assert batch.submitted_by_name == "k8s-audit"


def test_redelivered_batch_creates_no_duplicates_but_new_stages_are_kept(post_k8s, ingest_token):
    audit_id = "5c1f7c0e-9f79-4f1e-8a8c-0f1b2a3c4d5e"
    first = samples.event_list([samples.k8s_event(audit_id=audit_id, stage="RequestReceived"),
                                samples.k8s_event(audit_id=audit_id, stage="ResponseComplete")])
    for _ in range(3):
        assert post_k8s(first, ingest_token).status_code == 202
    assert AuditEvent.objects.filter(source="kubernetes").count() == 2
    assert sorted(IngestBatch.objects.values_list("duplicate_count", flat=True)) == [0, 2, 2]


def test_cluster_parameter_disambiguates_namespaces(post_k8s, ingest_token):
    from tests.endpoints.endpoint_factories import ClusterFactory, ProjectFactory

    east = ProjectFactory(name="fraud-east", namespace="fraud", cluster=ClusterFactory(name="east"))
    ProjectFactory(name="fraud-west", namespace="fraud", cluster=ClusterFactory(name="west"))
    post_k8s(samples.event_list([samples.k8s_event()]), ingest_token)
    assert AuditEvent.objects.get(source="kubernetes").project_id is None  # ambiguous without a cluster
    post_k8s(samples.event_list([samples.k8s_event()]), ingest_token, query="?cluster=east")
    assert AuditEvent.objects.filter(source="kubernetes", project_id=east.pk).count() == 1


def test_unauthenticated_sender_gets_401(post_k8s):
    response = post_k8s(samples.event_list([samples.k8s_event()]), None)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    response = post_k8s(samples.event_list([samples.k8s_event()]), "ic_not_a_real_token")
    assert response.status_code == 401
    assert not IngestBatch.objects.exists()


def test_token_without_ingest_scope_gets_403(post_k8s, ingester):
    from console.access import tokens

    _, plaintext = tokens.token_create(actor=ingester, user=ingester, name="read-only", scopes=["read"])
    assert post_k8s(samples.event_list([samples.k8s_event()]), plaintext).status_code == 403
    assert not IngestBatch.objects.exists()


def test_user_without_the_ingester_role_gets_403_even_with_an_ingest_token(post_k8s):
    from console.access import tokens

    someone = UserFactory(username="someone")
    _, plaintext = tokens.token_create(actor=someone, user=someone, name="sneaky", scopes=["ingest"])
    assert post_k8s(samples.event_list([samples.k8s_event()]), plaintext).status_code == 403
    assert not IngestBatch.objects.exists()


@pytest.mark.parametrize("body, reason", [
    (b"not json", "body is not valid JSON"),
    (b'{"kind": "PodList", "apiVersion": "v1", "items": []}', "kind must be EventList"),
    (b'{"kind": "EventList", "apiVersion": "audit.k8s.io/v1beta1", "items": []}', "apiVersion must be audit.k8s.io/v1"),
])
def test_malformed_body_gets_400_with_the_reason(post_k8s, ingest_token, body, reason):
    response = post_k8s(body, ingest_token)
    assert response.status_code == 400
    assert reason in response.json()["detail"]
    assert not IngestBatch.objects.exists()


def test_one_malformed_event_refuses_the_whole_batch(post_k8s, ingest_token):
    good = samples.k8s_event()
    bad = samples.k8s_event()
    del bad["auditID"]
    response = post_k8s(samples.event_list([good, good, bad]), ingest_token)
    assert response.status_code == 400
    assert "items[2]: auditID is missing" in response.json()["detail"]
    assert not IngestBatch.objects.exists() and not AuditEvent.objects.filter(source="kubernetes").exists()


@override_settings(AUDIT_K8S_MAX_BODY_BYTES=4096)
def test_body_over_the_limit_gets_413_before_it_is_read(client, ingest_token):
    from django.urls import reverse

    from tests.audit.test_ingest_kserve import ExplodingStream

    response = client.post(reverse("ingest:kubernetes"), data=b"", content_type="application/json",
                           CONTENT_LENGTH="4097", HTTP_AUTHORIZATION=f"Bearer {ingest_token}",
                           **{"wsgi.input": ExplodingStream()})
    assert response.status_code == 413


def test_a_full_batch_of_400_events_is_accepted_above_djangos_upload_limit(post_k8s, ingest_token, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
    items = [samples.k8s_event(verb="update", namespace=f"ns-{i % 7}") for i in range(400)]
    for item in items:
        item["annotations"]["pad"] = "x" * 7000  # RequestResponse-sized events
    body = samples.event_list(items)
    assert len(body) > settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    response = post_k8s(body, ingest_token)
    assert response.status_code == 202
    assert AuditEvent.objects.filter(source="kubernetes").count() == 400


def test_a_batch_failing_in_the_worker_is_visible_and_retried_by_the_sweep(post_k8s, ingest_token, monkeypatch):
    from datetime import timedelta

    from django.utils import timezone

    from audit import ingest, k8s

    original = k8s.normalise
    monkeypatch.setattr(k8s, "normalise", lambda item: (_ for _ in ()).throw(RuntimeError("database hiccup")))
    assert post_k8s(samples.event_list([samples.k8s_event()]), ingest_token).status_code == 202
    batch = IngestBatch.objects.get()
    assert batch.status == "failed" and "database hiccup" in batch.error
    assert not AuditEvent.objects.filter(source="kubernetes").exists()
    monkeypatch.setattr(k8s, "normalise", original)
    assert ingest.batch_retry_due(now=timezone.now() + timedelta(minutes=2)) == 1
    batch.refresh_from_db()
    assert batch.status == "done" and AuditEvent.objects.filter(source="kubernetes").count() == 1


def test_a_full_batch_is_checked_for_duplicates_in_index_sized_chunks_and_redelivery_adds_nothing(post_k8s,
                                                                                                   ingest_token):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    body = samples.event_list([samples.k8s_event(name=f"obj-{i}") for i in range(250)])
    assert post_k8s(body, ingest_token).status_code == 202
    assert AuditEvent.objects.filter(source="kubernetes").count() == 250
    with CaptureQueriesContext(connection) as queries:
        assert post_k8s(body, ingest_token).status_code == 202
    assert AuditEvent.objects.filter(source="kubernetes").count() == 250
    # One existence query per 100 ids (PostgreSQL keeps the partial unique index's plan for
    # short lists, and scans the whole trail for long ones).
    checks = [q["sql"] for q in queries.captured_queries
              if "external_id" in q["sql"] and q["sql"].lstrip().upper().startswith("SELECT")]
    assert len(checks) == 3
