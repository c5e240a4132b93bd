"""Permission-matrix rows for the monitoring app (format: tests/console/permission_table.py).

Dashboards follow their endpoint: whoever may see the endpoint sees its Latency and Drift tabs
and their JSON; anyone else gets 404 (never a hint that the endpoint exists). Changing the drift
settings needs deploy. The platform overview is open to every signed-in user and shows only
the endpoints each one may see.
"""

from __future__ import annotations

from tests.console.permission_table import UI_EVERYONE, Req, expect

E = {"project": "project.name", "name": "endpoint.name"}
E_IDOR = {"project": "other_project.name", "name": "other_endpoint.name"}
PK = {"pk": "endpoint.pk"}
PK_IDOR = {"pk": "other_endpoint.pk"}
SETTINGS = {"psi_warning": 0.2, "psi_alert": 0.4, "drift_window_hours": 1, "min_window_rows": 20}

#                     anon out  view dep  own  call aud  admin
UI_SEE = expect(302, 404, 200, 200, 200, 200, 404, 200)
UI_DEPLOY_DONE = expect(302, 404, 403, 302, 302, 403, 404, 302)
API_SEE = expect(401, 404, 200, 200, 200, 200, 404, 200)
API_DEPLOY = expect(401, 404, 403, 200, 200, 403, 404, 200)

ROUTES = {
    "monitoring:overview": Req(UI_EVERYONE),
    "monitoring:overview-data": Req(UI_EVERYONE),
    "monitoring:endpoint-latency": Req(UI_SEE, kwargs=E, idor=E_IDOR),
    "monitoring:endpoint-latency-data": Req(UI_SEE, kwargs=E, idor=E_IDOR),
    "monitoring:endpoint-drift": Req(UI_SEE, kwargs=E, idor=E_IDOR),
    "monitoring:endpoint-drift-data": Req(UI_SEE, kwargs=E, idor=E_IDOR),
    "monitoring:endpoint-drift-settings": Req(UI_DEPLOY_DONE, method="POST", kwargs=E, data=SETTINGS, idor=E_IDOR),
    "api-endpoint-latency": Req(API_SEE, kwargs=PK, idor=PK_IDOR),
    "api-endpoint-drift": Req(API_SEE, kwargs=PK, idor=PK_IDOR),
    "api-endpoint-monitoring": [
        Req(API_SEE, kwargs=PK, idor=PK_IDOR),
        Req(API_DEPLOY, method="PATCH", kwargs=PK, data={"psi_alert": 0.5}, idor=PK_IDOR),
    ],
}
