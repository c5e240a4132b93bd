"""Storage connections on the cluster, over real HTTP against the sandbox: the Secret and the
ServiceAccount land before the InferenceService that needs them, out-of-band edits are repaired
and audited without values, unused ones are removed, rotation updates the Secret and restarts
only what reads the secret at start, and a connection in use cannot be deleted."""

from __future__ import annotations

import base64
import contextlib
import json

import botocore.exceptions
import pytest
from django.core.exceptions import ValidationError

from audit.models import AuditEvent
from endpoints.models import Endpoint, Revision
from endpoints.sandbox.objectstore import Identity
from endpoints.services import connections as services
from endpoints.services.endpoints import endpoint_create, endpoint_delete
from endpoints.services.reconciler import reconcile_cluster
from tests.endpoints.endpoint_factories import ModelVersionFactory, deploy_setup
from tests.fixtures.storage import s3_client

pytestmark = pytest.mark.django_db
SECRET = "SECRET-s3-key-7f3a9c2e1b"
TOKEN = "hf_SECRETtoken_55aa33"


FRAUD = Identity(access_key="AKIAFRAUD", secret_key=SECRET, name="fraud")


@pytest.fixture
def private_bucket(s3_server) -> str:
    """The connection's keys and the artifacts its endpoints load, on the real S3 server: the
    sandbox runs KServe's storage initializer against it, as a cluster would."""
    if FRAUD not in s3_server.identities:
        s3_server.reload_identities([*s3_server.identities, FRAUD])
    client = s3_client(s3_server)
    with contextlib.suppress(botocore.exceptions.ClientError):  # already made by an earlier test
        client.create_bucket(Bucket="private")
    client.put_object(Bucket="private", Key="scorer/model.joblib", Body=b"a model")
    return s3_server.endpoint_url


@pytest.fixture
def setup(sandbox, alice, private_bucket):
    setup = deploy_setup(actor=alice, api_url=sandbox.url, project_name="fraud")
    setup.store_url = private_bucket
    return setup


def _connection(alice, setup, kind="s3", name="models"):
    if kind == "hf":
        return services.connection_create(actor=alice, project=setup.project, name=name, kind="hf",
                                           secrets={"token": TOKEN})
    return services.connection_create(actor=alice, project=setup.project, name=name, kind="s3",
                                       config={"endpoint_url": setup.store_url, "region": "us-east-1"},
                                       secrets={"access_key_id": "AKIAFRAUD", "secret_access_key": SECRET})


def _deploy(setup, alice, capture, connection, name="scorer", uri=None):
    version = ModelVersionFactory(model=setup.model, storage_uri=uri or f"s3://private/{name}", connection=connection,
                                  version=setup.model.versions.count() + 1)
    with capture(execute=True):
        return endpoint_create(actor=alice, project=setup.project, name=name, model_version=version,
                               deployment_mode="Knative")


def _secret_data(sandbox, name="ic-models") -> dict:
    secret = sandbox.server.store.get("secrets", "fraud", name)
    return {k: base64.b64decode(v).decode() for k, v in (secret or {}).get("data", {}).items()}


def _no_secret_in_audit(*values):
    for event in AuditEvent.objects.all():
        text = json.dumps(event.details, default=str) + event.target_repr
        for value in values:
            assert value not in text, f"{event.action} leaks a secret"


def test_the_secret_and_account_land_before_the_endpoint_that_runs_as_them(
        sandbox, setup, alice, django_capture_on_commit_callbacks):
    connection = _connection(alice, setup)
    _deploy(setup, alice, django_capture_on_commit_callbacks, connection)
    live = sandbox.wait_ready("fraud", "scorer")
    assert live["spec"]["predictor"]["serviceAccountName"] == "ic-models"
    assert _secret_data(sandbox) == {"AWS_ACCESS_KEY_ID": "AKIAFRAUD", "AWS_SECRET_ACCESS_KEY": SECRET}
    account = sandbox.server.store.get("serviceaccounts", "fraud", "ic-models")
    assert account["secrets"] == [{"name": "ic-models"}]
    patches = [(r.resource, r.name) for r in sandbox.server.requests() if r.verb == "patch" and not r.dry_run]
    assert patches.index(("secrets", "ic-models")) < patches.index(("inferenceservices", "scorer"))
    applied = AuditEvent.objects.filter(action="endpoint.apply").latest("id")
    assert applied.details["connections"] == ["models"]
    _no_secret_in_audit(SECRET, "AKIAFRAUD")


def test_an_out_of_band_edit_of_the_secret_is_repaired_and_audited_without_values(
        sandbox, setup, alice, django_capture_on_commit_callbacks):
    connection = _connection(alice, setup)
    _deploy(setup, alice, django_capture_on_commit_callbacks, connection)
    sandbox.wait_ready("fraud", "scorer")
    stolen = base64.b64encode(b"attacker-key").decode()
    sandbox.server.store.patch("secrets", "fraud", "ic-models", {"data": {"AWS_SECRET_ACCESS_KEY": stolen}},
                               manager="kubectl-edit")
    report = reconcile_cluster(cluster=setup.cluster)
    assert report.get("connection_objects_repaired") == 1
    assert _secret_data(sandbox)["AWS_SECRET_ACCESS_KEY"] == SECRET
    event = AuditEvent.objects.get(action="connection.drift_corrected")
    assert event.details["changed"] == ["data"] and event.details["connection"] == "models"
    _no_secret_in_audit(SECRET, "attacker-key", stolen)
    # A second pass finds nothing to do.
    again = reconcile_cluster(cluster=setup.cluster)
    assert not again.get("connection_objects_repaired")


def test_objects_no_endpoint_needs_are_removed_within_the_cap(sandbox, setup, alice,
                                                              django_capture_on_commit_callbacks):
    connection = _connection(alice, setup)
    endpoint = _deploy(setup, alice, django_capture_on_commit_callbacks, connection)
    sandbox.wait_ready("fraud", "scorer")
    with django_capture_on_commit_callbacks(execute=True):
        endpoint_delete(actor=alice, endpoint=endpoint)
    sandbox.wait_for(lambda: sandbox.isvc("fraud", "scorer") is None)
    assert not Endpoint.objects.filter(pk=endpoint.pk).exists()
    reconcile_cluster(cluster=setup.cluster, max_deletions=0)  # over the cap: nothing deleted
    assert sandbox.server.store.get("secrets", "fraud", "ic-models") is not None
    report = reconcile_cluster(cluster=setup.cluster)
    assert report["deleted"] == 2
    assert sandbox.server.store.get("secrets", "fraud", "ic-models") is None
    assert sandbox.server.store.get("serviceaccounts", "fraud", "ic-models") is None
    assert AuditEvent.objects.filter(action="connection.object_deleted").count() == 2


def test_a_fleet_without_connections_still_costs_one_list_per_namespace(sandbox, setup, alice,
                                                                        django_capture_on_commit_callbacks):
    reconcile_cluster(cluster=setup.cluster)
    before = len(sandbox.server.requests())
    reconcile_cluster(cluster=setup.cluster)
    lists = [r for r in sandbox.server.requests()[before:] if r.verb == "list"]
    assert [r.resource for r in lists] == ["inferenceservices"]


def test_deleting_a_connection_in_use_is_refused_with_the_list(sandbox, setup, alice,
                                                               django_capture_on_commit_callbacks):
    connection = _connection(alice, setup)
    _deploy(setup, alice, django_capture_on_commit_callbacks, connection)
    with pytest.raises(ValidationError) as err:
        services.connection_delete(actor=alice, connection=connection)
    assert "fraud/scorer" in str(err.value)


def test_rotation_updates_the_secret_and_restarts_only_endpoints_reading_it_at_start(
        sandbox, setup, alice, django_capture_on_commit_callbacks):
    s3 = _connection(alice, setup)
    hf = _connection(alice, setup, kind="hf", name="hub")
    storage_endpoint = _deploy(setup, alice, django_capture_on_commit_callbacks, s3, name="scorer")
    llm = _deploy(setup, alice, django_capture_on_commit_callbacks, hf, name="chat", uri="hf://org/model")
    sandbox.wait_ready("fraud", "scorer")
    sandbox.wait_ready("fraud", "chat")
    plan = services.rotation_plan(hf)
    assert [e.name for e in plan["restart"]] == ["chat"]
    assert [e.name for e in services.rotation_plan(s3)["restart"]] == []
    with django_capture_on_commit_callbacks(execute=True):
        services.connection_update(actor=alice, connection=s3, secrets={"secret_access_key": "SECRET-new-2"})
        services.connection_update(actor=alice, connection=hf, secrets={"token": "hf_SECRET_new_3"})
    assert _secret_data(sandbox)["AWS_SECRET_ACCESS_KEY"] == "SECRET-new-2"
    assert _secret_data(sandbox, "ic-hub")["HF_TOKEN"] == "hf_SECRET_new_3"
    assert Revision.objects.filter(endpoint=storage_endpoint).count() == 1  # keeps running as it is
    llm.refresh_from_db()
    assert llm.generation == 2
    live = sandbox.wait_for(lambda: (o := sandbox.isvc("fraud", "chat"))
                            and o["spec"]["predictor"].get("annotations") and o)
    assert live["spec"]["predictor"]["annotations"] == {"inference-console.io/credentials-version": "hub.2"}
    rotations = AuditEvent.objects.filter(action="connection.rotate").order_by("id")
    assert [e.details["restarted"] for e in rotations] == [[], ["fraud/chat"]]
    _no_secret_in_audit(SECRET, TOKEN, "SECRET-new-2", "hf_SECRET_new_3")


def test_keys_revoked_at_the_store_keep_the_running_revision_and_fail_the_next_with_the_connection_named(
        sandbox, setup, alice, client, own_s3_server, django_capture_on_commit_callbacks):
    """KServe downloads only when a pod starts: after the store stops accepting the connection's
    keys the running revision keeps serving, the next new revision fails with the storage
    initializer's own message, and the endpoint page says which connection failed and why."""
    from django.urls import reverse

    from endpoints.services.endpoints import endpoint_update
    from endpoints.services.observation import endpoint_sync_status
    from tests.endpoints.endpoint_factories import grant
    from tests.fixtures.storage import new_identity

    store = own_s3_server
    keys = store.identities[0]
    s3_client(store).create_bucket(Bucket="rotating")
    s3_client(store).put_object(Bucket="rotating", Key="scorer/model.joblib", Body=b"a model")
    connection = services.connection_create(
        actor=alice, project=setup.project, name="rotating", kind="s3",
        config={"endpoint_url": store.endpoint_url, "region": "us-east-1"},
        secrets={"access_key_id": keys.access_key, "secret_access_key": keys.secret_key})
    endpoint = _deploy(setup, alice, django_capture_on_commit_callbacks, connection, name="scorer",
                       uri="s3://rotating/scorer")
    first = sandbox.wait_ready("fraud", "scorer", timeout=60)
    serving = first["status"]["components"]["predictor"]["latestReadyRevision"]
    # The store's administrators replace the keys; the connection still holds the old ones.
    store.reload_identities([new_identity()])
    old = s3_client(store, access_key=keys.access_key, secret_key=keys.secret_key)

    def keys_refused() -> bool:
        try:
            old.list_objects_v2(Bucket="rotating", MaxKeys=1)
        except botocore.exceptions.ClientError:
            return True
        return False
    sandbox.wait_for(keys_refused, timeout=10, message="the store to refuse the old keys")
    assert sandbox.isvc("fraud", "scorer")["status"]["components"]["predictor"]["latestReadyRevision"] == serving
    with django_capture_on_commit_callbacks(execute=True):
        endpoint_update(actor=alice, endpoint=endpoint, max_replicas=3)  # a new revision: a new download

    def failed():
        obj = sandbox.isvc("fraud", "scorer") or {}
        failure = ((obj.get("status") or {}).get("modelStatus") or {}).get("lastFailureInfo") or {}
        return failure.get("message") and obj
    live = sandbox.wait_for(failed, timeout=60, message="the new revision's download to fail")
    predictor = live["status"]["components"]["predictor"]
    assert predictor["latestReadyRevision"] == serving != predictor["latestCreatedRevision"]
    assert predictor["latestRolledoutRevision"] == serving  # the old revision keeps the traffic
    endpoint_sync_status(endpoint_id=endpoint.pk)
    grant(alice, setup.project, "view")
    client.force_login(alice)
    page = client.get(reverse("endpoints:endpoint-detail", kwargs={"project": "fraud", "name": "scorer"}))
    text = page.content.decode()
    assert "connection rotating" in text and "ServiceAccount ic-rotating" in text
    assert "403" in text  # the store's own refusal, as KServe's storage initializer reports it
    assert keys.secret_key not in text
