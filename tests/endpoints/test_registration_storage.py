"""Registering a model version with a storage connection checks the artifact against the real S3
server with the connection's keys: a missing bucket, a missing key and wrong credentials (the
server's own 403) are refused with the storage's answer and store nothing; a good URI registers;
the plan says the same before an apply."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from rest_framework.test import APIClient

from audit.models import AuditEvent
from endpoints.models import ModelVersion
from endpoints.services import connections as services
from endpoints.services.registry import model_version_create
from tests.endpoints.endpoint_factories import deploy_setup, grant
from tests.fixtures.storage import s3_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(alice, s3_server, s3_bucket):
    setup = deploy_setup(actor=alice)
    grant(alice, setup.project, "view", "deploy", "manage")
    s3_client(s3_server).put_object(Bucket=s3_bucket, Key="scorer/3/model.joblib", Body=b"model bytes")
    identity = s3_server.identities[0]
    good = services.connection_create(
        actor=alice, project=setup.project, name="private", kind="s3",
        config={"endpoint_url": s3_server.endpoint_url, "region": "us-east-1"},
        secrets={"access_key_id": identity.access_key, "secret_access_key": identity.secret_key})
    wrong = services.connection_create(
        actor=alice, project=setup.project, name="stale", kind="s3",
        config={"endpoint_url": s3_server.endpoint_url, "region": "us-east-1"},
        secrets={"access_key_id": identity.access_key, "secret_access_key": "SECRET-wrong-key-000"})
    return setup, good, wrong, s3_bucket


def _register(setup, connection, uri):
    return model_version_create(actor=setup.model.owner, model=setup.model, storage_uri=uri, model_format="sklearn",
                                connection=connection)


def test_a_readable_artifact_registers_and_the_check_is_recorded(world):
    setup, good, _wrong, bucket = world
    version = _register(setup, good, f"s3://{bucket}/scorer/3")
    assert version.connection == good
    event = AuditEvent.objects.get(action="modelversion.create", target_id=str(version.pk))
    assert event.details["new"]["connection"] == "private" and event.details["new"]["storage_check"] == "ok"


@pytest.mark.parametrize(("uri", "expected"), [
    ("s3://{bucket}-absent/scorer/3", "does not exist"),
    ("s3://{bucket}/scorer/99", "scorer/99"),
])
def test_missing_bucket_or_key_is_refused_with_the_storage_answer(world, uri, expected):
    setup, good, _wrong, bucket = world
    before = ModelVersion.objects.count()
    with pytest.raises(ValidationError) as err:
        _register(setup, good, uri.format(bucket=bucket))
    message = " ".join(err.value.message_dict["storage_uri"])
    assert expected in message and "connection private" in message
    assert ModelVersion.objects.count() == before


def test_wrong_credentials_get_the_server_s_own_403(world):
    setup, _good, wrong, bucket = world
    with pytest.raises(ValidationError) as err:
        _register(setup, wrong, f"s3://{bucket}/scorer/3")
    message = " ".join(err.value.message_dict["storage_uri"])
    assert "SignatureDoesNotMatch" in message and "SECRET-wrong-key-000" not in message


def test_an_unreachable_store_can_be_registered_only_when_asked(world, alice):
    setup, _good, _wrong, _bucket = world
    offline = services.connection_create(
        actor=alice, project=setup.project, name="offline", kind="s3",
        config={"endpoint_url": "http://127.0.0.1:9", "region": "us-east-1"},
        secrets={"access_key_id": "AKIA", "secret_access_key": "SECRET-x"})
    with pytest.raises(ValidationError) as err:
        _register(setup, offline, "s3://models/scorer/3")
    assert "register without the check" in " ".join(err.value.message_dict["storage_uri"])
    version = model_version_create(actor=alice, model=setup.model, storage_uri="s3://models/scorer/3",
                                   model_format="sklearn", connection=offline, skip_storage_check=True)
    assert version.connection == offline


def test_the_page_and_the_api_refuse_with_the_field_message(world, client, alice):
    setup, good, wrong, bucket = world
    client.force_login(alice)
    url = reverse("endpoints:version-create", kwargs={"pk": setup.model.pk})
    response = client.post(url, {"storage_uri": f"s3://{bucket}/scorer/3", "model_format": "sklearn",
                                 "connection": wrong.pk, "input_signature": ""})
    assert response.status_code in (200, 400)  # the form shown again with the storage's answer
    assert "SignatureDoesNotMatch" in " ".join(response.context["form"].errors["storage_uri"])
    api = APIClient()
    api.force_authenticate(alice)
    answer = api.post(f"/api/v1/models/{setup.model.pk}/versions/",
                      {"storage_uri": f"s3://{bucket}/scorer/404", "model_format": "sklearn", "connection": good.pk},
                      format="json")
    assert answer.status_code == 400 and "storage_uri" in answer.json()["errors"]
    created = api.post(f"/api/v1/models/{setup.model.pk}/versions/",
                       {"storage_uri": f"s3://{bucket}/scorer/3", "model_format": "sklearn", "connection": good.pk},
                       format="json")
    assert created.status_code == 201 and created.json()["connection_name"] == "private"


def test_a_connection_of_another_kind_or_project_is_refused(world, alice):
    setup, good, _wrong, _bucket = world
    with pytest.raises(ValidationError):
        _register(setup, good, "gs://bucket/model")
    other = deploy_setup(actor=alice, project_name="other")
    with pytest.raises(ValidationError) as err:
        model_version_create(actor=alice, model=other.model, storage_uri="s3://b/m", model_format="sklearn",
                             connection=good)
    assert "not available in project other" in str(err.value)
