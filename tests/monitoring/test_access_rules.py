"""The monitoring tables follow their endpoint's access (``monitoring/access_rules.py``)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from console.access import grants
from console.permissions import restrict
from monitoring.models import DriftWindow, FeatureDrift, MonitoringConfig
from tests.console.access_factories import endpoint_in, project_with_model
from tests.monitoring.helpers import BASE_TIME

pytestmark = pytest.mark.django_db


def _window(endpoint) -> DriftWindow:
    window = DriftWindow.objects.create(endpoint=endpoint, model_version=endpoint.model_version, start=BASE_TIME,
                                        end=BASE_TIME + timedelta(hours=1), rows=10, status="ok",
                                        psi_warning=0.1, psi_alert=0.25)
    FeatureDrift.objects.create(window=window, feature="amount", psi=0.01, js=0.01, rows=10, status="ok")
    return window


def test_drift_results_and_settings_follow_their_endpoint(alice, outsider):
    fraud, _ = project_with_model("fraud")
    churn, _ = project_with_model("churn")
    mine, theirs = endpoint_in(fraud, "scorer"), endpoint_in(churn, "churner")
    for endpoint in (mine, theirs):
        _window(endpoint)
        MonitoringConfig.objects.create(endpoint=endpoint)
    grants.grant_create(actor=None, role="viewer", target=fraud, user=alice, reason="team")

    assert [w.endpoint for w in restrict(DriftWindow.objects.all(), alice)] == [mine]
    assert [f.window.endpoint for f in restrict(FeatureDrift.objects.all(), alice)] == [mine]
    assert [c.endpoint for c in restrict(MonitoringConfig.objects.all(), alice)] == [mine]
    assert not restrict(MonitoringConfig.objects.all(), alice, "deploy").exists()
    assert not restrict(DriftWindow.objects.all(), outsider).exists()
