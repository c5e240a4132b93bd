"""What the console writes on a cluster for each kind of storage connection is exactly what
KServe's credential builder reads (kserve.md §4, pkg/credentials at each release), and the
InferenceService that uses one is valid for the CRD of every release the console supports."""

from __future__ import annotations

import base64
import json

import pytest
import yaml

from endpoints import connections as rules
from endpoints.capabilities import Capabilities
from endpoints.reconcile import render
from tests.conftest import require
from tests.endpoints.crd_schema import strict_schema
from tests.endpoints.test_render import make_spec
from tests.fixtures.kube import KSERVE_RELEASES, KSERVE_VERSIONS_DIR

SA_JSON = json.dumps({"type": "service_account", "client_email": "svc@p.iam.gserviceaccount.com",
                      "private_key": "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n"})
CASES = {
    "s3": ({"endpoint_url": "https://minio.internal:9000", "region": "eu-west-1", "verify_tls": False,
            "addressing": "virtual"}, {"access_key_id": "AKIA1", "secret_access_key": "s3cr3t"}),
    "gcs": ({"project": "p"}, {"service_account_json": SA_JSON}),
    "azure": ({"account_name": "acct"}, {"account_key": "a2V5"}),
    "hf": ({}, {"token": "hf_abc"}),
    "oci": ({"registry": "registry.example.com", "username": "robot"}, {"password": "pw"}),
    "https": ({"host": "models.example.com"}, {"headers": '{"Authorization": "Bearer t"}'}),
}


def _objects(kind: str, capabilities=None, **extra) -> dict[str, dict]:
    config, secrets = CASES[kind]
    config = rules.clean_config(kind, {**config, **extra})
    secrets = rules.clean_secrets(kind, config, secrets)
    objects = rules.cluster_objects(connection_name="store", platform=False, kind=kind, config=config,
                                    secrets=secrets, secret_version=3, namespace="team", capabilities=capabilities)
    return {o["kind"]: o for o in objects}


def _data(secret: dict) -> dict[str, str]:
    return {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}


def _release_reading(release: str) -> Capabilities:
    configmap = KSERVE_VERSIONS_DIR / release / "configmap" / "inferenceservice.yaml"
    require(configmap.is_file(), f"KServe {release} reference config not found at {configmap}")
    major, minor, patch = (int(p) for p in release.split("."))
    return Capabilities(reachable=True, authenticated=True, kserve=True, release=[major, minor, patch],
                        release_exact=True, isvc_config=yaml.safe_load(configmap.read_text()))


def test_s3_secret_has_the_key_names_and_annotations_kserve_reads():
    objects = _objects("s3", Capabilities(isvc_config={"data": {"credentials": json.dumps(
        {"s3": {"s3AccessKeyIDName": "AWS_ACCESS_KEY_ID", "s3SecretAccessKeyName": "AWS_SECRET_ACCESS_KEY"}})}}))
    secret = objects["Secret"]
    assert secret["type"] == "Opaque"
    assert _data(secret) == {"AWS_ACCESS_KEY_ID": "AKIA1", "AWS_SECRET_ACCESS_KEY": "s3cr3t"}
    annotations = secret["metadata"]["annotations"]
    assert annotations == {
        "serving.kserve.io/s3-endpoint": "https://minio.internal:9000", "serving.kserve.io/s3-usehttps": "1",
        "serving.kserve.io/s3-region": "eu-west-1", "serving.kserve.io/s3-verifyssl": "0",
        "serving.kserve.io/s3-usevirtualbucket": "true", "inference-console.io/secret-version": "3"}
    # The ServiceAccount lists the secret in ``secrets`` (KServe ignores imagePullSecrets there).
    assert objects["ServiceAccount"]["secrets"] == [{"name": "ic-store"}]
    assert "imagePullSecrets" not in objects["ServiceAccount"]


def test_s3_key_names_follow_the_controller_defaults_when_the_config_does_not_name_them():
    secret = _objects("s3", Capabilities(isvc_config={"data": {}}))["Secret"]
    assert set(_data(secret)) == {"awsAccessKeyID", "awsSecretAccessKey"}


def test_anonymous_s3_keeps_empty_keys_so_kserve_still_sees_an_s3_secret():
    config = rules.clean_config("s3", {"endpoint_url": "http://127.0.0.1:9000", "anonymous": True})
    objects = rules.cluster_objects(connection_name="pub", platform=True, kind="s3", config=config,
                                    secrets=rules.clean_secrets("s3", config, {}), secret_version=1,
                                    namespace="team", capabilities=None)
    secret = next(o for o in objects if o["kind"] == "Secret")
    assert secret["metadata"]["name"] == "ic-shared-pub"
    assert _data(secret) == {"awsAccessKeyID": "", "awsSecretAccessKey": ""}
    assert secret["metadata"]["annotations"]["serving.kserve.io/s3-useanoncredential"] == "true"
    assert secret["metadata"]["annotations"]["serving.kserve.io/s3-usehttps"] == "0"


def test_s3_ca_bundle_is_a_configmap_kserve_mounts():
    pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    objects = _objects("s3", None, ca_bundle=pem)
    assert objects["ConfigMap"]["data"] == {"cabundle.crt": pem}
    assert objects["Secret"]["metadata"]["annotations"]["serving.kserve.io/s3-cabundle-configmap"] == "ic-store-ca"


@pytest.mark.parametrize(("kind", "expected"), [
    ("gcs", {"gcloud-application-credentials.json": SA_JSON}),
    ("azure", {"AZURE_STORAGE_ACCESS_KEY": "a2V5"}),
    ("hf", {"HF_TOKEN": "hf_abc"}),
    ("https", {"https-host": "models.example.com", "headers": '{"Authorization": "Bearer t"}'}),
])
def test_secret_data_per_kind(kind, expected):
    assert _data(_objects(kind)["Secret"]) == expected


def test_azure_service_principal_uses_kserve_s_current_key_names():
    config = rules.clean_config("azure", {"account_name": "acct", "tenant_id": "t", "client_id": "c"})
    data, _annotations, _type = rules.secret_data("azure", config, {"client_secret": "cs"}, None)
    assert data == {"AZURE_CLIENT_ID": "c", "AZURE_TENANT_ID": "t", "AZURE_CLIENT_SECRET": "cs"}


def test_oci_is_a_dockerconfigjson_pull_secret_on_the_account_and_the_predictor():
    objects = _objects("oci")
    secret = objects["Secret"]
    assert secret["type"] == "kubernetes.io/dockerconfigjson"
    config = json.loads(_data(secret)[".dockerconfigjson"])
    entry = config["auths"]["registry.example.com"]
    assert entry["username"] == "robot" and base64.b64decode(entry["auth"]).decode() == "robot:pw"
    assert objects["ServiceAccount"]["imagePullSecrets"] == [{"name": "ic-store"}]
    assert "secrets" not in objects["ServiceAccount"]


@pytest.mark.parametrize(("kind", "uri", "problem"), [
    ("s3", "s3://bucket/model", None),
    ("s3", "gs://bucket/model", "serves s3:// URIs"),
    ("gcs", "gs://bucket/m", None),
    ("azure", "https://acct.blob.core.windows.net/c/m", None),
    ("azure", "https://other.blob.core.windows.net/c/m", "is not the connection's"),
    ("azure", "https://example.com/c/m", "blob.core.windows.net"),
    ("hf", "hf://org/model", None),
    ("oci", "oci://registry.example.com/models/x:1", None),
    ("oci", "oci://docker.io/models/x:1", "are for registry.example.com"),
    ("https", "https://models.example.com/m.tgz", None),
    ("https", "https://elsewhere.example.com/m.tgz", "headers are for models.example.com"),
])
def test_a_connection_serves_only_uris_of_its_kind(kind, uri, problem):
    config = rules.clean_config(kind, CASES[kind][0])
    found = rules.uri_problem(kind, config, uri)
    assert (found is None) if problem is None else (problem in found)


def test_secrets_missing_or_malformed_are_refused_by_field():
    with pytest.raises(rules.ConnectionError_) as err:
        rules.clean_secrets("s3", rules.clean_config("s3", {}), {"access_key_id": "AKIA"})
    assert err.value.field == "secret_access_key"
    with pytest.raises(rules.ConnectionError_) as err:
        rules.clean_secrets("gcs", {}, {"service_account_json": '{"type": "user"}'})
    assert err.value.field == "service_account_json"
    with pytest.raises(rules.ConnectionError_) as err:
        rules.clean_secrets("https", rules.clean_config("https", {"host": "h"}), {"headers": "[1]"})
    assert err.value.field == "headers"
    with pytest.raises(rules.ConnectionError_) as err:
        rules.clean_config("s3", {"endpoint_url": "ftp://x"})
    assert err.value.field == "endpoint_url"


def test_blank_secret_fields_keep_the_stored_ones():
    config = rules.clean_config("s3", {})
    kept = rules.clean_secrets("s3", config, {"access_key_id": "", "secret_access_key": "new"},
                               previous={"access_key_id": "OLD", "secret_access_key": "old"})
    assert kept == {"access_key_id": "OLD", "secret_access_key": "new"}


def _spec_with(kind: str, **extra) -> dict:
    connection = {"id": 1, "name": "store", "kind": kind, "object_name": "ic-store", **extra}
    spec = make_spec()
    spec["model"] = {**spec["model"], "connection": connection,
                     "storage_uri": rules.KINDS[kind].example_uri.replace("account", "acct")}
    return spec


def test_the_predictor_runs_as_the_connection_s_account():
    predictor = render(_spec_with("s3"))["spec"]["predictor"]
    assert predictor["serviceAccountName"] == "ic-store"
    assert "imagePullSecrets" not in predictor and "annotations" not in predictor
    oci = render(_spec_with("oci"))["spec"]["predictor"]
    assert oci["imagePullSecrets"] == [{"name": "ic-store"}]
    hf = render(_spec_with("hf", secret_version=4))["spec"]["predictor"]
    assert {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "ic-store", "key": "HF_TOKEN"}}} \
        in hf["model"]["env"]
    assert hf["annotations"] == {"inference-console.io/credentials-version": "store.4"}


def test_a_canary_runs_as_its_own_version_s_connection():
    spec = _spec_with("s3")
    spec["canary"] = {"version_id": 2, "version": 2, "storage_uri": "gs://b/m", "traffic_percent": 10,
                      "connection": {"id": 2, "name": "gcs", "kind": "gcs", "object_name": "ic-gcs"}}
    assert render(spec)["spec"]["predictor"]["serviceAccountName"] == "ic-gcs"


def test_an_old_revision_without_connections_renders_as_before():
    spec = make_spec()
    assert "connection" not in spec["model"]
    assert "serviceAccountName" not in render(spec)["spec"]["predictor"]


def _release_isvc_validator(release: str):
    from jsonschema import Draft7Validator

    path = KSERVE_VERSIONS_DIR / release / "crds" / "inferenceservices.yaml"
    require(path.is_file(), f"KServe {release} CRDs not found at {path}")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    crd = next(d for d in yaml.load_all(path.read_text(), Loader=loader)  # noqa: S506 - a safe loader
               if d and d.get("kind") == "CustomResourceDefinition")
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1beta1")
    return Draft7Validator(strict_schema(version["schema"]["openAPIV3Schema"]))


@pytest.mark.parametrize("release", KSERVE_RELEASES)
def test_every_kind_renders_valid_for_each_release_with_its_key_names(release):
    reading = _release_reading(release)
    validator = _release_isvc_validator(release)
    credentials = json.loads(reading.isvc_config["data"]["credentials"])
    assert reading.s3_key_names == (credentials["s3"]["s3AccessKeyIDName"], credentials["s3"]["s3SecretAccessKeyName"])
    assert set(_data(_objects("s3", reading)["Secret"])) == set(reading.s3_key_names)
    assert set(_data(_objects("gcs", reading)["Secret"])) == {credentials["gcs"]["gcsCredentialFileName"]}
    for kind in rules.KINDS:
        manifest = render(_spec_with(kind, **({"secret_version": 1} if kind == "hf" else {})), reading)
        errors = [e.message for e in validator.iter_errors(manifest)]
        assert not errors, f"{kind} on {release}: {errors[:3]}"


def test_hugging_face_tokens_reach_the_storage_initializer_only_from_0_14():
    connection = {"id": 1, "name": "hf", "kind": "hf", "object_name": "ic-hf", "secret_version": 1}
    old = _release_reading("0.13.1")
    assert "0.14" in rules.release_problem(connection, "hf://org/model", old)
    assert rules.release_problem(connection, "hf://org/model", _release_reading("0.14.1")) is None
    # A runtime that downloads from the Hub itself still gets HF_TOKEN from the Secret on 0.13.
    assert rules.release_problem(connection, "pvc://cache/model", old) is None
