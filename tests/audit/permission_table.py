"""Permission-matrix rows of the audit app (format: tests/console/permission_table.py).

Auditors and platform admins see the whole trail; the project owner persona sees its
project's events (so it may open the trail, an event of its project, exports and object
histories) but not the integrity page or ingest batches; everyone else gets 403 on the trail
and 404 on an event. The ingest receivers ignore sessions: the KServe logger URL is
authorised by its project key, the Kubernetes webhook by an Ingester's bearer token.

No IDOR rows here: auditors legitimately read every project's events. That a project owner
cannot read another project's events is tested in test_trail_views.py and test_api.py.
"""

from __future__ import annotations

from tests.console.permission_table import Req, expect

#                       anon out  view dep  own  call aud  admin
TRAIL = expect(302, 403, 403, 403, 200, 403, 200, 200)
TRAIL_EVENT = expect(302, 404, 404, 404, 200, 404, 200, 200)
AUDITORS = expect(302, 403, 403, 403, 403, 403, 200, 200)
ADMIN_ACTION = expect(302, 403, 403, 403, 403, 403, 403, 302)
API_TRAIL = expect(401, 403, 403, 403, 200, 403, 200, 200)
API_TRAIL_EVENT = expect(401, 404, 404, 404, 200, 404, 200, 200)
API_AUDITORS = expect(401, 403, 403, 403, 403, 403, 200, 200)
EVERYONE = 8

CE_REQUEST = {"ce-specversion": "1.0", "ce-id": "matrix-1", "ce-type": "org.kubeflow.serving.inference.request",
              "ce-inferenceservicename": "scorer", "ce-namespace": "matrix", "ce-metadata": "{}"}


def extend_world(world) -> None:
    from audit import services as audit
    from audit.models import IngestBatch
    from console.access import roles, tokens
    from tests.factories import UserFactory

    world.audit_event = audit.record(action="endpoint.update", actor_name="m-deployer", target=world.endpoint,
                                     project=world.project, details={"old": {"min_replicas": 1},
                                                                     "new": {"min_replicas": 2}})
    world.other_audit_event = audit.record(action="endpoint.update", actor_name="m-elsewhere",
                                           target=world.other_endpoint, project=world.other_project)
    world.failed_batch = IngestBatch.objects.create(kind="kubernetes", status="failed", body=b"{}", body_size=2,
                                                    body_sha256="0" * 64, error="ValueError: boom", attempts=1)
    ingester = UserFactory(username="m-ingester", is_service_account=True, password=None, roles=[roles.INGESTER])
    _, plaintext = tokens.token_create(actor=ingester, user=ingester, name="apiserver", scopes=["ingest"])
    world.ingest_authorization = f"Bearer {plaintext}"
    _, plaintext = tokens.token_create(actor=world.users["owner"], user=world.users["owner"], name="not-ingester",
                                       scopes=["ingest"])
    world.unprivileged_ingest_authorization = f"Bearer {plaintext}"


ROUTES = {
    # --- compliance pages --------------------------------------------------------------------
    "audit:event-list": [Req(TRAIL), Req(TRAIL, query="source=console&actor=m-&q=replicas")],
    "audit:event-detail": Req(TRAIL_EVENT, kwargs={"pk": "audit_event.pk"}),
    "audit:object-history": Req(TRAIL, kwargs={"target_type": "=endpoint", "target_id": "endpoint.pk"}),
    "audit:event-export": [Req(TRAIL, kwargs={"fmt": "=csv"}), Req(TRAIL, kwargs={"fmt": "=jsonl"})],
    "audit:integrity": [Req(AUDITORS), Req(AUDITORS, method="POST")],
    "audit:batch-list": Req(AUDITORS),
    "audit:batch-detail": Req(AUDITORS, kwargs={"pk": "failed_batch.pk"}),
    "audit:batch-retry": Req(ADMIN_ACTION, method="POST", kwargs={"pk": "failed_batch.pk"}),
    # --- ingest receivers (sessions play no part) --------------------------------------------
    "ingest:kserve": [
        Req(expect(*[405] * EVERYONE), kwargs={"ingest_key": "project.ingest_key"}),
        Req(expect(*[202] * EVERYONE), method="POST", kwargs={"ingest_key": "project.ingest_key"},
            headers=CE_REQUEST),
        Req(expect(*[404] * EVERYONE), method="POST", kwargs={"ingest_key": "=not-a-project-key"},
            headers=CE_REQUEST),
    ],
    "ingest:kubernetes": [
        Req(expect(*[401] * EVERYONE), method="POST"),
        Req(expect(*[403] * EVERYONE), method="POST",
            headers={"authorization": "@unprivileged_ingest_authorization"}),
        # Authorised; the matrix posts a form, which is not an EventList.
        Req(expect(*[400] * EVERYONE), method="POST", headers={"authorization": "@ingest_authorization"}),
    ],
    # --- API ---------------------------------------------------------------------------------
    "audit-event-list": [Req(API_TRAIL), Req(API_TRAIL, query="endpoint=@endpoint.pk&outcome=success")],
    "audit-event-detail": Req(API_TRAIL_EVENT, kwargs={"pk": "audit_event.pk"}),
    "audit-event-export": Req(API_TRAIL, kwargs={"fmt": "=jsonl"}),
    "audit-seal-list": Req(API_AUDITORS),
    "audit-verify": Req(API_AUDITORS, method="POST"),
    "audit-ingest-batch-list": Req(API_AUDITORS),
    "audit-ingest-batch-detail": Req(API_AUDITORS, kwargs={"pk": "failed_batch.pk"}),
    "audit-ingest-batch-retry": Req(expect(401, 403, 403, 403, 403, 403, 403, 202), method="POST",
                                    kwargs={"pk": "failed_batch.pk"}),
}
