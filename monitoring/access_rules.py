"""How the chokepoint scopes the monitoring tables (registered from ``MonitoringConfig.ready``):
every row belongs to an endpoint and follows it — whoever may ``view`` the endpoint may view its
settings, records, rollups, bin counts and drift results (``endpoints.access_rules.through``).
Dashboards read these rows only for an endpoint their view resolved through the chokepoint; the
rules make ``restrict()`` answer for the tables too instead of refusing them."""

from __future__ import annotations

from console.permissions import register_scope
from endpoints.access_rules import through


def register() -> None:
    from endpoints.models import Endpoint
    from monitoring import models as m

    for model in (m.MonitoringConfig, m.InferenceRecord, m.LatencyRollup, m.BinCount, m.DriftBacklog,
                  m.DriftWindow):
        register_scope(model, through("endpoint", Endpoint))
    register_scope(m.FeatureDrift, through("window__endpoint", Endpoint))
