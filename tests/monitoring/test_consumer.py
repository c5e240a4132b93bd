"""The consumer of paired payload-logger events: records, rollups and bin counts, as the
audit ingest pipeline delivers pairs (in any order, possibly twice, some never answered)."""

from __future__ import annotations

import json
import random
from datetime import timedelta

import numpy as np
import pytest
from django.conf import settings

from monitoring import metrics
from monitoring.consumers import record_inference
from monitoring.models import BinCount, DriftBacklog, InferenceRecord, LatencyRollup
from tests.monitoring.helpers import BASE_TIME, monitored_endpoint, pair

pytestmark = pytest.mark.django_db


def minute_rollups(endpoint):
    return LatencyRollup.objects.filter(endpoint=endpoint, resolution=LatencyRollup.MINUTE)


def test_the_consumer_is_in_the_dispatch_list():
    assert "monitoring.consumers.record_inference" in settings.INFERENCE_EVENT_CONSUMERS


def test_a_pair_becomes_a_record_with_latency_caller_version_and_bins():
    endpoint = monitored_endpoint()
    record_inference([pair(endpoint, latency_ms=42.5, rows=[[5.0, 6.0, 7.0, 8.0], [1.0, None, 7.0, 8.0]],
                           predictions=[2, 0], caller="svc-batch")])
    record = InferenceRecord.objects.get()
    assert record.endpoint == endpoint
    assert record.model_version == endpoint.model_version
    assert record.role == InferenceRecord.Role.PRIMARY
    assert record.status == InferenceRecord.Status.OK
    assert record.latency_ms == pytest.approx(42.5)
    assert record.caller == "svc-batch"
    assert record.rows == 2
    assert record.predictions == [2, 0]
    assert len(record.feature_bins) == 4 and record.feature_bins[1][1] == -1  # missing value


def test_pairs_add_up_in_minute_and_hour_rollups():
    endpoint = monitored_endpoint()
    latencies = [10.0, 20.0, 40.0, 400.0]
    record_inference([pair(endpoint, at=BASE_TIME + timedelta(seconds=i), latency_ms=ms)
                      for i, ms in enumerate(latencies)])
    record_inference([pair(endpoint, at=BASE_TIME + timedelta(seconds=70), latency_ms=5.0)])
    minutes = list(minute_rollups(endpoint).order_by("start"))
    assert [(m.start, m.requests, m.latency_count) for m in minutes] == [
        (BASE_TIME, 4, 4), (BASE_TIME + timedelta(minutes=1), 1, 1)]
    assert minutes[0].latency_sum_ms == pytest.approx(sum(latencies))
    assert minutes[0].histogram() == metrics.histogram(latencies).tolist()
    hour = LatencyRollup.objects.get(endpoint=endpoint, resolution=LatencyRollup.HOUR)
    assert (hour.start, hour.requests) == (BASE_TIME, 5)


def test_a_pair_delivered_twice_is_counted_once():
    endpoint = monitored_endpoint()
    first = pair(endpoint, event_id="abc")
    record_inference([first, first])
    record_inference([first])
    assert InferenceRecord.objects.count() == 1
    assert minute_rollups(endpoint).get().requests == 1
    assert sum(BinCount.objects.filter(feature="sepal_length").values_list("count", flat=True)) == 1


def test_out_of_order_and_duplicated_deliveries_give_the_same_totals_as_in_order():
    endpoint = monitored_endpoint()
    pairs = [pair(endpoint, at=BASE_TIME + timedelta(seconds=7 * i), latency_ms=5.0 + i,
                  rows=[[4.0 + i % 5, 6.0, 7.0, 8.0]]) for i in range(60)]
    delivered = pairs + random.Random(4).sample(pairs, 20)
    random.Random(5).shuffle(delivered)
    for start in range(0, len(delivered), 7):
        record_inference(delivered[start:start + 7])
    assert InferenceRecord.objects.count() == 60
    rollups = minute_rollups(endpoint)
    assert sum(r.requests for r in rollups) == 60
    assert sum(r.latency_sum_ms for r in rollups) == pytest.approx(sum(5.0 + i for i in range(60)))
    counts = np.zeros(metrics.BUCKET_COUNT, dtype=int)
    for rollup in rollups:
        counts += rollup.histogram()
    assert counts.tolist() == metrics.histogram([5.0 + i for i in range(60)]).tolist()
    assert sum(BinCount.objects.filter(feature="sepal_length").values_list("count", flat=True)) == 60


def test_an_unanswered_request_is_an_error_without_latency():
    endpoint = monitored_endpoint()
    record_inference([pair(endpoint, latency_ms=None), pair(endpoint, latency_ms=12.0)])
    errors = InferenceRecord.objects.filter(status=InferenceRecord.Status.ERROR)
    assert errors.count() == 1 and errors.get().latency_ms is None
    rollup = minute_rollups(endpoint).get()
    assert (rollup.requests, rollup.errors, rollup.latency_count) == (2, 1, 1)
    # The request's features still count for drift.
    assert sum(BinCount.objects.filter(feature="sepal_length").values_list("count", flat=True)) == 2


def test_a_request_only_logger_mode_does_not_turn_every_request_into_an_error():
    endpoint = monitored_endpoint(logging_mode="request")
    record_inference([pair(endpoint, latency_ms=None)])
    rollup = minute_rollups(endpoint).get()
    assert (rollup.requests, rollup.errors, rollup.unpaired) == (1, 0, 1)


def test_a_response_without_request_is_recorded_at_its_response_time():
    endpoint = monitored_endpoint(logging_mode="response")
    delivered = pair(endpoint, latency_ms=30.0)
    from dataclasses import replace

    record_inference([replace(delivered, request_time=None, request_body=b"", status="response_only")])
    record = InferenceRecord.objects.get()
    assert record.status == InferenceRecord.Status.UNPAIRED
    assert record.request_time == delivered.response_time
    assert BinCount.objects.filter(is_prediction=True).exists()
    assert not BinCount.objects.filter(is_prediction=False).exists()


def test_canary_traffic_is_told_apart_by_the_model_version_annotation():
    endpoint = monitored_endpoint(canary=True)
    record_inference([pair(endpoint), pair(endpoint, version=endpoint.canary_version),
                      pair(endpoint, annotation="iris-model:9"), pair(endpoint, annotation="")])
    roles = sorted(InferenceRecord.objects.values_list("role", "model_version_id"), key=str)
    assert roles == sorted([("primary", endpoint.model_version_id), ("canary", endpoint.canary_version_id),
                            ("other", None), ("other", None)], key=str)
    keys = set(minute_rollups(endpoint).values_list("version_key", flat=True))
    assert keys == {endpoint.model_version_id, endpoint.canary_version_id, 0}


def test_an_endpoint_found_by_name_when_the_pipeline_did_not_resolve_it():
    endpoint = monitored_endpoint()
    record_inference([pair(endpoint, by_name=True)])
    assert InferenceRecord.objects.get().endpoint == endpoint


def test_pairs_of_unknown_endpoints_are_skipped_without_failing_the_batch():
    endpoint = monitored_endpoint()
    from dataclasses import replace

    stray = replace(pair(endpoint), endpoint_id=None, inference_service="gone")
    record_inference([stray, pair(endpoint)])
    assert InferenceRecord.objects.count() == 1


def test_unreadable_payloads_are_recorded_without_features():
    endpoint = monitored_endpoint()
    record_inference([pair(endpoint, body=(b"\xff not json", b"<html>"))])
    record = InferenceRecord.objects.get()
    assert (record.rows, record.feature_bins, record.status) == (0, [], "ok")
    assert not BinCount.objects.exists()


def test_v2_tensors_are_binned_like_v1_rows():
    endpoint = monitored_endpoint(protocol="v2")
    request = {"inputs": [{"name": "input-0", "shape": [2, 4], "datatype": "FP32",
                           "data": [5.0, 6.0, 7.0, 8.0, 1.0, 2.0, 3.0, 4.0]}]}
    response = {"model_name": "iris", "outputs": [{"name": "output-0", "shape": [2], "datatype": "INT64",
                                                   "data": [1, 0]}]}
    record_inference([pair(endpoint, body=(json.dumps(request).encode(), json.dumps(response).encode()))])
    record = InferenceRecord.objects.get()
    assert record.rows == 2 and record.predictions == [1, 0]
    assert sum(BinCount.objects.filter(feature="petal_width").values_list("count", flat=True)) == 2


def test_openai_usage_tokens_are_kept_and_summed():
    endpoint = monitored_endpoint(protocol="openai")
    request = {"model": "iris", "messages": [{"role": "user", "content": "hi"}]}
    response = {"id": "c1", "object": "chat.completion", "choices": [],
                "usage": {"prompt_tokens": 11, "completion_tokens": 29, "total_tokens": 40}}
    record_inference([pair(endpoint, body=(json.dumps(request).encode(), json.dumps(response).encode()))] * 1)
    record = InferenceRecord.objects.get()
    assert (record.prompt_tokens, record.completion_tokens) == (11, 29)
    assert minute_rollups(endpoint).get().completion_tokens == 29


def test_binned_hours_are_marked_for_drift():
    endpoint = monitored_endpoint()
    record_inference([pair(endpoint), pair(endpoint, at=BASE_TIME + timedelta(hours=2))])
    assert set(DriftBacklog.objects.values_list("hour", flat=True)) == {BASE_TIME, BASE_TIME + timedelta(hours=2)}
