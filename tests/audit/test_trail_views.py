"""Compliance pages: who sees which events, search filters, the diff, object history,
streamed exports (audited), the integrity page and ingest batches."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from audit import sealing
from audit import services as audit
from audit.models import AuditEvent, IngestBatch
from tests.endpoints.endpoint_factories import EndpointFactory, ProjectFactory, grant
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(db):
    fraud = ProjectFactory(name="fraud", namespace="fraud")
    other = ProjectFactory(name="other", namespace="other")
    scorer = EndpointFactory(project=fraud, name="scorer")
    ranker = EndpointFactory(project=fraud, name="ranker")
    secret = EndpointFactory(project=other, name="secret")
    now = timezone.now()
    events = {
        "update": audit.record(action="endpoint.update", actor_name="alice", target=scorer, project=fraud,
                               occurred_at=now - timedelta(hours=3),
                               details={"old": {"min_replicas": 1, "runtime": "sklearn"},
                                        "new": {"min_replicas": 3, "runtime": "sklearn"}}),
        "ranker": audit.record(action="endpoint.update", actor_name="bob", target=ranker, project=fraud,
                               occurred_at=now - timedelta(hours=2), details={"old": {"min_replicas": 1},
                                                                              "new": {"min_replicas": 2}}),
        "k8s": audit.record(action="k8s.patch", source="kubernetes", actor_name="alice@example.com",
                            target_type="k8s:inferenceservices", target_id="fraud/scorer",
                            target_repr="inferenceservices fraud/scorer", project=fraud, source_ip="192.0.2.10",
                            occurred_at=now - timedelta(hours=1), details={"verb": "patch"}),
        "infer": audit.record(action="infer.request", source="inference", actor_name="carol",
                              target_type="endpoint", target_id=str(scorer.pk), target_repr="fraud/scorer",
                              project=fraud, occurred_at=now - timedelta(minutes=30),
                              details={"model_version": "scorer:7"}),
        "other": audit.record(action="endpoint.delete", actor_name="dave", target=secret, project=other,
                              outcome="denied", occurred_at=now - timedelta(minutes=10)),
    }
    owner = UserFactory(username="owen")
    grant(owner, fraud, "view", "manage")
    return {"fraud": fraud, "other": other, "scorer": scorer, "secret": secret, "events": events, "owner": owner}


def listed(response) -> set[int]:
    return {e.pk for e in response.context["events"]}


def test_auditor_sees_every_event(client, auditor, world):
    client.force_login(auditor)
    response = client.get(reverse("audit:event-list"))
    assert response.status_code == 200
    assert {e.pk for e in world["events"].values()} <= listed(response)


def test_project_owner_sees_only_their_projects_events(client, world):
    client.force_login(world["owner"])
    response = client.get(reverse("audit:event-list"))
    assert response.status_code == 200
    ids = listed(response)
    assert world["events"]["update"].pk in ids and world["events"]["other"].pk not in ids
    detail = client.get(reverse("audit:event-detail", args=[world["events"]["other"].pk]))
    assert detail.status_code == 404


def test_outsider_sees_no_trail(client, outsider, world):
    client.force_login(outsider)
    assert client.get(reverse("audit:event-list")).status_code == 403
    assert client.get(reverse("audit:event-detail", args=[world["events"]["update"].pk])).status_code == 404
    assert client.get(reverse("audit:event-export", args=["csv"])).status_code == 403
    assert client.get(reverse("audit:integrity")).status_code == 403


def test_viewer_of_a_project_is_not_an_owner(client, bob, world):
    grant(bob, world["fraud"], "view")
    client.force_login(bob)
    assert client.get(reverse("audit:event-list")).status_code == 403


def test_anonymous_is_sent_to_sign_in(client, world):
    response = client.get(reverse("audit:event-list"))
    assert response.status_code == 302 and reverse("login") in response["Location"]


@pytest.mark.parametrize("query, expected", [
    ({"actor": "alice"}, {"update", "k8s"}),
    ({"action": "endpoint."}, {"update", "ranker", "other"}),
    ({"source": "kubernetes"}, {"k8s"}),
    ({"outcome": "denied"}, {"other"}),
    ({"project": "other"}, {"other"}),
    ({"q": "scorer:7"}, {"infer"}),
    ({"q": "192.0.2.10"}, {"k8s"}),
    ({"target": "ranker"}, {"ranker"}),
])
def test_search_filters(client, auditor, world, query, expected):
    client.force_login(auditor)
    ids = listed(client.get(reverse("audit:event-list"), query))
    names = {name for name, event in world["events"].items() if event.pk in ids}
    assert names == expected


def test_endpoint_filter_gathers_console_kubernetes_and_inference_events(client, auditor, world):
    client.force_login(auditor)
    ids = listed(client.get(reverse("audit:event-list"), {"endpoint": world["scorer"].pk}))
    names = {name for name, event in world["events"].items() if event.pk in ids}
    assert names == {"update", "k8s", "infer"}


def test_time_range_filter(client, auditor, world):
    client.force_login(auditor)
    now = timezone.now()
    start = (now - timedelta(hours=2, minutes=30)).strftime("%Y-%m-%dT%H:%M")
    end = (now - timedelta(minutes=45)).strftime("%Y-%m-%dT%H:%M")
    ids = listed(client.get(reverse("audit:event-list"), {"start": start, "end": end}))
    names = {name for name, event in world["events"].items() if event.pk in ids}
    assert names == {"ranker", "k8s"}


def test_invalid_filters_show_errors_and_no_events(client, auditor, world):
    client.force_login(auditor)
    response = client.get(reverse("audit:event-list"), {"start": "2026-01-02T00:00", "end": "2026-01-01T00:00"})
    assert response.status_code == 200 and response.context["events"] == []
    assert "Must be after the start." in response.content.decode()
    # No export links for filters that cannot run; the export itself says what is wrong.
    assert 'data-export="csv"' not in response.content.decode()
    exported = client.get(reverse("audit:event-export", args=["csv"]), {"start": "notadate"})
    assert exported.status_code == 400
    assert "Nothing exported" in exported.content.decode() and "start: Enter a valid date/time." in \
        exported.content.decode()
    assert not AuditEvent.objects.filter(action="audit.export").exists()


def test_owner_cannot_widen_the_filter_to_another_project(client, world):
    client.force_login(world["owner"])
    response = client.get(reverse("audit:event-list"), {"project": "other"})
    assert world["events"]["other"].pk not in listed(response)
    assert not listed(response)  # a typed project outside their scope finds nothing


def test_endpoint_filter_is_typed_as_project_slash_name_and_lists_no_endpoints(client, auditor, world):
    client.force_login(auditor)
    by_label = client.get(reverse("audit:event-list"), {"endpoint": "fraud/scorer"})
    by_id = client.get(reverse("audit:event-list"), {"endpoint": world["scorer"].pk})
    assert listed(by_label) == listed(by_id) and world["events"]["update"].pk in listed(by_label)
    page = client.get(reverse("audit:event-list")).content.decode()
    assert 'placeholder="project/endpoint"' in page
    assert "ranker" not in page.split('name="endpoint"')[1].split("</p>")[0]  # no option per endpoint


def test_list_is_paged_newest_first_with_a_cursor(client, auditor, world):
    for i in range(60):
        audit.record(action="login", actor_name=f"u{i}", occurred_at=timezone.now() - timedelta(days=1, seconds=i))
    client.force_login(auditor)
    first = client.get(reverse("audit:event-list"))
    assert len(first.context["events"]) == 50 and first.context["next_cursor"]
    second = client.get(reverse("audit:event-list"), {"cursor": first.context["next_cursor"]})
    assert not listed(first) & listed(second)
    assert len(listed(first) | listed(second)) == AuditEvent.objects.count()
    times = [e.occurred_at for e in first.context["events"]]
    assert times == sorted(times, reverse=True)
    assert client.get(reverse("audit:event-list"), {"cursor": "garbage!"}).status_code == 404


def test_list_query_count_does_not_grow_with_rows(client, auditor, world, django_assert_max_num_queries):
    client.force_login(auditor)
    client.get(reverse("audit:event-list"))
    for i in range(80):
        audit.record(action="endpoint.update", actor_name=f"u{i}", target=world["scorer"], project=world["fraud"])
    with django_assert_max_num_queries(12):
        response = client.get(reverse("audit:event-list"), {"endpoint": world["scorer"].pk})
    assert len(response.context["events"]) == 50


def test_event_detail_shows_the_old_new_diff_and_seal(client, auditor, world, settings):
    settings.AUDIT_SEAL_GRACE_SECONDS = 0
    sealing.seal_pending()
    client.force_login(auditor)
    event = world["events"]["update"]
    response = client.get(reverse("audit:event-detail", args=[event.pk]))
    assert response.status_code == 200
    diff = {row["field"]: row for row in response.context["diff"]}
    assert diff["min_replicas"]["old"] == "1" and diff["min_replicas"]["new"] == "3" and diff["min_replicas"]["changed"]
    assert not diff["runtime"]["changed"]
    body = response.content.decode()
    assert "<del>1</del>" in body and "<ins>3</ins>" in body
    assert "Sealed by seal" in body and "matches content" in body


def test_object_history_of_an_endpoint(client, auditor, world):
    client.force_login(auditor)
    url = reverse("audit:object-history", args=["endpoint", world["scorer"].pk])
    response = client.get(url)
    names = {name for name, event in world["events"].items() if event.pk in listed(response)}
    assert names == {"update", "k8s", "infer"}
    k8s_url = reverse("audit:object-history", args=["k8s:inferenceservices", "fraud/scorer"])
    assert listed(client.get(k8s_url)) == {world["events"]["k8s"].pk}


def test_csv_export_streams_the_filtered_trail_and_is_audited(client, auditor, world):
    client.force_login(auditor)
    response = client.get(reverse("audit:event-export", args=["csv"]), {"endpoint": world["scorer"].pk})
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert {r["action"] for r in rows} == {"endpoint.update", "k8s.patch", "infer.request"}
    update = next(r for r in rows if r["action"] == "endpoint.update")
    assert json.loads(update["details"])["new"]["min_replicas"] == 3
    export = AuditEvent.objects.get(action="audit.export")
    assert export.actor_name == "carol" and export.details["format"] == "csv"
    assert export.details["filters"] == {"endpoint": "fraud/scorer"}


def test_csv_export_neutralises_spreadsheet_formulas(client, auditor):
    audit.record(action="login", actor_name="=HYPERLINK(\"http://x\")")
    client.force_login(auditor)
    response = client.get(reverse("audit:event-export", args=["csv"]), {"action": "login"})
    text = b"".join(response.streaming_content).decode()
    assert "'=HYPERLINK" in text


def test_jsonl_export_keeps_values_exactly_so_digests_recompute(client, auditor, world):
    from types import SimpleNamespace

    from audit import digests
    from audit.sealing import fingerprint

    client.force_login(auditor)
    response = client.get(reverse("audit:event-export", args=["jsonl"]))
    lines = [json.loads(line) for line in b"".join(response.streaming_content).decode().splitlines()]
    assert len(lines) == AuditEvent.objects.count()  # the export's own event included: it was recorded first
    for line in lines:
        line["occurred_at"] = timezone.datetime.fromisoformat(line["occurred_at"].replace("Z", "+00:00"))
        values = {k: line[k] for k in digests.CANONICAL_FIELDS}
        assert fingerprint(digests.event_digest(SimpleNamespace(**values))) == fingerprint(line["digest"])


def test_owner_export_contains_only_their_project(client, world):
    client.force_login(world["owner"])
    response = client.get(reverse("audit:event-export", args=["jsonl"]))
    projects = {json.loads(line)["project_name"] for line in b"".join(response.streaming_content).splitlines()}
    assert projects == {"fraud"}


def test_unknown_export_format_is_404(client, auditor):
    client.force_login(auditor)
    assert client.get(reverse("audit:event-export", args=["xlsx"])).status_code == 404


def test_integrity_page_runs_verification_and_audits_it(client, auditor, world, settings):
    settings.AUDIT_SEAL_GRACE_SECONDS = 0
    sealing.seal_pending()
    client.force_login(auditor)
    assert client.get(reverse("audit:integrity")).status_code == 200
    response = client.post(reverse("audit:integrity"))
    assert response.status_code == 200
    assert response.context["summary"]["ok"]
    assert 'data-verification="ok"' in response.content.decode()
    run = AuditEvent.objects.get(action="audit.verify")
    assert run.actor_name == "carol" and run.outcome == "success" and run.details["events"] == 5


def test_integrity_page_is_for_auditors_only(client, world):
    client.force_login(world["owner"])
    assert client.get(reverse("audit:integrity")).status_code == 403
    assert client.post(reverse("audit:integrity")).status_code == 403


def make_batch(status="failed") -> IngestBatch:
    return IngestBatch.objects.create(kind="kubernetes", status=status, body=b"{}", body_size=2,
                                      body_sha256="0" * 64, error="ValueError: boom" if status == "failed" else "",
                                      attempts=1)


def test_failed_batches_are_visible_to_auditors_and_retryable_by_admins(client, auditor, admin_user,
                                                                       django_capture_on_commit_callbacks):
    batch = make_batch()
    client.force_login(auditor)
    listing = client.get(reverse("audit:batch-list"), {"status": "failed"})
    assert [b.pk for b in listing.context["batches"]] == [batch.pk]
    detail = client.get(reverse("audit:batch-detail", args=[batch.pk]))
    assert "ValueError: boom" in detail.content.decode() and "Retry now" not in detail.content.decode()
    assert client.post(reverse("audit:batch-retry", args=[batch.pk])).status_code == 403
    client.force_login(admin_user)
    assert "Retry now" in client.get(reverse("audit:batch-detail", args=[batch.pk])).content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("audit:batch-retry", args=[batch.pk]))
    assert response.status_code == 302
    batch.refresh_from_db()
    assert batch.status == "failed" and batch.attempts == 2  # "{}" is still not an EventList
    assert AuditEvent.objects.filter(action="ingest.retry").exists()


def test_batch_pages_are_not_for_project_owners(client, world):
    batch = make_batch()
    client.force_login(world["owner"])
    assert client.get(reverse("audit:batch-list")).status_code == 403
    assert client.get(reverse("audit:batch-detail", args=[batch.pk])).status_code == 403


def test_batch_list_query_count_is_bounded(client, auditor, django_assert_max_num_queries):
    for _ in range(30):
        make_batch()
    client.force_login(auditor)
    with django_assert_max_num_queries(8):
        client.get(reverse("audit:batch-list"))


def test_a_403_on_the_audit_pages_says_why_and_claims_no_access(client, outsider, world):
    client.force_login(outsider)
    for url in (reverse("audit:event-list"), reverse("audit:event-export", args=["csv"]),
                reverse("audit:integrity"), reverse("audit:batch-list")):
        response = client.get(url)
        html = response.content.decode()
        assert response.status_code == 403, url
        assert "let you see" not in html, url
        assert ("open to auditors, platform admins and the owners of a project" in html
                or "Only auditors and platform admins may open this page." in html), url


def test_the_generic_403_page_claims_no_access(rf, outsider):
    from django.core.exceptions import PermissionDenied
    from django.views.defaults import permission_denied

    request = rf.get("/somewhere/")
    request.user = outsider
    html = permission_denied(request, PermissionDenied()).content.decode()

    assert "let you see" not in html
    assert "None of your roles allows this" in html
