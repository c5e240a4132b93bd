"""The directory through which audit learns about projects and endpoints (audit/directory.py,
filled by endpoints/audit_directory.py): ingest routing by key and namespace, owner-scoped
reading, filter choices, and what audit does when no directory is registered."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from audit import directory, ingest, selectors
from audit import services as audit
from audit.models import AuditEvent, InferenceEventPart, IngestBatch, IngestBufferEntry
from endpoints.audit_directory import ProjectDirectory
from endpoints.models import ProjectUserObjectPermission
from tests.audit import samples
from tests.endpoints.endpoint_factories import ClusterFactory, EndpointFactory, ProjectFactory, grant
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

IO_AUDIT = ["audit.consumers.record_inference_io"]


@pytest.fixture
def no_directory():
    """Audit without the domain: nothing registered (restored afterwards)."""
    registered = directory.get_directory()
    directory.register_directory(None)
    yield
    directory.register_directory(registered)


@pytest.fixture
def fraud(db):
    project = ProjectFactory(name="fraud", namespace="fraud", cluster=ClusterFactory(name="east"))
    EndpointFactory(project=project, name="scorer")
    return project


def test_the_endpoints_app_registers_its_directory_at_startup():
    assert isinstance(directory.get_directory(), ProjectDirectory)


# --- ingest routing ---------------------------------------------------------------------------

@override_settings(INFERENCE_EVENT_CONSUMERS=IO_AUDIT)
def test_kserve_deliveries_are_routed_to_the_project_of_their_key(fraud, post_kserve):
    fraud.keep_payload_bodies, fraud.payload_body_limit = True, 4
    fraud.save()
    for kind in ("request", "response"):
        response = post_kserve(fraud, samples.binary_event(event_id="r-1", kind=kind, namespace="fraud"))
        assert response.status_code == 202, response.content
    part = InferenceEventPart.objects.order_by("id").first()
    assert part.project_id == fraud.pk
    event = AuditEvent.objects.get(source="inference")
    assert (event.project_id, event.project_name) == (fraud.pk, "fraud")
    assert event.target_type == "endpoint" and event.target_id == str(fraud.endpoints.get().pk)
    assert event.details["bodies"]["request"] == {"text": '{"in', "truncated": True}  # the project's own limit


def test_an_unknown_ingest_key_is_404_and_nothing_is_stored(fraud, client):
    delivery = samples.binary_event(event_id="x", kind="request", namespace="fraud")
    response = client.post(reverse("ingest:kserve", kwargs={"ingest_key": fraud.ingest_key + "x"}),
                           data=delivery.body, content_type=delivery.content_type, **delivery.headers)
    assert response.status_code == 404 and response.json() == {"detail": "Unknown ingest key."}
    assert not IngestBufferEntry.objects.exists()


def test_without_a_directory_every_ingest_key_is_unknown(fraud, post_kserve, no_directory):
    response = post_kserve(fraud, samples.binary_event(event_id="x", kind="request", namespace="fraud"))
    assert response.status_code == 404
    assert not IngestBufferEntry.objects.exists()


def test_kubernetes_events_are_routed_by_namespace_on_the_named_cluster(fraud, post_k8s, ingest_token):
    ProjectFactory(name="fraud-west", namespace="fraud", cluster=ClusterFactory(name="west"))
    post_k8s(samples.event_list([samples.k8s_event(namespace="fraud")]), ingest_token, query="?cluster=east")
    assert AuditEvent.objects.get(source="kubernetes").project_name == "fraud"


def test_without_a_directory_kubernetes_events_are_stored_without_a_project(fraud, post_k8s, ingest_token,
                                                                           no_directory):
    response = post_k8s(samples.event_list([samples.k8s_event(namespace="fraud")]), ingest_token)
    assert response.status_code == 202
    event = AuditEvent.objects.get(source="kubernetes")
    assert event.project_id is None and event.project_name == ""
    assert IngestBatch.objects.get().status == "done"


@override_settings(INFERENCE_EVENT_CONSUMERS=IO_AUDIT)
def test_without_a_directory_inference_io_keeps_no_bodies_and_names_no_endpoint(fraud, no_directory):
    fraud.keep_payload_bodies = True
    fraud.save()
    for kind in ("request", "response"):  # halves stored earlier, paired by the sweep
        InferenceEventPart.objects.create(project_id=fraud.pk, event_id="n-1", event_type=kind, time=timezone.now(),
                                          inference_service="scorer", namespace="fraud", body=b"{}")
    assert ingest.pairs_sweep()["paired"] == 1
    event = AuditEvent.objects.get(source="inference")
    assert event.project_id == fraud.pk and event.project_name == ""
    assert event.target_type == "inferenceservice" and event.target_id == "fraud/scorer"
    assert "bodies" not in event.details


# --- owner-scoped reading ---------------------------------------------------------------------

@pytest.fixture
def trail(fraud):
    other = ProjectFactory(name="other", namespace="other")
    owner = UserFactory(username="owen")
    grant(owner, fraud, "view", "manage")
    return {
        "owner": owner,
        "mine": audit.record(action="endpoint.update", actor_name="alice", target=fraud.endpoints.get()),
        "theirs": audit.record(action="endpoint.update", actor_name="dave", target_type="endpoint",
                               target_id="999", project=other),
    }


def test_an_owner_reads_their_projects_events_until_the_grant_expires(client, trail):
    client.force_login(trail["owner"])
    response = client.get(reverse("audit:event-list"))
    assert {e.pk for e in response.context["events"]} == {trail["mine"].pk}
    # The filters are typed, never a list of every project or endpoint.
    project_input = response.content.decode().split('name="project"')[1].split(">")[0]
    assert 'type="text"' in response.content.decode().split('name="project"')[0].rsplit("<", 1)[1]
    assert "fraud" not in project_input  # no list of project names
    # The chokepoint decides, expiry included: an expired grant makes them an outsider.
    ProjectUserObjectPermission.objects.filter(user=trail["owner"]).update(
        expires_at=timezone.now() - timedelta(minutes=1))
    assert client.get(reverse("audit:event-list")).status_code == 403
    assert client.get(reverse("audit:event-detail", args=[trail["mine"].pk])).status_code == 404


def test_a_team_that_manages_a_project_reads_its_events(client, fraud, trail):
    from django.contrib.auth.models import Group
    from guardian.shortcuts import assign_perm

    team = Group.objects.create(name="fraud-owners")
    member = UserFactory(username="tess")
    member.groups.add(team)
    assign_perm("endpoints.manage_project", team, fraud)
    client.force_login(member)
    assert {e.pk for e in client.get(reverse("audit:event-list")).context["events"]} == {trail["mine"].pk}


def test_an_owner_cannot_filter_on_another_projects_endpoint(trail):
    secret = EndpointFactory(project=ProjectFactory(name="other"), name="secret")
    api = APIClient()
    api.force_authenticate(trail["owner"])
    for value in (secret.pk, "other/secret"):
        response = api.get("/api/v1/audit/events/", {"endpoint": value})
        assert response.status_code == 400
        assert response.json()["errors"] == {
            "endpoint": [f"No endpoint {str(value)!r} that you may see. Type it as project/endpoint."]}


@pytest.mark.parametrize("value", ["abc", "1.5", "0", "99999999999999999999", "fraud/nope", "/x", "fraud/"])
def test_an_endpoint_filter_that_names_no_endpoint_is_400(auditor, fraud, value):
    api = APIClient()
    api.force_authenticate(auditor)
    response = api.get("/api/v1/audit/events/", {"endpoint": value})
    assert response.status_code == 400
    assert response.json()["detail"] == f"endpoint: No endpoint {value!r} that you may see. Type it as project/endpoint."


def test_without_a_directory_owners_see_nothing_and_auditors_everything(client, trail, auditor, no_directory):
    client.force_login(trail["owner"])
    assert client.get(reverse("audit:event-list")).status_code == 403
    client.force_login(auditor)
    response = client.get(reverse("audit:event-list"))
    assert {trail["mine"].pk, trail["theirs"].pk} <= {e.pk for e in response.context["events"]}
    assert selectors.project_choices(user=auditor) == []
    assert selectors.endpoint_choices(user=auditor) == []


# --- the domain side: one query per question ---------------------------------------------------

def test_each_lookup_takes_a_set_and_costs_one_query(fraud, django_assert_num_queries):
    other = ProjectFactory(name="other", namespace="other", cluster=fraud.cluster)
    ranker = EndpointFactory(project=other, name="ranker")
    EndpointFactory(project=other, name="scorer")
    scorer = fraud.endpoints.get()
    found = ProjectDirectory()
    with django_assert_num_queries(1):
        ids = found.endpoint_ids({(fraud.pk, "scorer"), (other.pk, "ranker"), (fraud.pk, "ranker"), (999, "x")})
    assert ids == {(fraud.pk, "scorer"): scorer.pk, (other.pk, "ranker"): ranker.pk}
    with django_assert_num_queries(1):
        projects = found.projects_by_id({fraud.pk, other.pk, 999})
    assert sorted(projects) == sorted([fraud.pk, other.pk]) and projects[fraud.pk].cluster_name == "east"
    with django_assert_num_queries(1):
        assert {p.name for p in found.projects_in_namespaces({"fraud", "other", "none"})} == {"fraud", "other"}
    with django_assert_num_queries(1):
        assert [p.name for p in found.projects_in_namespaces({"fraud"}, cluster_name="west")] == []
    with django_assert_num_queries(1):
        labels = [e.label for e in found.endpoints(within=[other.pk])]
    assert labels == ["other/ranker", "other/scorer"]
    with django_assert_num_queries(0):
        assert found.endpoint_ids(set()) == {} and found.projects_by_id(set()) == {}
