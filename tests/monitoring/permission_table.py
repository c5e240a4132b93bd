"""Permission-matrix rows for the monitoring app (format: tests/console/permission_table.py).

Dashboards follow their endpoint: whoever may see the endpoint sees its Latency and Drift tabs
and their JSON; anyone else gets 404 (never a hint that the endpoint exists). Changing the drift
settings needs deploy. The platform overview is open to every signed-in user and shows only
the endpoints each one may see.

Automated rollouts: the Rollout tab and its JSON follow the endpoint (a Viewer sees the
timeline); starting, pausing, resuming, aborting and the endpoint's policy need deploy (a Viewer
gets 403); skipping to promotion needs manage (the Owner). The matrix endpoint has no rollout,
so a permitted control is refused by the service (UI: back to the tab with a message; API: 400)
and an empty start or policy form answers 400 with its field errors.
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
UI_DEPLOY_FORM_ERR = expect(302, 404, 403, 400, 400, 403, 404, 400)
UI_MANAGE_DONE = expect(302, 404, 403, 403, 302, 403, 404, 302)
API_DEPLOY_REFUSED = expect(401, 404, 403, 400, 400, 403, 404, 400)
API_MANAGE_REFUSED = expect(401, 404, 403, 403, 400, 403, 404, 400)
PROJECT = {"pk": "project.pk"}
PROJECT_IDOR = {"pk": "other_project.pk"}

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
    # --- automated rollouts ----------------------------------------------------------------
    "monitoring:endpoint-rollout": Req(UI_SEE, kwargs=E, idor=E_IDOR),
    "monitoring:endpoint-rollout-data": Req(UI_SEE, kwargs=E, idor=E_IDOR),
    "monitoring:endpoint-rollout-start": Req(UI_DEPLOY_FORM_ERR, method="POST", kwargs=E, idor=E_IDOR),
    "monitoring:endpoint-rollout-pause": Req(UI_DEPLOY_DONE, method="POST", kwargs=E, idor=E_IDOR),
    "monitoring:endpoint-rollout-resume": Req(UI_DEPLOY_DONE, method="POST", kwargs=E, idor=E_IDOR),
    "monitoring:endpoint-rollout-abort": Req(UI_DEPLOY_DONE, method="POST", kwargs=E, idor=E_IDOR),
    "monitoring:endpoint-rollout-skip": Req(UI_MANAGE_DONE, method="POST", kwargs=E, data={"reason": "hotfix"},
                                            idor=E_IDOR),
    "monitoring:endpoint-rollout-policy": Req(UI_DEPLOY_FORM_ERR, method="POST", kwargs=E, idor=E_IDOR),
    "api-endpoint-rollouts": [
        Req(API_SEE, kwargs=PK, idor=PK_IDOR),
        Req(API_DEPLOY_REFUSED, method="POST", kwargs=PK, idor=PK_IDOR),  # no version given
    ],
    "api-endpoint-rollout-pause": Req(API_DEPLOY_REFUSED, method="POST", kwargs=PK, idor=PK_IDOR),
    "api-endpoint-rollout-resume": Req(API_DEPLOY_REFUSED, method="POST", kwargs=PK, idor=PK_IDOR),
    "api-endpoint-rollout-abort": Req(API_DEPLOY_REFUSED, method="POST", kwargs=PK, idor=PK_IDOR),
    "api-endpoint-rollout-skip": Req(API_MANAGE_REFUSED, method="POST", kwargs=PK, data={"reason": "hotfix"},
                                     idor=PK_IDOR),
    "api-endpoint-rollout-policy": [
        Req(API_SEE, kwargs=PK, idor=PK_IDOR),
        Req(API_DEPLOY, method="PUT", kwargs=PK, data={"steps": [20, 100]}, idor=PK_IDOR),
        Req(expect(401, 404, 403, 204, 204, 403, 404, 204), method="DELETE", kwargs=PK, idor=PK_IDOR),
    ],
    "api-project-rollout-policy": [
        Req(API_SEE, kwargs=PROJECT, idor=PROJECT_IDOR),
        Req(expect(401, 404, 403, 403, 200, 403, 404, 200), method="PUT", kwargs=PROJECT,
            data={"steps": [5, 50, 100]}, idor=PROJECT_IDOR),
    ],
}
