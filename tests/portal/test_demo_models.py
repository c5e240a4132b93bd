"""With the demo object store (make run starts one), the demo's iris versions are models trained
at seed time on the iris data scikit-learn ships — no download — kept in the private bucket and
registered with its storage connection, with reference samples made of the model's own
predictions; the sandbox's cluster gets the gateway address make run gives it."""

from __future__ import annotations

import io
import json

import joblib
import pytest
from sklearn.datasets import load_iris

from console.portal import demo
from endpoints.models import Cluster, RegisteredModel
from tests.fixtures.storage import s3_client
from tests.portal.test_demo import demo_sandbox  # noqa: F401  (fixture)

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo_bucket(s3_server, tmp_path, monkeypatch):
    identity = s3_server.identities[0]
    credentials = tmp_path / "demo-s3-credentials.json"
    credentials.write_text(json.dumps({"access_key_id": identity.access_key,
                                       "secret_access_key": identity.secret_key}))
    monkeypatch.setenv("DEMO_S3_ENDPOINT_URL", s3_server.endpoint_url)
    monkeypatch.setenv("DEMO_S3_CREDENTIALS_FILE", str(credentials))
    return s3_server


def test_iris_versions_are_trained_at_seed_time_and_served_from_the_demo_bucket(
        demo_sandbox, demo_bucket, alice, bob, monkeypatch):  # noqa: F811
    monkeypatch.setenv("SANDBOX_GATEWAY_ADDRESS", "127.0.0.1:18081")
    demo.seed()
    iris = RegisteredModel.objects.get(name="iris-classifier")
    v1, v2 = iris.versions.order_by("version")
    assert v1.storage_uri == "s3://fraud-models-private/iris-classifier/v1"
    assert v2.storage_uri == "s3://fraud-models-private/iris-classifier/v2"
    assert v1.connection.name == v2.connection.name == "fraud-models-s3"
    features, species = load_iris(return_X_y=True)
    client = s3_client(demo_bucket)
    kinds = set()
    for version in (v1, v2):
        key = version.storage_uri.removeprefix("s3://fraud-models-private/") + "/model.joblib"
        model = joblib.load(io.BytesIO(client.get_object(Bucket="fraud-models-private", Key=key)["Body"].read()))
        assert (model.predict(features) == species).mean() > 0.9
        kinds.add(type(model).__name__)
        profile = version.reference_profile
        assert [f["name"] for f in profile["features"]] == list(demo.IRIS_FEATURES)
    assert kinds == {"LogisticRegression", "RandomForestClassifier"}
    assert Cluster.objects.get(name="sandbox").gateway_address == "127.0.0.1:18081"
