"""Permission-matrix rows for the endpoints app (format: tests/console/permission_table.py).

The personas hold their role on project ``matrix`` (world.project); ``elsewhere``
(world.other_*) is the IDOR target. Registry and endpoint pages follow the chokepoint:
invisible → 404, visible without the action → 403. Storage connections: a project's follow the
project (edit, rotate and delete need manage — the Owner —, a storage check needs deploy); every
platform-wide one is visible to everyone signed in, changed by platform admins only, and opted
into by a project's Owner. Platform-admin pages (clusters, projects,
hardware, runtimes) are 403 for everyone else, before any object is looked up (so they give
no 404 oracle either). Writes with incomplete bodies still show the gate: 400/200 (form
errors) means "allowed to try", 403/404 means refused.
"""

from __future__ import annotations

from tests.console.permission_table import (
    API_ADMIN,
    API_EVERYONE,
    UI_ADMIN,
    UI_ADMIN_POST,
    UI_EVERYONE,
    Req,
    expect,
)

E = {"project": "project.name", "name": "endpoint.name"}
E_IDOR = {"project": "other_project.name", "name": "other_endpoint.name"}
PK = {"pk": "endpoint.pk"}
PK_IDOR = {"pk": "other_endpoint.pk"}
MODEL = {"pk": "model.pk"}
MODEL_IDOR = {"pk": "other_model.pk"}
NEW_ENDPOINT = {"project": "@project.pk", "name": "fresh", "model_version": "@version.pk"}

#                     anon out  view dep  own  call aud  admin
UI_SEE = expect(302, 404, 200, 200, 200, 200, 404, 200)
UI_DEPLOY = expect(302, 404, 403, 200, 200, 403, 404, 200)
UI_DEPLOY_FORM_ERR = expect(302, 404, 403, 400, 400, 403, 404, 400)
UI_DEPLOY_DONE = expect(302, 404, 403, 302, 302, 403, 404, 302)
API_SEE = expect(401, 404, 200, 200, 200, 200, 404, 200)
API_DEPLOY = expect(401, 404, 403, 200, 200, 403, 404, 200)
API_DEPLOY_BAD_BODY = expect(401, 404, 403, 400, 400, 403, 404, 400)
API_ADMIN_WRITE_BAD_BODY = expect(401, 403, 403, 403, 403, 403, 403, 400)
UI_ADMIN_FORM = expect(302, 403, 403, 403, 403, 403, 403, 200)
UI_ADMIN_ACTION = expect(302, 403, 403, 403, 403, 403, 403, 302)
# Lifecycle: deleting needs manage (the Owner); a delete the rules refuse answers 409.
UI_MANAGE = expect(302, 404, 403, 403, 200, 403, 404, 200)
UI_MANAGE_DONE = expect(302, 404, 403, 403, 302, 403, 404, 302)
UI_MANAGE_REFUSED = expect(302, 404, 403, 403, 409, 403, 404, 409)
UI_ADMIN_REFUSED = expect(302, 403, 403, 403, 403, 403, 403, 409)
API_MANAGE = expect(401, 404, 403, 403, 200, 403, 404, 200)
API_MANAGE_DELETED = expect(401, 404, 403, 403, 204, 403, 404, 204)
API_MANAGE_REFUSED = expect(401, 404, 403, 403, 409, 403, 404, 409)
API_ADMIN_DELETED = expect(401, 403, 403, 403, 403, 403, 403, 204)
API_ADMIN_REFUSED = expect(401, 403, 403, 403, 403, 403, 403, 409)
SPARE_VERSION = {"pk": "spare_model.pk", "version": "spare_version.version"}
SERVING_VERSION = {"pk": "model.pk", "version": "version.version"}
OTHER_VERSION = {"pk": "other_model.pk", "version": "other_version.version"}
PROJECT = {"name": "project.name"}
PROJECT_IDOR = {"name": "other_project.name"}
# Container logs can hold request data: the endpoint does not exist for those who may not deploy it.
UI_LOGS = expect(302, 404, 404, 200, 200, 404, 404, 200)
API_LOGS = expect(401, 404, 404, 200, 200, 404, 404, 200)



def extend_world(world) -> None:
    """Storage connections: one on each project, and a platform-wide one no project opted into."""
    from endpoints.services.connections import connection_create

    s3 = {"endpoint_url": "https://minio.matrix.example.com", "region": "us-east-1"}
    world.connection = connection_create(actor=None, project=world.project, name="matrix-store", kind="s3",
                                         config=s3, secrets={"access_key_id": "AKIAMATRIX",
                                                             "secret_access_key": "matrix-secret-key"})
    world.other_connection = connection_create(actor=None, project=world.other_project, name="elsewhere-store",
                                               kind="s3", config=s3, secrets={"access_key_id": "AKIAOTHER",
                                                                              "secret_access_key": "other-secret"})
    world.platform_connection = connection_create(actor=None, project=None, name="shared-hf", kind="hf",
                                                  secrets={"token": "hf_matrixtoken"})
    # Alerts and notifications: an open alert, a channel Owners may subscribe to, and each
    # project subscribed to one (the other project's subscription is the IDOR target).
    from endpoints.models import NotificationSubscription, ReconcileAlert
    from endpoints.services.notifications import channel_create

    world.alert = ReconcileAlert.objects.create(cluster=world.cluster, kind="deletion_cap", message="12 orphans")
    world.channel, _ = channel_create(actor=None, name="matrix-mail", kind="email", target="team@example.com")
    world.spare_channel, _ = channel_create(actor=None, name="spare-mail", kind="email", target="x@example.com")
    world.subscription = NotificationSubscription.objects.create(project=world.project, channel=world.channel)
    world.other_subscription = NotificationSubscription.objects.create(project=world.other_project,
                                                                       channel=world.channel)
    # Lifecycle: a model with a version nothing serves (deletable), beside world.model whose
    # version serves world.endpoint (refused).
    from tests.endpoints.endpoint_factories import ModelVersionFactory, RegisteredModelFactory

    world.spare_model = RegisteredModelFactory(project=world.project, name="spare")
    world.spare_version = ModelVersionFactory(model=world.spare_model, version=1)
    # NIMs: a platform-wide NGC connection the project opted into and one NIM installed.
    from endpoints.services.connections import connection_opt_in
    from endpoints.services.nim import catalog_entry, nim_runtime_install

    world.ngc_connection = connection_create(actor=None, project=None, name="matrix-ngc", kind="ngc",
                                             secrets={"api_key": "nvapi-matrix"})
    connection_opt_in(actor=None, connection=world.ngc_connection, project=world.project)
    world.nim_runtime = nim_runtime_install(actor=None, entry=catalog_entry("llama3-8b-instruct"),
                                            connection=world.ngc_connection)


CONN = {"pk": "connection.pk"}
CONN_IDOR = {"pk": "other_connection.pk"}
SHARED = {"pk": "platform_connection.pk"}
# A URI an S3 connection does not serve: answered ("invalid") without reaching any storage.
CHECK_URI = "gs://bucket/model"
S3_EDIT = {"display_name": "Matrix store", "description": "", "config_endpoint_url": "https://minio.matrix.example.com",
           "config_region": "us-east-1", "config_verify_tls": "on", "config_addressing": "path"}

#                              anon out  view dep  own  call aud  admin
UI_CONN_MANAGE = expect(302, 404, 403, 403, 200, 403, 404, 200)
UI_CONN_MANAGE_DONE = expect(302, 404, 403, 403, 302, 403, 404, 302)
UI_CONN_CHECK = expect(302, 404, 403, 200, 200, 403, 404, 200)
UI_CONN_CREATE = expect(302, 403, 403, 403, 200, 403, 403, 200)
UI_CONN_CREATED = expect(302, 403, 403, 403, 302, 403, 403, 302)
UI_SHARED_ADMIN = expect(302, 403, 403, 403, 403, 403, 403, 200)
UI_SHARED_ADMIN_DONE = expect(302, 403, 403, 403, 403, 403, 403, 302)
API_CONN_MANAGE = expect(401, 404, 403, 403, 200, 403, 404, 200)
API_CONN_CHECK = expect(401, 404, 403, 200, 200, 403, 404, 200)
# The project in the body: one you cannot see does not exist (400), one you only see is 403.
API_CONN_OPT = expect(401, 400, 403, 403, 200, 403, 400, 200)

ROUTES = {
    # --- storage connections -----------------------------------------------------------------
    "endpoints:connection-list": [Req(UI_EVERYONE), Req(UI_EVERYONE, query="scope=platform&kind=hf")],
    "endpoints:connection-create": [
        Req(UI_CONN_CREATE),  # the kinds to choose from
        Req(UI_CONN_CREATE, query="kind=s3&project=matrix"),
        Req(UI_CONN_CREATED, method="POST", query="kind=hf",
            data={"project": "@project.pk", "name": "fresh", "secret_token": "hf_fresh"}),
        # Platform-wide: not among an Owner's choices (the form comes back), created by admins.
        Req(expect(302, 403, 403, 403, 200, 403, 403, 302), method="POST", query="kind=hf",
            data={"project": "platform", "name": "fresh", "secret_token": "hf_fresh"}),
    ],
    "endpoints:connection-detail": [
        Req(UI_SEE, kwargs=CONN, idor=CONN_IDOR),
        Req(UI_EVERYONE, kwargs=SHARED),
    ],
    "endpoints:connection-edit": [
        Req(UI_CONN_MANAGE, kwargs=CONN, idor=CONN_IDOR),
        Req(UI_CONN_MANAGE_DONE, method="POST", kwargs=CONN, data=S3_EDIT, idor=CONN_IDOR),
        Req(UI_SHARED_ADMIN, kwargs=SHARED),
    ],
    "endpoints:connection-rotate": [
        Req(UI_CONN_MANAGE, kwargs=CONN, idor=CONN_IDOR),
        Req(UI_CONN_MANAGE_DONE, method="POST", kwargs=CONN, data={"secret_secret_access_key": "rotated-key"},
            idor=CONN_IDOR),
        Req(UI_SHARED_ADMIN_DONE, method="POST", kwargs=SHARED, data={"secret_token": "hf_rotated"}),
    ],
    "endpoints:connection-delete": [
        Req(UI_CONN_MANAGE, kwargs=CONN, idor=CONN_IDOR),
        Req(UI_CONN_MANAGE_DONE, method="POST", kwargs=CONN, idor=CONN_IDOR),
        Req(UI_SHARED_ADMIN_DONE, method="POST", kwargs=SHARED),
    ],
    "endpoints:connection-check": [
        Req(UI_CONN_CHECK, method="POST", kwargs=CONN, data={"uri": CHECK_URI}, idor=CONN_IDOR),
        # POST only: a GET changes nothing (405 once the gate let it through).
        Req(expect(302, 404, 403, 405, 405, 403, 404, 405), kwargs=CONN),
    ],
    # Opting a project in needs manage on it: invisible project 404, visible only 403.
    "endpoints:connection-opt-in": [
        Req(expect(302, 404, 403, 403, 302, 403, 404, 302), method="POST", kwargs=SHARED,
            data={"project": "@project.pk", "action": "in"}, idor=CONN_IDOR),
        Req(expect(302, 404, 403, 403, 302, 403, 404, 302), method="POST", kwargs=SHARED,
            data={"project": "@project.pk", "action": "out"}),
    ],
    "api-connection-list": [
        Req(API_EVERYONE),
        Req(API_EVERYONE, query="scope=project&kind=s3&project=matrix"),
        Req(expect(401, 400, 403, 403, 201, 403, 400, 201), method="POST",
            data={"project": "@project.pk", "name": "fresh", "kind": "hf", "secrets": {"token": "hf_fresh"}}),
        Req(expect(401, 403, 403, 403, 403, 403, 403, 201), method="POST",
            data={"project": None, "name": "fresh", "kind": "hf", "secrets": {"token": "hf_fresh"}}),
    ],
    "api-connection-detail": [
        Req(API_SEE, kwargs=CONN, idor=CONN_IDOR),
        Req(API_EVERYONE, kwargs=SHARED),
        Req(API_CONN_MANAGE, method="PATCH", kwargs=CONN, data={"description": "changed"}, idor=CONN_IDOR),
        Req(API_ADMIN, method="PATCH", kwargs=SHARED, data={"description": "changed"}),
        Req(expect(401, 404, 403, 403, 204, 403, 404, 204), method="DELETE", kwargs=CONN, idor=CONN_IDOR),
        Req(expect(401, 405, 405, 405, 405, 405, 405, 405), method="PUT", kwargs=CONN),
    ],
    "api-connection-rotate": [
        Req(API_CONN_MANAGE, kwargs=CONN, idor=CONN_IDOR),
        Req(API_CONN_MANAGE, method="POST", kwargs=CONN, data={"secrets": {"secret_access_key": "rotated-key"}},
            idor=CONN_IDOR),
        Req(API_ADMIN, method="POST", kwargs=SHARED, data={"secrets": {"token": "hf_rotated"}}),
    ],
    "api-connection-check": Req(API_CONN_CHECK, method="POST", kwargs=CONN, data={"uri": CHECK_URI},
                                idor=CONN_IDOR),
    "api-connection-opt-in": Req(API_CONN_OPT, method="POST", kwargs=SHARED, data={"project": "@project.pk"},
                                 idor=CONN_IDOR),
    "api-connection-opt-out": Req(API_CONN_OPT, method="POST", kwargs=SHARED, data={"project": "@project.pk"},
                                  idor=CONN_IDOR),
    "api-connection-usage": [Req(API_SEE, kwargs=CONN, idor=CONN_IDOR), Req(API_EVERYONE, kwargs=SHARED)],
    # --- endpoint pages --------------------------------------------------------------------
    "endpoints:endpoint-list": Req(UI_EVERYONE),
    "endpoints:endpoint-create": [
        Req(UI_EVERYONE),  # the wizard offers only projects the user may deploy to
        Req(expect(302, 400, 400, 400, 400, 400, 400, 400), method="POST", data=NEW_ENDPOINT),
    ],
    "endpoints:runtime-preview": Req(UI_EVERYONE),
    "endpoints:endpoint-plan": Req(expect(302, 404, 404, 404, 404, 404, 404, 404), kwargs={"token": "=unknown"}),
    "endpoints:endpoint-detail": Req(UI_SEE, kwargs=E, idor=E_IDOR),
    "endpoints:endpoint-configuration": Req(UI_SEE, kwargs=E, idor=E_IDOR),
    "endpoints:endpoint-manifest": Req(UI_SEE, kwargs=E, idor=E_IDOR),
    "endpoints:endpoint-revisions": Req(UI_SEE, kwargs=E, idor=E_IDOR),
    "endpoints:endpoint-status": Req(UI_SEE, kwargs=E, idor=E_IDOR),
    # Operations: pods and events for whoever sees the endpoint; logs (request data) only for
    # those who may deploy it, 404 for the rest. The matrix cluster is unreachable: the pages
    # answer with its message, never a 500.
    "endpoints:endpoint-operations": Req(UI_SEE, kwargs=E, idor=E_IDOR),
    "endpoints:endpoint-logs": [
        Req(UI_LOGS, kwargs=E, idor=E_IDOR),
        Req(UI_LOGS, kwargs=E, query="pod=p&container=kserve-container&tail=50&format=json", idor=E_IDOR),
    ],
    "endpoints:endpoint-edit": [
        Req(UI_DEPLOY, kwargs=E, idor=E_IDOR),
        Req(UI_DEPLOY_FORM_ERR, method="POST", kwargs=E, idor=E_IDOR),
    ],
    "endpoints:endpoint-canary": [
        Req(UI_DEPLOY, kwargs=E, idor=E_IDOR),
        Req(UI_DEPLOY_FORM_ERR, method="POST", kwargs=E, idor=E_IDOR),
    ],
    "endpoints:endpoint-promote": Req(UI_DEPLOY_DONE, method="POST", kwargs=E, idor=E_IDOR),
    "endpoints:endpoint-rollback": Req(UI_DEPLOY_DONE, method="POST", kwargs=E, idor=E_IDOR),
    "endpoints:endpoint-stop": Req(UI_DEPLOY_DONE, method="POST", kwargs=E, idor=E_IDOR),
    "endpoints:endpoint-start": Req(UI_DEPLOY_DONE, method="POST", kwargs=E, idor=E_IDOR),
    "endpoints:endpoint-delete": [
        Req(UI_DEPLOY, kwargs=E, idor=E_IDOR),
        Req(UI_DEPLOY_DONE, method="POST", kwargs=E, idor=E_IDOR),
    ],
    # --- registry pages --------------------------------------------------------------------
    "endpoints:model-list": Req(UI_EVERYONE),
    "endpoints:model-create": [
        Req(UI_EVERYONE),
        # Deployer on the project may register models there; others see the form again (the
        # project is not among their choices).
        Req(expect(302, 200, 200, 302, 302, 200, 200, 302), method="POST",
            data={"project": "@project.pk", "name": "fresh", "task": "classification"}),
    ],
    "endpoints:model-detail": Req(UI_SEE, kwargs=MODEL, idor=MODEL_IDOR),
    "endpoints:version-create": [
        Req(UI_DEPLOY, kwargs=MODEL, idor=MODEL_IDOR),
        Req(UI_DEPLOY, method="POST", kwargs=MODEL, idor=MODEL_IDOR),
    ],
    "endpoints:model-edit": [
        Req(UI_DEPLOY, kwargs=MODEL, idor=MODEL_IDOR),
        Req(UI_DEPLOY_DONE, method="POST", kwargs=MODEL, data={"task": "regression", "description": "x"},
            idor=MODEL_IDOR),
    ],
    "endpoints:model-delete": [
        Req(UI_MANAGE, kwargs=MODEL, idor=MODEL_IDOR),
        Req(UI_MANAGE_REFUSED, method="POST", kwargs=MODEL, idor=MODEL_IDOR),  # its version serves
        Req(UI_MANAGE_DONE, method="POST", kwargs={"pk": "spare_model.pk"}),
    ],
    "endpoints:version-edit": [
        Req(UI_DEPLOY, kwargs=SERVING_VERSION, idor=OTHER_VERSION),
        Req(UI_DEPLOY_DONE, method="POST", kwargs=SERVING_VERSION, data={"description": "x"}, idor=OTHER_VERSION),
    ],
    "endpoints:version-delete": [
        Req(UI_MANAGE, kwargs=SERVING_VERSION, idor=OTHER_VERSION),
        Req(UI_MANAGE_REFUSED, method="POST", kwargs=SERVING_VERSION, idor=OTHER_VERSION),
        Req(UI_MANAGE_DONE, method="POST", kwargs=SPARE_VERSION),
    ],
    "endpoints:version-archive": [
        Req(UI_MANAGE_DONE, method="POST", kwargs=SERVING_VERSION, data={"archived": "1"}, idor=OTHER_VERSION),
        Req(UI_MANAGE_DONE, method="POST", kwargs=SERVING_VERSION, data={"archived": "0"}, idor=OTHER_VERSION),
        # POST only: a GET is refused before anything is looked up (so it tells nothing).
        Req(expect(302, 405, 405, 405, 405, 405, 405, 405), kwargs=SERVING_VERSION),
    ],
    "endpoints:version-alias": [
        Req(UI_DEPLOY, kwargs={"pk": "model.pk", "version": "version.version"},
            idor={"pk": "other_model.pk", "version": "other_version.version"}),
        Req(UI_DEPLOY, method="POST", kwargs={"pk": "model.pk", "version": "version.version"},
            idor={"pk": "other_model.pk", "version": "other_version.version"}),
    ],
    # --- platform-admin pages ----------------------------------------------------------------
    "endpoints:project-list": Req(UI_EVERYONE),  # each sees the projects they hold a role on
    "endpoints:project-create": [Req(UI_ADMIN), Req(UI_ADMIN_FORM, method="POST")],
    # Every member sees the project's page; outsiders (and the auditor, who holds no role) get 404.
    "endpoints:project-detail": Req(UI_SEE, kwargs=PROJECT, idor=PROJECT_IDOR),
    "endpoints:project-edit": [
        Req(UI_MANAGE, kwargs=PROJECT, idor=PROJECT_IDOR),
        Req(UI_MANAGE_DONE, method="POST", kwargs=PROJECT, data={"display_name": "Matrix", "description": ""},
            idor=PROJECT_IDOR),
    ],
    "endpoints:project-delete": [
        Req(UI_MANAGE, kwargs=PROJECT, idor=PROJECT_IDOR),
        Req(UI_MANAGE_REFUSED, method="POST", kwargs=PROJECT, idor=PROJECT_IDOR),  # it has an endpoint
    ],
    "endpoints:project-quota": [
        Req(UI_ADMIN, kwargs={"name": "project.name"}),
        Req(UI_ADMIN_POST, method="POST", kwargs={"name": "project.name"}),
    ],
    "endpoints:project-rotate-key": [
        Req(UI_ADMIN, kwargs={"name": "project.name"}),
        Req(UI_ADMIN_POST, method="POST", kwargs={"name": "project.name"}),
    ],
    "endpoints:cluster-list": Req(UI_ADMIN),
    "endpoints:cluster-create": [Req(UI_ADMIN), Req(UI_ADMIN_FORM, method="POST")],
    "endpoints:cluster-detail": Req(UI_ADMIN, kwargs={"pk": "cluster.pk"}),
    "endpoints:cluster-test": Req(UI_ADMIN_ACTION, method="POST", kwargs={"pk": "cluster.pk"}),
    "endpoints:cluster-delete": [
        Req(UI_ADMIN, kwargs={"pk": "cluster.pk"}),
        Req(UI_ADMIN_REFUSED, method="POST", kwargs={"pk": "cluster.pk"}),  # it has projects
    ],
    "endpoints:hardware-delete": [
        Req(UI_ADMIN, kwargs={"pk": "hardware.pk"}),
        Req(UI_ADMIN_POST, method="POST", kwargs={"pk": "hardware.pk"}),  # no endpoint uses it
    ],
    "endpoints:runtime-delete": [
        Req(UI_ADMIN, kwargs={"pk": "runtime.pk"}),
        Req(UI_ADMIN_REFUSED, method="POST", kwargs={"pk": "runtime.pk"}),  # built in
    ],
    "endpoints:cluster-edit": [
        Req(UI_ADMIN, kwargs={"pk": "cluster.pk"}),
        Req(UI_ADMIN_FORM, method="POST", kwargs={"pk": "cluster.pk"}),
    ],
    "endpoints:hardware-list": Req(UI_ADMIN),
    "endpoints:hardware-create": [Req(UI_ADMIN), Req(UI_ADMIN_FORM, method="POST")],
    "endpoints:hardware-edit": [
        Req(UI_ADMIN, kwargs={"pk": "hardware.pk"}),
        Req(UI_ADMIN_FORM, method="POST", kwargs={"pk": "hardware.pk"}),
    ],
    "endpoints:runtime-list": Req(UI_ADMIN),
    "endpoints:nim-catalog": Req(UI_ADMIN),
    "endpoints:nim-install": [Req(UI_ADMIN), Req(UI_ADMIN_FORM, method="POST")],
    # An Owner installs a NIM for their project (manage); an empty form is refused with form errors.
    "endpoints:project-nim-install": [Req(UI_MANAGE, kwargs=PROJECT, idor=PROJECT_IDOR),
                                      Req(UI_MANAGE, method="POST", kwargs=PROJECT, idor=PROJECT_IDOR)],
    "endpoints:nim-entry-create": [Req(UI_ADMIN), Req(UI_ADMIN_FORM, method="POST")],
    "endpoints:nim-import": Req(UI_ADMIN_ACTION, method="POST"),  # no cluster chosen: back with a message
    # Deploying a NIM offers only projects the user may deploy to; an empty form is a 400.
    "endpoints:nim-deploy": [Req(UI_EVERYONE), Req(expect(302, 400, 400, 400, 400, 400, 400, 400), method="POST")],
    "endpoints:runtime-create": [Req(UI_ADMIN), Req(UI_ADMIN_FORM, method="POST")],
    "endpoints:runtime-edit": [
        Req(UI_ADMIN, kwargs={"pk": "runtime.pk"}),
        Req(UI_ADMIN_POST, method="POST", kwargs={"pk": "runtime.pk"}),
    ],
    # --- alerts and notifications (docs/signals.md) -------------------------------------------
    "endpoints:alert-list": Req(UI_ADMIN),
    "endpoints:alert-acknowledge": Req(UI_ADMIN_ACTION, method="POST", kwargs={"pk": "alert.pk"}),
    "endpoints:alert-resolve": Req(UI_ADMIN_ACTION, method="POST", kwargs={"pk": "alert.pk"}),
    "endpoints:channel-list": Req(UI_ADMIN),
    "endpoints:channel-create": [Req(UI_ADMIN), Req(UI_ADMIN_FORM, method="POST")],
    "endpoints:channel-delete": Req(UI_ADMIN_ACTION, method="POST", kwargs={"pk": "channel.pk"}),
    "endpoints:delivery-list": Req(UI_ADMIN),
    # Whoever sees the project sees its channels; only its Owners (and admins) change them.
    "endpoints:project-notifications": [
        Req(UI_SEE, kwargs={"name": "project.name"}, idor={"name": "other_project.name"}),
        Req(UI_CONN_MANAGE_DONE, method="POST", kwargs={"name": "project.name"}, data={"channel": "@spare_channel.pk"},
            idor={"name": "other_project.name"}),
    ],
    "endpoints:project-unsubscribe": Req(
        UI_CONN_MANAGE_DONE, method="POST", kwargs={"name": "project.name", "subscription": "subscription.pk"},
        idor={"name": "other_project.name", "subscription": "other_subscription.pk"}),
    "api-alert-list": Req(API_ADMIN),
    "api-alert-detail": Req(API_ADMIN, kwargs={"pk": "alert.pk"}),
    "api-alert-acknowledge": Req(API_ADMIN, method="POST", kwargs={"pk": "alert.pk"}),
    "api-alert-resolve": Req(API_ADMIN, method="POST", kwargs={"pk": "alert.pk"}),
    # --- API ---------------------------------------------------------------------------------
    "api-root": Req(API_EVERYONE),
    "endpoint-list": [
        Req(API_EVERYONE),
        # Only projects the caller may deploy to are valid choices (others: "does not exist").
        Req(expect(401, 400, 400, 201, 201, 400, 400, 201), method="POST", data=NEW_ENDPOINT),
    ],
    "endpoint-detail": [
        Req(API_SEE, kwargs=PK, idor=PK_IDOR),
        Req(API_DEPLOY, method="PATCH", kwargs=PK, data={"description": "changed"}, idor=PK_IDOR),
        Req(expect(401, 404, 403, 202, 202, 403, 404, 202), method="DELETE", kwargs=PK, idor=PK_IDOR),
    ],
    "endpoint-plan": Req(API_DEPLOY, method="POST", kwargs=PK, idor=PK_IDOR),
    "endpoint-plan-create": Req(expect(401, 400, 400, 200, 200, 400, 400, 200), method="POST", data=NEW_ENDPOINT),
    "endpoint-promote": Req(API_DEPLOY_BAD_BODY, method="POST", kwargs=PK, idor=PK_IDOR),  # no canary: 400
    "endpoint-revisions": Req(API_SEE, kwargs=PK, idor=PK_IDOR),
    "endpoint-operations-pods": Req(API_SEE, kwargs=PK, idor=PK_IDOR),
    "endpoint-operations-events": Req(API_SEE, kwargs=PK, idor=PK_IDOR),
    "endpoint-operations-logs": [
        Req(API_LOGS, kwargs=PK, query="pod=p&tail=100", idor=PK_IDOR),
        Req(expect(401, 404, 404, 400, 400, 404, 404, 400), kwargs=PK, query="tail=1", idor=PK_IDOR),  # no pod
    ],
    "endpoint-rollback": Req(API_DEPLOY_BAD_BODY, method="POST", kwargs=PK, idor=PK_IDOR),
    "endpoint-start": Req(API_DEPLOY, method="POST", kwargs=PK, idor=PK_IDOR),
    "endpoint-stop": Req(API_DEPLOY, method="POST", kwargs=PK, idor=PK_IDOR),
    "api-cluster-list": [Req(API_ADMIN), Req(API_ADMIN_WRITE_BAD_BODY, method="POST")],
    "api-cluster-detail": [
        Req(API_ADMIN, kwargs={"pk": "cluster.pk"}),
        # Saved disabled: the matrix world's cluster address is fictitious, and an enabled
        # cluster is read before it is saved (tests/endpoints/test_capabilities.py).
        Req(API_ADMIN, method="PATCH", kwargs={"pk": "cluster.pk"}, data={"description": "x", "enabled": False}),
        Req(API_ADMIN_REFUSED, method="DELETE", kwargs={"pk": "cluster.pk"}),  # it has projects
    ],
    "api-hardware-profile-list": [Req(API_EVERYONE), Req(API_ADMIN_WRITE_BAD_BODY, method="POST")],
    "api-hardware-profile-detail": [
        Req(API_EVERYONE, kwargs={"pk": "hardware.pk"}),
        Req(API_ADMIN, method="PATCH", kwargs={"pk": "hardware.pk"}, data={"description": "x"}),
        Req(API_ADMIN_DELETED, method="DELETE", kwargs={"pk": "hardware.pk"}),  # no endpoint uses it
    ],
    "api-runtime-list": [Req(API_EVERYONE), Req(API_ADMIN_WRITE_BAD_BODY, method="POST")],
    # NIMs: everyone signed in reads; platform admins install; deploying needs deploy on the
    # project named in the body (others get the project field's 400, never an endpoint).
    "api-nim-runtime-list": [Req(API_EVERYONE), Req(API_ADMIN_WRITE_BAD_BODY, method="POST")],
    "api-nim-runtime-detail": Req(API_EVERYONE, kwargs={"pk": "nim_runtime.pk"}),
    "api-nim-runtime-deploy": Req(expect(401, 400, 400, 201, 201, 400, 400, 201), method="POST",
                                  kwargs={"pk": "nim_runtime.pk"},
                                  data={"project": "@project.pk", "name": "nim-chat", "hardware_profile": "@hardware.pk",
                                        "accelerator_count": 1}),
    "api-runtime-detail": [
        Req(API_EVERYONE, kwargs={"pk": "runtime.pk"}),
        Req(API_ADMIN, method="PATCH", kwargs={"pk": "runtime.pk"}, data={"description": "x"}),
        Req(API_ADMIN_REFUSED, method="DELETE", kwargs={"pk": "runtime.pk"}),  # built in
    ],
    "api-project-list": [Req(API_EVERYONE), Req(API_ADMIN_WRITE_BAD_BODY, method="POST")],
    "api-project-detail": [
        Req(API_SEE, kwargs={"pk": "project.pk"}, idor={"pk": "other_project.pk"}),
        Req(API_MANAGE, method="PATCH", kwargs={"pk": "project.pk"}, data={"description": "x"},
            idor={"pk": "other_project.pk"}),
        Req(API_MANAGE, method="PUT", kwargs={"pk": "project.pk"}, data={"display_name": "M", "description": "x"},
            idor={"pk": "other_project.pk"}),
        Req(API_MANAGE_REFUSED, method="DELETE", kwargs={"pk": "project.pk"}, idor={"pk": "other_project.pk"}),
    ],
    "api-project-quota": Req(API_ADMIN_WRITE_BAD_BODY, method="POST", kwargs={"pk": "project.pk"}),
    "api-project-rotate-ingest-key": Req(API_ADMIN, method="POST", kwargs={"pk": "project.pk"}),
    "api-model-list": [
        Req(API_EVERYONE),
        # Deployer on the project registers models; a project you cannot see "does not exist".
        Req(expect(401, 400, 403, 201, 201, 403, 400, 201), method="POST",
            data={"project": "@project.pk", "name": "fresh", "task": "classification"}),
    ],
    "api-model-detail": [
        Req(API_SEE, kwargs=MODEL, idor=MODEL_IDOR),
        Req(API_DEPLOY, method="PATCH", kwargs=MODEL, data={"description": "x"}, idor=MODEL_IDOR),
        Req(API_DEPLOY, method="PUT", kwargs=MODEL, data={"task": "regression", "description": "x"},
            idor=MODEL_IDOR),
        Req(API_MANAGE_REFUSED, method="DELETE", kwargs=MODEL, idor=MODEL_IDOR),
        Req(API_MANAGE_DELETED, method="DELETE", kwargs={"pk": "spare_model.pk"}),
    ],
    "api-model-versions": [
        Req(API_SEE, kwargs=MODEL, idor=MODEL_IDOR),
        Req(API_DEPLOY_BAD_BODY, method="POST", kwargs=MODEL, idor=MODEL_IDOR),
    ],
    "api-model-aliases": Req(API_DEPLOY_BAD_BODY, method="POST", kwargs=MODEL, idor=MODEL_IDOR),
    "api-version-list": Req(API_EVERYONE),
    "api-version-detail": [
        Req(API_SEE, kwargs={"pk": "version.pk"}, idor={"pk": "other_version.pk"}),
        Req(API_DEPLOY, method="PATCH", kwargs={"pk": "version.pk"}, data={"description": "x"},
            idor={"pk": "other_version.pk"}),
        Req(API_MANAGE_REFUSED, method="DELETE", kwargs={"pk": "version.pk"}, idor={"pk": "other_version.pk"}),
        Req(API_MANAGE_DELETED, method="DELETE", kwargs={"pk": "spare_version.pk"}),
    ],
    "api-version-archive": Req(API_MANAGE, method="POST", kwargs={"pk": "version.pk"}, idor={"pk": "other_version.pk"}),
    "api-version-unarchive": Req(API_MANAGE, method="POST", kwargs={"pk": "version.pk"},
                                 idor={"pk": "other_version.pk"}),
}
