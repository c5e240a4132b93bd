"""Shared setup of the storage-connection page and API tests: two projects with people holding
roles through grants, connections made through the services, and distinctive secret strings
that must never come back in a response, an audit event or a log line."""

from __future__ import annotations

import json
from types import SimpleNamespace

from console.access import grants, roles
from endpoints.services.connections import connection_create
from tests.endpoints.registry_factories import (
    EndpointFactory,
    ModelVersionFactory,
    ProjectFactory,
    RegisteredModelFactory,
)
from tests.factories import UserFactory

ACCESS_KEY = "AKIA-SECRET-abc123-ACCESS"
SECRET_KEY = "SECRET-abc123-s3-secret-access-key"
NEW_SECRET_KEY = "SECRET-abc123-rotated-s3-key"
HF_TOKEN = "hf_SECRET-abc123-huggingface-token"
NEW_HF_TOKEN = "hf_SECRET-abc123-rotated-token"
OTHER_SECRET = "SECRET-abc123-other-tenant-key"
GCS_PRIVATE_KEY = "SECRET-abc123-gcs-private-key"
TYPED_SECRET = "SECRET-abc123-typed-into-a-failing-form"
SECRETS = (ACCESS_KEY, SECRET_KEY, NEW_SECRET_KEY, HF_TOKEN, NEW_HF_TOKEN, OTHER_SECRET, GCS_PRIVATE_KEY,
           TYPED_SECRET)
# Every secret string above shares this marker: one search finds any of them, even cut short.
MARKER = "SECRET-abc123"

S3_CONFIG = {"endpoint_url": "https://minio.fraud.example.com", "region": "eu-west-1"}
GCS_KEY = json.dumps({"type": "service_account", "client_email": "loader@proj.iam.gserviceaccount.com",
                      "private_key": GCS_PRIVATE_KEY})


def assert_no_secret(text: str | bytes, where: str = "response") -> None:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    for secret in (MARKER, *SECRETS):
        assert secret not in text, f"a secret value ({secret[:16]}…) appears in the {where}"


def build() -> SimpleNamespace:
    """Project ``fraud`` (owner, deployer, viewer hold roles through grants), project
    ``secret-team`` (the outsider's IDOR target), a platform admin, an S3 connection on each
    project and a platform-wide Hugging Face connection that ``secret-team`` opted into."""
    roles.ensure_global_roles()
    w = SimpleNamespace()
    w.project = ProjectFactory(name="fraud")
    w.other_project = ProjectFactory(name="secret-team")
    w.admin = UserFactory(username="root", is_superuser=True, is_staff=True, roles=[roles.PLATFORM_ADMIN])
    w.auditor = UserFactory(username="auditor", roles=[roles.AUDITOR])
    w.outsider = UserFactory(username="mallory")
    for role in ("owner", "deployer", "viewer"):
        user = UserFactory(username=f"fraud-{role}")
        grants.grant_create(actor=None, role=role, target=w.project, user=user, reason="test")
        setattr(w, role, user)
    w.other_owner = UserFactory(username="other-owner")
    grants.grant_create(actor=None, role="owner", target=w.other_project, user=w.other_owner, reason="test")
    w.connection = connection_create(actor=w.owner, project=w.project, name="fraud-store", kind="s3",
                                     config=S3_CONFIG, secrets={"access_key_id": ACCESS_KEY,
                                                                "secret_access_key": SECRET_KEY},
                                     display_name="Fraud models", description="MinIO of the fraud team")
    w.other_connection = connection_create(actor=w.other_owner, project=w.other_project, name="hidden-store",
                                           kind="s3", config=S3_CONFIG,
                                           secrets={"access_key_id": "AKIA-other", "secret_access_key": OTHER_SECRET})
    w.shared = connection_create(actor=w.admin, project=None, name="shared-hf", kind="hf",
                                 secrets={"token": HF_TOKEN}, display_name="Hugging Face")
    from endpoints.services.connections import connection_opt_in

    connection_opt_in(actor=w.other_owner, connection=w.shared, project=w.other_project)
    return w


def deployed(project, connection, *, name: str = "scorer"):
    """A model version stored behind ``connection`` and an endpoint serving it."""
    model = RegisteredModelFactory(project=project, name=f"{name}-model")
    version = ModelVersionFactory(model=model, connection=connection,
                                  storage_uri=f"s3://models/{name}/v1" if connection.kind == "s3" else "hf://org/m")
    endpoint = EndpointFactory(model_version=version, name=name)
    return version, endpoint
