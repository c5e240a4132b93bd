"""The audit API: search, event, export, seals, verification and ingest batches."""

from __future__ import annotations

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from audit import sealing
from audit import services as audit
from audit.models import AuditEvent, IngestBatch
from tests.endpoints.endpoint_factories import EndpointFactory, ProjectFactory, grant
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def api():
    return APIClient()


@pytest.fixture
def trail(db):
    fraud = ProjectFactory(name="fraud", namespace="fraud")
    other = ProjectFactory(name="other", namespace="other")
    scorer = EndpointFactory(project=fraud, name="scorer")
    mine = audit.record(action="endpoint.update", actor_name="alice", target=scorer, project=fraud,
                        details={"old": {"min_replicas": 1}, "new": {"min_replicas": 2}})
    theirs = audit.record(action="endpoint.update", actor_name="dave", target_type="endpoint", target_id="999",
                          project=other)
    owner = UserFactory(username="owen")
    grant(owner, fraud, "view", "manage")
    return {"mine": mine, "theirs": theirs, "owner": owner, "scorer": scorer}


def test_auditor_searches_with_filters_and_cursor_pages(api, auditor, trail):
    api.force_authenticate(auditor)
    response = api.get("/api/v1/audit/events/", {"actor": "alice"})
    assert response.status_code == 200
    assert [e["id"] for e in response.json()["results"]] == [trail["mine"].pk]
    assert "next" in response.json()
    by_endpoint = api.get("/api/v1/audit/events/", {"endpoint": trail["scorer"].pk}).json()["results"]
    assert [e["id"] for e in by_endpoint] == [trail["mine"].pk]


def test_owner_reads_only_their_projects_events(api, trail):
    api.force_authenticate(trail["owner"])
    ids = [e["id"] for e in api.get("/api/v1/audit/events/").json()["results"]]
    assert ids == [trail["mine"].pk]
    assert api.get(f"/api/v1/audit/events/{trail['theirs'].pk}/").status_code == 404
    assert api.get(f"/api/v1/audit/events/{trail['mine'].pk}/").json()["details"]["new"] == {"min_replicas": 2}


def test_outsider_and_anonymous_are_refused(api, outsider, trail):
    assert api.get("/api/v1/audit/events/").status_code == 401
    api.force_authenticate(outsider)
    assert api.get("/api/v1/audit/events/").status_code == 403
    assert api.get(f"/api/v1/audit/events/{trail['mine'].pk}/").status_code == 404
    assert api.get("/api/v1/audit/seals/").status_code == 403
    assert api.post("/api/v1/audit/verify/").status_code == 403


def test_invalid_filter_is_400(api, auditor, trail):
    api.force_authenticate(auditor)
    response = api.get("/api/v1/audit/events/", {"start": "not-a-time"})
    assert response.status_code == 400
    assert response.json() == {"detail": "start: Enter a valid date/time.",
                               "errors": {"start": ["Enter a valid date/time."]}}


def test_export_streams_and_is_audited(api, auditor, trail):
    api.force_authenticate(auditor)
    response = api.get("/api/v1/audit/events/export/jsonl/", {"actor": "alice"}, HTTP_ACCEPT="application/x-ndjson")
    assert response.status_code == 200 and response.streaming
    lines = b"".join(response.streaming_content).splitlines()
    assert len(lines) == 1
    assert AuditEvent.objects.filter(action="audit.export", details__format="jsonl").exists()
    csv_response = api.get("/api/v1/audit/events/export/csv/")
    assert csv_response.status_code == 200 and csv_response["Content-Type"].startswith("text/csv")


def test_verify_runs_and_reports(api, auditor, trail, settings):
    settings.AUDIT_SEAL_GRACE_SECONDS = 0
    sealing.seal_pending()
    api.force_authenticate(auditor)
    seals = api.get("/api/v1/audit/seals/").json()["results"]
    assert seals[0]["sequence"] == 1 and "fingerprints" not in seals[0]
    result = api.post("/api/v1/audit/verify/").json()
    assert result["ok"] is True and result["events"] == 2 and result["first_problem"] is None


def test_ingest_batches_visible_to_auditors_and_retryable_by_admins(api, auditor, admin_user,
                                                                   django_capture_on_commit_callbacks):
    batch = IngestBatch.objects.create(kind="kubernetes", status="failed", body=b"[]", body_size=2,
                                       body_sha256="0" * 64, error="boom", attempts=1)
    api.force_authenticate(auditor)
    listed = api.get("/api/v1/audit/ingest-batches/", {"status": "failed"}).json()["results"]
    assert [b["id"] for b in listed] == [batch.pk] and listed[0]["error"] == "boom"
    assert api.post(f"/api/v1/audit/ingest-batches/{batch.pk}/retry/").status_code == 403
    api.force_authenticate(admin_user)
    with django_capture_on_commit_callbacks(execute=True):
        assert api.post(f"/api/v1/audit/ingest-batches/{batch.pk}/retry/").status_code == 202
    batch.refresh_from_db()
    assert batch.attempts == 2


def test_token_with_read_scope_can_search_and_verify(api, auditor, trail):
    from console.access import tokens

    _, plaintext = tokens.token_create(actor=auditor, user=auditor, name="siem", scopes=["read"])
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    assert api.get("/api/v1/audit/events/").status_code == 200
    assert api.post("/api/v1/audit/verify/").status_code == 200


def test_event_list_query_count_is_bounded(api, auditor, trail, django_assert_max_num_queries):
    for i in range(60):
        audit.record(action="login", actor_name=f"u{i}")
    api.force_authenticate(auditor)
    with django_assert_max_num_queries(8):
        response = api.get("/api/v1/audit/events/")
    assert len(response.json()["results"]) == 50
    assert reverse("audit-event-list") == "/api/v1/audit/events/"
