"""``simulate_traffic``: KServe-format logger CloudEvents posted to the console's own receiver."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime

import pytest
from django.core.management import CommandError, call_command

from audit import buffer, cloudevents
from monitoring import extract, simulate
from monitoring.models import DriftWindow, InferenceRecord
from tests.monitoring.helpers import FEATURES, monitored_endpoint, reference_profile

AT = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def traffic(protocol="v1", **extra) -> simulate.TrafficProfile:
    signature = [{"name": n, "type": "numeric"} for n in FEATURES]
    return simulate.TrafficProfile(name="iris", namespace="fraud", protocol=protocol,
                                   versions=[("iris-model:1", 100.0, reference_profile(), signature)], **extra)


def test_a_call_is_a_request_and_a_response_event_with_the_agents_headers():
    call = simulate.make_call(traffic(error_rate=0.0), at=AT, rng=random.Random(1))
    (request_headers, request_body), (response_headers, response_body) = call.events
    assert request_headers["Ce-Id"] == response_headers["Ce-Id"] == call.event_id
    assert request_headers["Ce-Type"] == "org.kubeflow.serving.inference.request"
    assert response_headers["Ce-Type"] == "org.kubeflow.serving.inference.response"
    for headers in (request_headers, response_headers):
        assert headers["Ce-Specversion"] == "1.0"
        assert headers["Ce-Source"] == "http://localhost:9081/"
        assert headers["Ce-Endpoint"] == ""
        assert headers["Ce-Inferenceservicename"] == "iris" and headers["Ce-Namespace"] == "fraud"
        assert headers["Ce-Component"] == "predictor"
        assert json.loads(headers["Ce-Metadata"]) == {"X-Console-Principal": ["alice"]}
        assert json.loads(headers["Ce-Annotations"]) == {"inference-console.io/model-version": "iris-model:1"}
        assert headers["Content-Type"] == "application/json"  # the request's type, on both events
    parsed = cloudevents.parse_binary({k[3:].lower(): v for k, v in request_headers.items() if k.startswith("Ce-")},
                                      request_body, request_headers["Content-Type"])
    assert parsed.time == AT and parsed.kind == "request"
    assert json.loads(request_body)["instances"] and json.loads(response_body)["predictions"]


def test_a_failed_call_has_no_response_event():
    call = simulate.make_call(traffic(error_rate=1.0), at=AT, rng=random.Random(1))
    assert call.response_time is None
    assert [h["Ce-Type"].rsplit(".", 1)[-1] for h, _ in call.events] == ["request"]


@pytest.mark.parametrize("protocol", ["v1", "v2"])
def test_bodies_in_each_protocol_carry_the_profiles_features(protocol):
    call = simulate.make_call(traffic(protocol, error_rate=0.0, rows_per_request=3), at=AT, rng=random.Random(2))
    found = extract.extract(call.events[0][1], call.events[1][1], feature_names=list(FEATURES),
                            prediction_name="prediction")
    assert found.rows == 3 and len(found.predictions) == 3
    assert all(isinstance(v, float) for v in found.columns["petal_width"])


def test_openai_calls_report_token_usage():
    call = simulate.make_call(traffic("openai", error_rate=0.0), at=AT, rng=random.Random(3))
    found = extract.extract(call.events[0][1], call.events[1][1], feature_names=[])
    assert found.prompt_tokens > 0 and found.completion_tokens > 0


def test_undrifted_samples_follow_the_reference_and_drifted_ones_do_not():
    from monitoring import drift

    profile = reference_profile()
    feature = profile["features"][0]
    rng = random.Random(4)
    for shift, low, high in ((0.0, 0.0, 0.05), (1.5, 0.25, 100.0)):
        values = [simulate.sample_value(feature, rng, shift=shift) for _ in range(4000)]
        bins, missing = extract.counts(feature, extract.bin_values(feature, values))
        assert low <= drift.compare(feature["proportions"], bins, numeric=True).psi <= high


@pytest.mark.django_db
def test_it_refuses_a_receiver_off_loopback_and_an_unbounded_run():
    monitored_endpoint()
    with pytest.raises(CommandError, match="loopback"):
        call_command("simulate_traffic", url="http://203.0.113.9:8000", count=1)
    with pytest.raises(CommandError, match="bounded"):
        call_command("simulate_traffic", url="http://127.0.0.1:9", duration=0, count=0)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_simulated_traffic_reaches_the_dashboards_through_the_receiver(live_server):
    endpoint = monitored_endpoint()
    call_command("simulate_traffic", endpoint=[f"{endpoint.project.name}/{endpoint.name}"], url=live_server.url,
                 rate=200, duration=0, count=25, error_rate=0.0, seed=1, rows=4)
    buffer.buffer_drain()  # the ingest worker
    records = InferenceRecord.objects.filter(endpoint=endpoint)
    assert records.count() == 25
    assert set(records.values_list("status", flat=True)) == {"ok"}
    assert all(r.latency_ms > 0 and r.rows == 4 and r.caller == "demo-client" for r in records)


def test_a_rotated_ingest_key_is_followed_and_never_printed(live_server, monkeypatch, capsys):
    from endpoints.models import Project, new_ingest_key

    endpoint = monitored_endpoint()
    old_key = endpoint.project.ingest_key
    make_call, calls = simulate.make_call, []

    def rotate_after_the_first_call(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # an admin rotates the key while the demo traffic runs
            Project.objects.filter(pk=endpoint.project_id).update(ingest_key=new_ingest_key())
            # The receiver's key cache forgets the old key within a second
            # (tests/audit/test_ingest_buffer.py); here that second is skipped.
            buffer.reset_caches()
        return make_call(*args, **kwargs)

    monkeypatch.setattr(simulate, "make_call", rotate_after_the_first_call)
    call_command("simulate_traffic", endpoint=[f"{endpoint.project.name}/{endpoint.name}"], url=live_server.url,
                 rate=500, duration=0, count=6, error_rate=0.0, seed=1, rows=2)
    buffer.buffer_drain()  # the ingest worker
    # One call went to the old key (refused); the rest followed the new one.
    assert InferenceRecord.objects.filter(endpoint=endpoint).count() == 5
    output = capsys.readouterr()
    assert old_key not in output.out + output.err and "HTTP 404" in output.out


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_injected_drift_raises_a_drift_alert(live_server):
    import time_machine
    from django.utils import timezone

    from monitoring import tasks

    endpoint = monitored_endpoint()
    name = f"{endpoint.project.name}/{endpoint.name}"
    # Half past the hour: the back-filled minute must fall in one hourly drift window (run a
    # minute after the hour, it was split into two and the test failed by the clock).
    with time_machine.travel(timezone.now().replace(minute=30, second=0, microsecond=0), tick=True):
        call_command("simulate_traffic", endpoint=[name], drift=[name], url=live_server.url, rate=50, duration=0,
                     backfill_minutes=1, backfill_calls=30, rows=5, error_rate=0.0, seed=2)
        buffer.buffer_drain()  # the ingest worker
        tasks.compute_drift_all_task()
    window = DriftWindow.objects.get(endpoint=endpoint)
    assert window.status == "alert" and window.rows == 150


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_requests_without_a_response_age_out_as_errors_rather_than_vanish(live_server, settings):
    from datetime import timedelta

    from django.utils import timezone

    from audit.ingest import pairs_sweep
    from monitoring.models import LatencyRollup

    endpoint = monitored_endpoint()
    call_command("simulate_traffic", endpoint=[f"{endpoint.project.name}/{endpoint.name}"], url=live_server.url,
                 rate=200, duration=0, count=40, error_rate=0.5, seed=4)
    buffer.buffer_drain()  # the ingest worker
    answered = InferenceRecord.objects.filter(endpoint=endpoint).count()
    assert 5 < answered < 40  # the unanswered requests wait for their response ...
    pairs_sweep(now=timezone.now() + timedelta(seconds=settings.AUDIT_PAIRING_TIMEOUT_SECONDS + 1))
    records = InferenceRecord.objects.filter(endpoint=endpoint)
    assert records.count() == 40  # ... until the pairing timeout makes them errors
    assert records.filter(status="error").count() == 40 - answered
    assert records.filter(status="error", latency_ms__isnull=False).count() == 0
    rollups = LatencyRollup.objects.filter(endpoint=endpoint, resolution=LatencyRollup.MINUTE)
    assert sum(r.errors for r in rollups) == 40 - answered and sum(r.requests for r in rollups) == 40
