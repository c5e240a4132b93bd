"""Drift windows computed from live bin counts, their status against the endpoint's
thresholds, and the periodic tasks that keep them current."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from audit.models import AuditEvent
from monitoring import services, tasks
from monitoring.consumers import record_inference
from monitoring.models import DriftBacklog, DriftWindow, FeatureDrift, MonitoringConfig
from tests.monitoring.helpers import BASE_TIME, FEATURES, monitored_endpoint, pair

pytestmark = pytest.mark.django_db


def traffic(endpoint, *, shift: float = 0.0, rows: int = 400, at=BASE_TIME, seed: int = 1, per_request: int = 20):
    """Requests whose features follow the reference (N(5 + i, 1)), shifted by ``shift``."""
    rng = np.random.default_rng(seed)
    pairs = []
    for index, _start in enumerate(range(0, rows, per_request)):
        batch = [[float(rng.normal(5.0 + i + shift, 1.0)) for i in range(len(FEATURES))] for _ in range(per_request)]
        predictions = [int(v) for v in rng.integers(0, 3, per_request)]
        pairs.append(pair(endpoint, at=at + timedelta(seconds=index), rows=batch, predictions=predictions))
    record_inference(pairs)


def test_traffic_like_the_reference_is_ok():
    endpoint = monitored_endpoint()
    traffic(endpoint)
    window = services.drift_compute(endpoint=endpoint, start=BASE_TIME, end=BASE_TIME + timedelta(hours=1))[0]
    assert window.status == "ok" and window.rows == 400
    features = {f.feature: f for f in window.features.all()}
    assert set(features) == {*FEATURES, "prediction"}
    assert features["prediction"].is_prediction and features["prediction"].ks is not None
    assert all(f.psi < 0.1 for f in features.values())


def test_shifted_features_raise_an_alert_naming_the_top_feature():
    endpoint = monitored_endpoint()
    traffic(endpoint, shift=1.5)
    window = services.drift_compute(endpoint=endpoint, start=BASE_TIME, end=BASE_TIME + timedelta(hours=1))[0]
    assert window.status == "alert"
    assert window.top_feature in FEATURES and window.max_psi > 0.25
    assert FeatureDrift.objects.filter(window=window, status="alert").count() == len(FEATURES)


def test_the_endpoints_thresholds_decide_the_status():
    endpoint = monitored_endpoint()
    traffic(endpoint, shift=0.5)
    end = BASE_TIME + timedelta(hours=1)
    default = services.drift_compute(endpoint=endpoint, start=BASE_TIME, end=end)[0]
    assert 0.1 <= default.max_psi < 2.0
    MonitoringConfig.objects.filter(endpoint=endpoint).update(psi_warning=default.max_psi * 2,
                                                               psi_alert=default.max_psi * 3)
    endpoint.refresh_from_db()
    assert services.drift_compute(endpoint=endpoint, start=BASE_TIME, end=end)[0].status == "ok"
    endpoint.monitoring_config.psi_warning, endpoint.monitoring_config.psi_alert = 0.01, default.max_psi * 0.9
    endpoint.monitoring_config.save()
    assert services.drift_compute(endpoint=endpoint, start=BASE_TIME, end=end)[0].status == "alert"
    assert DriftWindow.objects.count() == 1  # recomputing replaces the window's result


def test_too_few_rows_give_no_verdict():
    endpoint = monitored_endpoint()
    traffic(endpoint, shift=3.0, rows=20)
    window = services.drift_compute(endpoint=endpoint, start=BASE_TIME, end=BASE_TIME + timedelta(hours=1))[0]
    assert window.status == "insufficient"
    assert window.max_psi > 0.25  # the numbers are still shown


def test_a_version_without_reference_profile_gets_no_drift():
    endpoint = monitored_endpoint()
    endpoint.model_version.reference_profile = None
    endpoint.model_version.save()
    traffic(endpoint)
    assert services.drift_compute(endpoint=endpoint, start=BASE_TIME, end=BASE_TIME + timedelta(hours=1)) == []


def test_canary_and_primary_are_compared_with_their_own_reference():
    endpoint = monitored_endpoint(canary=True)
    traffic(endpoint)
    record_inference([pair(endpoint, version=endpoint.canary_version, rows=[[9.0, 9.0, 9.0, 9.0]] * 60)])
    windows = services.drift_compute(endpoint=endpoint, start=BASE_TIME, end=BASE_TIME + timedelta(hours=1))
    by_version = {w.model_version_id: w for w in windows}
    assert set(by_version) == {endpoint.model_version_id, endpoint.canary_version_id}
    assert by_version[endpoint.canary_version_id].rows == 60


def test_the_periodic_task_computes_marked_windows_and_clears_the_backlog():
    endpoint = monitored_endpoint()
    traffic(endpoint, shift=2.0)
    traffic(endpoint, at=BASE_TIME + timedelta(hours=3), seed=2)
    assert tasks.compute_drift_all_task() == 1
    windows = {w.start: w.status for w in DriftWindow.objects.all()}
    assert windows == {BASE_TIME: "alert", BASE_TIME + timedelta(hours=3): "ok"}
    assert not DriftBacklog.objects.exists()
    assert tasks.compute_drift_all_task() == 0  # nothing new, nothing recomputed


def test_late_events_reopen_a_computed_window():
    endpoint = monitored_endpoint()
    traffic(endpoint)
    tasks.compute_drift_all_task()
    assert DriftWindow.objects.get().status == "ok"
    traffic(endpoint, shift=3.0, rows=2000, seed=9, at=BASE_TIME + timedelta(minutes=30), per_request=100)
    tasks.compute_drift_all_task()
    assert DriftWindow.objects.get().status == "alert"


def test_windows_follow_the_configured_length():
    endpoint = monitored_endpoint()
    services.monitoring_config_update(actor=None, endpoint=endpoint, drift_window_hours=6)
    traffic(endpoint, at=BASE_TIME + timedelta(hours=1))
    tasks.compute_drift_all_task()
    window = DriftWindow.objects.get()
    assert (window.start, window.end) == (BASE_TIME - timedelta(hours=4), BASE_TIME + timedelta(hours=2))


def test_changing_thresholds_is_audited_and_recomputes_stored_windows(alice):
    endpoint = monitored_endpoint()
    traffic(endpoint, shift=0.5)
    tasks.compute_drift_all_task()
    assert DriftWindow.objects.get().status in ("warning", "alert")
    services.monitoring_config_update(actor=alice, endpoint=endpoint, psi_warning=5.0, psi_alert=10.0)
    tasks.compute_drift_all_task()
    assert DriftWindow.objects.get().status == "ok"
    event = AuditEvent.objects.get(action="monitoring.config.update")
    assert event.actor_name == "alice" and event.details["new"] == {"psi_warning": 5.0, "psi_alert": 10.0}


def test_an_alert_threshold_below_the_warning_is_refused():
    from django.core.exceptions import ValidationError

    endpoint = monitored_endpoint()
    with pytest.raises(ValidationError):
        services.monitoring_config_update(actor=None, endpoint=endpoint, psi_warning=0.3, psi_alert=0.2)


def test_retention_prunes_old_records_and_rollups(settings):
    from monitoring.models import InferenceRecord, LatencyRollup

    settings.MONITORING_RECORD_RETENTION_DAYS = 7
    settings.MONITORING_MINUTE_ROLLUP_RETENTION_DAYS = 3
    settings.MONITORING_ROLLUP_RETENTION_DAYS = 30
    endpoint = monitored_endpoint()
    record_inference([pair(endpoint, at=BASE_TIME - timedelta(days=d)) for d in (0, 5, 10, 40)])
    tasks.compute_drift_all_task()
    result = services.monitoring_prune(now=BASE_TIME + timedelta(minutes=1))
    assert result["records"] == 2
    assert InferenceRecord.objects.count() == 2
    assert LatencyRollup.objects.filter(resolution=60).count() == 1
    assert LatencyRollup.objects.filter(resolution=3600).count() == 3
    assert not DriftWindow.objects.filter(end__lt=BASE_TIME - timedelta(days=30)).exists()


def test_by_default_a_window_needs_500_rows_for_a_verdict():
    endpoint = monitored_endpoint(min_window_rows=None)
    traffic(endpoint, shift=3.0, rows=400)
    end = BASE_TIME + timedelta(hours=1)
    assert services.drift_compute(endpoint=endpoint, start=BASE_TIME, end=end)[0].status == "insufficient"
    traffic(endpoint, shift=3.0, rows=100, seed=2, at=BASE_TIME + timedelta(minutes=5))
    assert services.drift_compute(endpoint=endpoint, start=BASE_TIME, end=end)[0].status == "alert"
