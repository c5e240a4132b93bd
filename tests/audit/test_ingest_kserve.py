"""The KServe payload-logger receiver: captured samples, pairing, de-duplication, limits,
failed batches, and the dispatch of pairs to consumers."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from audit import ingest
from audit.inference import InferencePair
from audit.models import AuditEvent, InferenceEventPart, IngestBatch, IngestBufferEntry
from tests.audit import samples

pytestmark = pytest.mark.django_db

RECEIVED: list[InferencePair] = []


def collect(pairs):
    """A test consumer (listed in INFERENCE_EVENT_CONSUMERS by the tests below)."""
    RECEIVED.extend(pairs)


def explode(pairs):
    raise RuntimeError("consumer is down")


@pytest.fixture(autouse=True)
def _clear_received():
    RECEIVED.clear()
    yield
    RECEIVED.clear()


CONSUMERS = ["audit.consumers.record_inference_io", "tests.audit.test_ingest_kserve.collect"]


@pytest.mark.shared
@override_settings(INFERENCE_EVENT_CONSUMERS=CONSUMERS)
@pytest.mark.parametrize("capture", ["basic-logger-event_display.txt", "knative-eventing-logger-event_display.txt"])
def test_captured_logger_events_are_paired_and_audited(project, iris_endpoint, post_kserve, capture):
    request_event, response_event = samples.event_display_deliveries(capture)
    for delivery in (request_event, response_event):
        response = post_kserve(project, delivery)
        assert response.status_code == 202, response.content
    assert len(RECEIVED) == 1
    pair = RECEIVED[0]
    assert pair.status == "ok"
    assert pair.endpoint_id == iris_endpoint.pk
    assert pair.project_id == project.pk
    assert pair.inference_service == "sklearn-iris" and pair.namespace == "default"
    assert pair.event_id == request_event.attributes["id"]
    assert json.loads(pair.request_body)["instances"][0] == [6.8, 2.8, 4.8, 1.4]
    assert json.loads(pair.response_body) == {"predictions": [1, 1]}
    assert pair.response_time > pair.request_time
    event = AuditEvent.objects.get(source="inference")
    assert event.action == "infer.request"
    assert event.target_type == "endpoint" and event.target_id == str(iris_endpoint.pk)
    assert event.project_id == project.pk
    assert event.details["request"]["bytes"] == len(request_event.body)
    assert event.details["response"]["bytes"] == len(response_event.body)
    assert event.details["latency_ms"] > 0
    assert "bodies" not in event.details  # the project does not keep bodies
    # Raw bodies are gone once processed.
    assert not IngestBufferEntry.objects.exists()
    assert not InferenceEventPart.objects.exclude(body=None).exists()


@pytest.mark.shared
@override_settings(INFERENCE_EVENT_CONSUMERS=CONSUMERS)
def test_legacy_cloudevents_01_deliveries_are_understood(project, post_kserve):
    for delivery in samples.legacy_http_echo_deliveries():
        assert post_kserve(project, delivery).status_code == 202
    assert len(RECEIVED) == 1
    assert RECEIVED[0].event_id == "29232038-6c2a-44b3-a542-95c499732ec0"
    assert RECEIVED[0].endpoint_id is None  # no Ce-Inferenceservicename in 0.1


@override_settings(INFERENCE_EVENT_CONSUMERS=CONSUMERS)
def test_principal_model_version_and_metadata_reach_the_pair_and_the_io_audit(project, iris_endpoint, post_kserve,
                                                                              alice):
    for kind in ("request", "response"):
        post_kserve(project, samples.binary_event(event_id="e-1", kind=kind, isvc="sklearn-iris",
                                                  namespace="default", model_version="iris:2"))
    pair = RECEIVED[0]
    assert pair.metadata == {"X-Console-Principal": ["alice"]}
    assert pair.annotations == {"inference-console.io/model-version": "iris:2"}
    assert pair.principal == "alice" and pair.model_version == "iris:2"
    event = AuditEvent.objects.get(source="inference")
    assert event.actor_name == "alice" and event.actor_id == str(alice.pk)
    assert event.details["model_version"] == "iris:2"


@override_settings(INFERENCE_EVENT_CONSUMERS=CONSUMERS)
def test_redelivered_events_create_no_duplicates(project, post_kserve):
    request = samples.binary_event(event_id="dup-1", kind="request")
    response = samples.binary_event(event_id="dup-1", kind="response")
    for delivery in (request, request, response, response, request):
        assert post_kserve(project, delivery).status_code == 202
    assert len(RECEIVED) == 1
    assert AuditEvent.objects.filter(source="inference").count() == 1
    assert InferenceEventPart.objects.count() == 2
    assert not IngestBufferEntry.objects.exists()


@override_settings(INFERENCE_EVENT_CONSUMERS=CONSUMERS)
def test_redelivery_within_one_drained_batch_adds_nothing(project, post_kserve):
    """The same CloudEvents waiting several times in the buffer, drained in one transaction,
    and then all of them again: one pair, one audit event, two de-duplication records."""
    from audit import buffer

    deliveries = [samples.binary_event(event_id=f"r-{n}", kind=kind) for n in range(3)
                  for kind in ("request", "response")]
    for delivery in deliveries + deliveries:
        assert post_kserve(project, delivery, drain=False).status_code == 202
    assert buffer.buffer_depth() == 12
    assert buffer.buffer_drain() == {"deliveries": 12, "events": 6, "duplicates": 6, "failed": 0}
    for delivery in deliveries:
        post_kserve(project, delivery, drain=False)
    assert buffer.buffer_drain()["duplicates"] == 6
    assert sorted(p.event_id for p in RECEIVED) == ["r-0", "r-1", "r-2"]
    assert AuditEvent.objects.filter(source="inference").count() == 3
    assert InferenceEventPart.objects.count() == 6 and buffer.buffer_depth() == 0


@override_settings(INFERENCE_EVENT_CONSUMERS=CONSUMERS)
def test_a_cloudevents_batch_pairs_events_across_and_within_batches(project, post_kserve):
    first = [samples.structured_event(event_id="b-1", kind="request"),
             samples.structured_event(event_id="b-1", kind="response"),
             samples.structured_event(event_id="b-2", kind="request")]
    body = json.dumps(first).encode()
    delivery = samples.Delivery(headers={}, body=body, content_type="application/cloudevents-batch+json")
    assert post_kserve(project, delivery).status_code == 202
    assert [p.event_id for p in RECEIVED] == ["b-1"]
    second = json.dumps([samples.structured_event(event_id="b-2", kind="response"),
                         samples.structured_event(event_id="b-1", kind="response")]).encode()
    assert post_kserve(project, samples.Delivery({}, second, "application/cloudevents-batch+json")).status_code == 202
    assert sorted(p.event_id for p in RECEIVED) == ["b-1", "b-2"]
    assert json.loads(RECEIVED[0].response_body) == {"predictions": [1]}


@override_settings(INFERENCE_EVENT_CONSUMERS=CONSUMERS, AUDIT_PAIRING_TIMEOUT_SECONDS=60)
def test_unpaired_requests_are_dispatched_as_timeouts_and_never_vanish(project, post_kserve):
    post_kserve(project, samples.binary_event(event_id="lonely", kind="request"))
    post_kserve(project, samples.binary_event(event_id="orphan", kind="response"))
    assert ingest.pairs_sweep() == {"paired": 0, "timeout": 0, "response_only": 0}
    counts = ingest.pairs_sweep(now=timezone.now() + timedelta(seconds=61))
    assert counts == {"paired": 0, "timeout": 1, "response_only": 1}
    by_id = {p.event_id: p for p in RECEIVED}
    assert by_id["lonely"].status == "timeout" and by_id["lonely"].response_time is None
    assert by_id["lonely"].response_body is None
    assert by_id["orphan"].status == "response_only" and by_id["orphan"].request_time is None
    outcomes = dict(AuditEvent.objects.filter(source="inference").values_list("request_id", "outcome"))
    assert outcomes == {"lonely": "error", "orphan": "success"}
    # A late response after the timeout is not paired twice.
    post_kserve(project, samples.binary_event(event_id="lonely", kind="response"))
    assert ingest.pairs_sweep(now=timezone.now() + timedelta(seconds=200))["response_only"] == 1
    assert AuditEvent.objects.filter(source="inference", request_id="lonely").count() == 1


@override_settings(INFERENCE_EVENT_CONSUMERS=CONSUMERS)
def test_the_sweep_pairs_halves_processed_by_concurrent_batches(project, django_capture_on_commit_callbacks):
    # Two workers each committed one half without seeing the other.
    for kind in ("request", "response"):
        InferenceEventPart.objects.create(project_id=project.pk, event_id="race", event_type=kind,
                                          time=timezone.now(), body=b"{}")
    assert ingest.pairs_sweep()["paired"] == 1
    assert RECEIVED[0].status == "ok"


def test_project_keeping_bodies_stores_them_capped_in_the_io_audit(project, post_kserve):
    project.keep_payload_bodies = True
    project.payload_body_limit = 10
    project.save()
    post_kserve(project, samples.binary_event(event_id="k-1", kind="request", body=b'{"instances": [[1, 2, 3, 4]]}'))
    post_kserve(project, samples.binary_event(event_id="k-1", kind="response", body=b'{"p": 1}'))
    event = AuditEvent.objects.get(source="inference")
    assert event.details["bodies"]["request"] == {"text": '{"instance', "truncated": True}
    assert event.details["bodies"]["response"] == {"text": '{"p": 1}', "truncated": False}


def test_wrong_ingest_key_is_404(client):
    url = reverse("ingest:kserve", kwargs={"ingest_key": "not-a-key"})
    delivery = samples.binary_event(event_id="x", kind="request")
    response = client.post(url, data=delivery.body, content_type=delivery.content_type, **delivery.headers)
    assert response.status_code == 404
    assert not IngestBufferEntry.objects.exists()


def test_a_projects_key_cannot_post_events_of_another_namespace(project, post_kserve):
    """Whoever learnt one project's key (it sits in that project's InferenceServices) must not
    write inference events, with a principal of their choosing, into another project's trail."""
    from tests.endpoints.endpoint_factories import ProjectFactory

    ProjectFactory(name="llm-apps", namespace="llm-apps")
    forged = samples.binary_event(event_id="forged-1", kind="request", namespace="llm-apps", isvc="assistant",
                                  principal="admin")
    response = post_kserve(project, forged)
    assert response.status_code == 400
    assert "namespace 'llm-apps'" in response.json()["detail"] and "'default'" in response.json()["detail"]
    assert not IngestBufferEntry.objects.exists() and not InferenceEventPart.objects.exists()
    # One foreign event in a batch refuses the whole delivery.
    events = [samples.structured_event(event_id="ok-1", kind="request"),
              samples.structured_event(event_id="ok-2", kind="request", namespace="llm-apps")]
    delivery = samples.Delivery({}, json.dumps(events).encode(), "application/cloudevents-batch+json")
    assert post_kserve(project, delivery).status_code == 400
    assert not IngestBufferEntry.objects.exists()
    # The project's own namespace is accepted.
    assert post_kserve(project, samples.binary_event(event_id="own-1", kind="request")).status_code == 202


@pytest.mark.parametrize("change, reason", [
    ({"HTTP_CE_TYPE": "com.example.other"}, "unsupported event type"),
    ({"HTTP_CE_ID": ""}, "missing event id"),
    ({"HTTP_CE_TIME": "yesterday"}, "not an RFC 3339 timestamp"),
    ({"HTTP_CE_METADATA": "{not json"}, "metadata is not valid JSON"),
])
def test_malformed_binary_event_gets_400_with_the_reason_and_nothing_is_stored(project, post_kserve, change, reason):
    delivery = samples.binary_event(event_id="m-1", kind="request")
    delivery.headers.update(change)
    response = post_kserve(project, delivery)
    assert response.status_code == 400
    assert reason in response.json()["detail"]
    assert not IngestBufferEntry.objects.exists() and not InferenceEventPart.objects.exists()


def test_a_batch_with_one_bad_event_is_refused_whole(project, post_kserve):
    events = [samples.structured_event(event_id="ok-1", kind="request"), {"specversion": "1.0", "id": "x"}]
    delivery = samples.Delivery({}, json.dumps(events).encode(), "application/cloudevents-batch+json")
    response = post_kserve(project, delivery)
    assert response.status_code == 400
    assert "event 1: missing event type" in response.json()["detail"]
    assert not IngestBufferEntry.objects.exists() and not InferenceEventPart.objects.exists()


class ExplodingStream:
    """A request body that fails the test if anyone reads it."""

    def read(self, *args):
        raise AssertionError("the receiver read a body it should have refused")

    readline = read


@override_settings(AUDIT_KSERVE_MAX_BODY_BYTES=2048)
def test_body_over_the_limit_gets_413_before_it_is_read(project, client):
    url = reverse("ingest:kserve", kwargs={"ingest_key": project.ingest_key})
    delivery = samples.binary_event(event_id="big", kind="request")
    response = client.post(url, data=b"", content_type="application/json", CONTENT_LENGTH="2049",
                           **{"wsgi.input": ExplodingStream()}, **delivery.headers)
    assert response.status_code == 413
    assert not IngestBufferEntry.objects.exists()


@override_settings(AUDIT_KSERVE_MAX_BODY_BYTES=4 * 1024 * 1024, DATA_UPLOAD_MAX_MEMORY_SIZE=1024)
def test_receiver_accepts_bodies_above_djangos_global_upload_limit(project, post_kserve):
    body = json.dumps({"instances": [[0.5] * 1000] * 100}).encode()
    assert len(body) > 1024
    response = post_kserve(project, samples.binary_event(event_id="large", kind="request", body=body))
    assert response.status_code == 202
    assert InferenceEventPart.objects.get(event_id="large").body_size == len(body)


def test_get_is_not_allowed(project, client):
    assert client.get(reverse("ingest:kserve", kwargs={"ingest_key": project.ingest_key})).status_code == 405


@override_settings(INFERENCE_EVENT_CONSUMERS=["tests.audit.test_ingest_kserve.explode"])
def test_a_batch_failing_in_the_worker_is_visible_and_retryable(project, post_kserve, admin_user,
                                                                 django_capture_on_commit_callbacks):
    post_kserve(project, samples.binary_event(event_id="f-1", kind="request"))
    assert post_kserve(project, samples.binary_event(event_id="f-1", kind="response")).status_code == 202
    # The buffered delivery the worker could not process is set aside as a failed batch.
    failed = IngestBatch.objects.get(status="failed")
    assert "consumer is down" in failed.error
    assert failed.attempts == 1 and failed.body is not None
    assert failed.project_id == project.pk and failed.headers["id"] == "f-1"
    assert not IngestBufferEntry.objects.exists()
    assert not InferenceEventPart.objects.filter(event_id="f-1", event_type="response").exists()
    with override_settings(INFERENCE_EVENT_CONSUMERS=CONSUMERS), django_capture_on_commit_callbacks(execute=True):
        ingest.batch_retry(actor=admin_user, batch=failed)
    failed.refresh_from_db()
    assert failed.status == "done" and failed.error == "" and failed.attempts == 2
    assert [p.event_id for p in RECEIVED] == ["f-1"]
    assert AuditEvent.objects.filter(action="ingest.retry", actor_name="admin").exists()


@override_settings(INFERENCE_EVENT_CONSUMERS=["tests.audit.test_ingest_kserve.explode"])
def test_the_retry_sweep_requeues_failed_batches_after_their_backoff(project, post_kserve):
    post_kserve(project, samples.binary_event(event_id="s-1", kind="request"))
    post_kserve(project, samples.binary_event(event_id="s-1", kind="response"))
    batch = IngestBatch.objects.get(status="failed")
    assert ingest.batch_retry_due() == 0  # backoff not over yet
    with override_settings(INFERENCE_EVENT_CONSUMERS=CONSUMERS):
        assert ingest.batch_retry_due(now=timezone.now() + timedelta(minutes=5)) == 1
    batch.refresh_from_db()
    assert batch.status == "done"
