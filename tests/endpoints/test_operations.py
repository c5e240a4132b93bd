"""The endpoint's Operations tab and its API: pods, replicas, events and container logs read
live from the (fake) cluster; logs only for those who may deploy (404 for viewers and
outsiders), every read audited without the log's content, a cluster that cannot answer shown
as a message; and the sandbox's pods carrying the containers KServe would create."""

from __future__ import annotations

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from endpoints import operations as ops
from endpoints.services.endpoints import endpoint_create
from endpoints.services.operations import LOG_AUDIT_ACTION
from tests.endpoints.endpoint_factories import EndpointFactory, ModelVersionFactory, deploy_setup, grant

pytestmark = pytest.mark.django_db

NS = "fraud"


# --- reading pods and events (pure) ---------------------------------------------------------------

def _pod(name="scorer-predictor-00001-deployment-0", *, init_state=None, main_ready=False, restarts=0):
    init_state = init_state or {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 10s"}}
    return {
        "metadata": {"name": name, "creationTimestamp": "2026-12-05T08:00:00Z",
                     "labels": {"component": "predictor", "serving.knative.dev/revision": "scorer-predictor-00001"}},
        "spec": {"nodeName": "node-a", "initContainers": [{"name": "storage-initializer"}],
                 "containers": [{"name": "kserve-container"}, {"name": "queue-proxy"}]},
        "status": {"phase": "Pending",
                   "initContainerStatuses": [{"name": "storage-initializer", "restartCount": restarts,
                                              "state": init_state}],
                   "containerStatuses": [
                       {"name": "kserve-container", "ready": main_ready, "restartCount": 0,
                        "state": {"waiting": {"reason": "PodInitializing"}}},
                       {"name": "queue-proxy", "ready": main_ready, "restartCount": 0,
                        "state": {"waiting": {"reason": "PodInitializing"}}}]},
    }


def test_a_pod_held_by_a_failing_init_container_reads_like_kubectl_and_offers_its_log_first():
    row = ops.pod_rows([_pod(restarts=3)], traffic=[{"revisionName": "scorer-predictor-00001", "percent": 100}])[0]
    assert row.status == "Init:CrashLoopBackOff"
    assert (row.ready_containers, row.total_containers, row.restarts, row.node) == (0, 2, 3, "node-a")
    assert row.container_names == ["storage-initializer", "kserve-container", "queue-proxy"]
    assert row.default_container() == "storage-initializer"
    assert row.traffic_percent == 100


def test_once_the_download_finished_the_model_server_log_is_the_default():
    done = {"terminated": {"exitCode": 0, "reason": "Completed"}}
    row = ops.pod_rows([_pod(init_state=done, main_ready=True)])[0]
    assert row.default_container() == "kserve-container"
    assert row.ready


def test_events_are_listed_newest_first_whatever_the_cluster_order():
    events = [{"reason": "Scheduled", "lastTimestamp": "2026-12-05T08:00:00Z", "type": "Normal",
               "involvedObject": {"kind": "Pod", "name": "p"}},
              {"reason": "BackOff", "lastTimestamp": "2026-12-05T08:05:00Z", "type": "Warning", "count": 4,
               "involvedObject": {"kind": "Pod", "name": "p"}},
              {"reason": "InternalError", "eventTime": "2026-12-05T08:02:00.000000Z",
               "involvedObject": {"kind": "InferenceService", "name": "scorer"}}]
    rows = ops.event_rows(events)
    assert [r.reason for r in rows] == ["BackOff", "InternalError", "Scheduled"]
    assert rows[0].count == 4 and rows[0].object == "Pod/p"


@pytest.mark.parametrize(("asked", "used"), [("50", 50), ("1", ops.MIN_TAIL), ("999999", ops.MAX_TAIL),
                                             ("lots", ops.DEFAULT_TAIL), (None, ops.DEFAULT_TAIL)])
def test_the_number_of_lines_is_bounded(asked, used):
    assert ops.clamp_tail(asked) == used


def test_cold_starts_are_read_from_the_coldstart_events_oldest_first():
    def event(name, reason, message, stamp):
        return {"metadata": {"name": name}, "reason": reason, "message": message, "lastTimestamp": stamp,
                "involvedObject": {"kind": "InferenceService", "name": "scorer"}}

    events = [
        event("scorer.2", "ColdStart", "Revision scorer-predictor-00002 scaled from zero: the first request waited "
              "6.97 s (pod, storage initializer, model server)", "2026-12-05T09:10:00Z"),
        event("scorer.1", "ScaledToZero", "No request for 60 s: scaled to zero", "2026-12-05T09:05:00Z"),
        event("scorer.0", "ColdStart", "Revision scorer-predictor-00001 scaled from zero: the first request waited "
              "12 s (pod, storage initializer, model server)", "2026-12-05T08:00:00Z"),
        event("scorer.3", "ColdStart", "woke up", "2026-12-05T09:20:00Z"),  # a message in another form
    ]
    starts = ops.cold_starts(events)
    assert [(c.revision, c.seconds, c.time.isoformat()) for c in starts] == [
        ("scorer-predictor-00001", 12.0, "2026-12-05T08:00:00+00:00"),
        ("scorer-predictor-00002", 6.97, "2026-12-05T09:10:00+00:00"),
        ("", None, "2026-12-05T09:20:00+00:00"),
    ]
    assert starts[2].as_dict()["message"] == "woke up"


# --- pages and API against the sandbox ----------------------------------------------------------------

@pytest.fixture
def live(sandbox, alice, bob, django_capture_on_commit_callbacks):
    """A Ready Knative endpoint with payload logging on the sandbox; alice deploys, bob views."""
    setup = deploy_setup(actor=alice, api_url=sandbox.url, project_name=NS)
    grant(alice, setup.project, "view", "deploy")
    grant(bob, setup.project, "view")
    version = ModelVersionFactory(model=setup.model, version=7, storage_uri="pvc://models/scorer", model_format="sklearn")
    with django_capture_on_commit_callbacks(execute=True):
        endpoint = endpoint_create(actor=alice, project=setup.project, name="scorer", model_version=version,
                                   deployment_mode="Knative", logging_mode="all")
    # The claim pvc://models/ serves from (a cluster admin's; the pods wait for it like on a cluster).
    sandbox.store.create({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                          "metadata": {"name": "models", "namespace": NS},
                          "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})
    sandbox.wait_ready(NS, "scorer")
    sandbox.wait_for(lambda: any(p["status"]["phase"] == "Running" for p in sandbox.store.list("pods", NS)),
                     message="a running pod")
    endpoint.refresh_from_db()
    return endpoint


def _urls(endpoint):
    kwargs = {"project": endpoint.project.name, "name": endpoint.name}
    return (reverse("endpoints:endpoint-operations", kwargs=kwargs), reverse("endpoints:endpoint-logs", kwargs=kwargs))


def _pod_name(sandbox, name="scorer"):
    return sandbox.store.list("pods", NS, label_selector=f"serving.kserve.io/inferenceservice={name}")[0][
        "metadata"]["name"]


def test_the_sandbox_pod_carries_the_containers_kserve_creates(sandbox, live):
    pod = sandbox.store.get("pods", NS, _pod_name(sandbox))
    names = [c["name"] for c in pod["spec"]["containers"]]
    assert names == ["kserve-container", "queue-proxy", "agent"]  # Knative's queue-proxy, the logger's agent
    assert "initContainers" not in pod["spec"]  # nothing to download: no storage-initializer
    reasons = {e["reason"] for e in sandbox.store.list("events", NS)
               if e["involvedObject"]["name"] == pod["metadata"]["name"]}
    assert {"Scheduled", "Pulled", "Created", "Started"} <= reasons


def test_a_viewer_sees_pods_replicas_and_events_but_no_log_links(client, bob, live, sandbox):
    operations_url, logs_url = _urls(live)
    client.force_login(bob)
    page = client.get(operations_url)
    text = page.content.decode()
    assert page.status_code == 200
    assert _pod_name(sandbox) in text
    assert "1 of 1 pod ready" in text
    assert "Started container kserve-container" in text  # a kubelet event about the pod
    assert "InferenceServiceReady" in text  # an event about the InferenceService
    assert logs_url not in text and "Container logs" not in text


def test_a_viewer_gets_404_for_logs_in_pages_and_api(client, bob, live, sandbox):
    _, logs_url = _urls(live)
    pod = _pod_name(sandbox)
    client.force_login(bob)
    assert client.get(logs_url, {"pod": pod}).status_code == 404
    assert client.get(logs_url, {"pod": pod, "format": "json"}).status_code == 404
    api = reverse("endpoint-operations-logs", kwargs={"pk": live.pk})
    assert client.get(api, {"pod": pod}).status_code == 404
    assert client.get(reverse("endpoint-operations-pods", kwargs={"pk": live.pk})).status_code == 200
    assert not AuditEvent.objects.filter(action=LOG_AUDIT_ACTION).exists()


def test_an_outsider_gets_404_on_everything(client, outsider, live):
    client.force_login(outsider)
    for url in _urls(live):
        assert client.get(url).status_code == 404
    for name in ("endpoint-operations-pods", "endpoint-operations-events", "endpoint-operations-logs"):
        assert client.get(reverse(name, kwargs={"pk": live.pk}), {"pod": "x"}).status_code == 404


def test_a_deployer_reads_a_containers_log_and_the_read_is_audited_once_without_content(client, alice, live,
                                                                                      sandbox):
    _, logs_url = _urls(live)
    pod = _pod_name(sandbox)
    client.force_login(alice)
    page = client.get(logs_url, {"pod": pod, "container": "kserve-container", "tail": "50"})
    assert page.status_code == 200
    text = page.content.decode()
    assert "model &#x27;scorer&#x27; is ready" in text or "model 'scorer' is ready" in text
    for container in ("kserve-container", "queue-proxy", "agent"):
        assert f'<option value="{container}"' in text  # the chooser offers the pod's containers
    followed = client.get(logs_url, {"pod": pod, "container": "kserve-container", "format": "json"}).json()
    assert "is ready" in followed["text"] and followed["error"] == ""
    api = client.get(reverse("endpoint-operations-logs", kwargs={"pk": live.pk}),
                     {"pod": pod, "container": "queue-proxy", "tail": 10})
    assert api.status_code == 200 and "queue-proxy started" in api.json()["text"]
    events = AuditEvent.objects.filter(action=LOG_AUDIT_ACTION).order_by("id")
    # Following polls: one event per pod and container, not one per poll.
    assert [(e.details["pod"], e.details["container"]) for e in events] == [
        (pod, "kserve-container"), (pod, "queue-proxy")]
    event = events[0]
    assert event.actor_name == "alice" and event.target_type == "endpoint" and event.target_id == str(live.pk)
    assert "is ready" not in str(event.details)


def test_a_pod_of_another_endpoint_in_the_namespace_is_refused(client, alice, live, sandbox,
                                                             django_capture_on_commit_callbacks):
    """A name from another InferenceService of the project is no pod of this endpoint (it may
    have grants of its own)."""
    other_version = ModelVersionFactory(model=live.model_version.model, version=8, storage_uri="pvc://models/other",
                                        model_format="sklearn")
    with django_capture_on_commit_callbacks(execute=True):
        endpoint_create(actor=alice, project=live.project, name="other", model_version=other_version,
                        deployment_mode="Knative")
    sandbox.wait_ready(NS, "other")
    foreign = _pod_name(sandbox, "other")
    client.force_login(alice)
    api = client.get(reverse("endpoint-operations-logs", kwargs={"pk": live.pk}), {"pod": foreign})
    assert api.status_code == 400 and "pod" in str(api.json())
    _, logs_url = _urls(live)
    page = client.get(logs_url, {"pod": foreign})
    assert page.status_code == 400 and "The endpoint has no pod named" in page.content.decode()
    bad_container = client.get(reverse("endpoint-operations-logs", kwargs={"pk": live.pk}),
                               {"pod": _pod_name(sandbox), "container": "istio-proxy"})
    assert bad_container.status_code == 400 and "container" in str(bad_container.json())
    assert not AuditEvent.objects.filter(action=LOG_AUDIT_ACTION).exists()


def test_the_api_lists_pods_with_replicas_and_events_newest_first(client, bob, live, sandbox):
    client.force_login(bob)
    pods = client.get(reverse("endpoint-operations-pods", kwargs={"pk": live.pk})).json()
    assert pods["error"] == ""
    assert pods["replicas"]["ready"] == 1 and pods["replicas"]["pods"] == 1
    [pod] = pods["pods"]
    assert pod["status"] == "Running" and pod["ready"] == "3/3" and pod["node"]
    assert [c["name"] for c in pod["containers"]] == ["kserve-container", "queue-proxy", "agent"]
    events = client.get(reverse("endpoint-operations-events", kwargs={"pk": live.pk})).json()["events"]
    seen = [e["last_seen"] for e in events]
    assert seen == sorted(seen, reverse=True) and {"Scheduled", "Started"} <= {e["reason"] for e in events}


def test_an_unreachable_cluster_is_a_message_never_a_500(client, alice, db):
    setup = deploy_setup(actor=alice, project_name="offline")  # a cluster address nothing listens on
    grant(alice, setup.project, "view", "deploy")
    endpoint = EndpointFactory(project=setup.project, model_version=setup.v1, name="scorer")
    client.force_login(alice)
    operations_url, logs_url = _urls(endpoint)
    for url in (operations_url, logs_url):
        page = client.get(url)
        assert page.status_code == 200
        assert "could not be reached" in page.content.decode()
    api = client.get(reverse("endpoint-operations-logs", kwargs={"pk": endpoint.pk}), {"pod": "p"}).json()
    assert "could not be reached" in api["error"]
    assert "could not be reached" in client.get(
        reverse("endpoint-operations-pods", kwargs={"pk": endpoint.pk})).json()["error"]


def test_a_restarted_storage_initializer_shows_back_off_and_its_previous_log(
        client, alice, sandbox, s3_server, s3_bucket, django_capture_on_commit_callbacks):
    """The real storage initializer fails on a missing key; once the kubelet restarted it, the
    previous instance's log is there too, and the events say BackOff."""
    from endpoints.services.connections import connection_create
    from tests.fixtures.kube import require

    require(sandbox.controller.settings.storage_initializer, "KServe's storage initializer is not available here")
    setup = deploy_setup(actor=alice, api_url=sandbox.url, project_name=NS)
    grant(alice, setup.project, "view", "deploy")
    keys = s3_server.identities[0]
    connection = connection_create(actor=alice, project=setup.project, name="models", kind="s3",
                                   config={"endpoint_url": s3_server.endpoint_url, "region": "us-east-1"},
                                   secrets={"access_key_id": keys.access_key, "secret_access_key": keys.secret_key})
    version = ModelVersionFactory(model=setup.model, version=5, storage_uri=f"s3://{s3_bucket}/gone",
                                  connection=connection, model_format="sklearn")
    with django_capture_on_commit_callbacks(execute=True):
        endpoint = endpoint_create(actor=alice, project=setup.project, name="scorer", model_version=version,
                                   deployment_mode="Standard")

    def restarted():
        pods = sandbox.store.list("pods", NS)
        statuses = [s for p in pods for s in (p.get("status") or {}).get("initContainerStatuses") or []]
        return pods and any(s.get("restartCount", 0) >= 1 and "waiting" in s.get("state", {}) for s in statuses) \
            and pods[0]["metadata"]["name"]
    pod = sandbox.wait_for(restarted, timeout=90, message="the storage initializer to be restarted")
    client.force_login(alice)
    url = reverse("endpoint-operations-logs", kwargs={"pk": endpoint.pk})
    current = client.get(url, {"pod": pod}).json()  # no container: the one holding the pod back
    assert current["container"] == "storage-initializer"
    assert "No model found in gone" in current["text"]
    previous = client.get(url, {"pod": pod, "previous": "true"}).json()
    assert previous["error"] == "" and "No model found in gone" in previous["text"]
    pods = client.get(reverse("endpoint-operations-pods", kwargs={"pk": endpoint.pk})).json()["pods"]
    assert pods[0]["status"].startswith("Init:") and pods[0]["restarts"] >= 1
    events = client.get(reverse("endpoint-operations-events", kwargs={"pk": endpoint.pk})).json()["events"]
    assert any(e["reason"] == "BackOff" and "storage-initializer" in e["message"] for e in events)


def test_events_of_the_same_second_keep_their_order_newest_first():
    same = "2026-12-05T08:00:00Z"
    # Listed by name (as the API server does): the recorder's hex nanoseconds, not in time order here.
    stamps = {"Scheduled": 0x187e0000000000a0, "Pulled": 0x187e0000000000b0, "Created": 0x187e0000000000c0,
              "Started": 0x187e000000000100}
    events = [{"metadata": {"name": f"p.{stamps[reason]:x}"}, "reason": reason, "lastTimestamp": same,
               "involvedObject": {"kind": "Pod", "name": "p"}} for reason in ("Pulled", "Started", "Scheduled",
                                                                             "Created")]
    assert [r.reason for r in ops.event_rows(events)] == ["Started", "Created", "Pulled", "Scheduled"]
