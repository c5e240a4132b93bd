"""KServe's storage credential builder as the sandbox plays it, release by release
(``endpoints/sandbox/credentials.py``; each release's own ``credentials`` config from
../shared/kserve/versions). Pure: no server, no download."""

from __future__ import annotations

import base64
import functools
import json
from pathlib import Path

import pytest
import yaml

from endpoints.sandbox import profile as profiles
from endpoints.sandbox.credentials import (
    ContainerConfigError,
    CredentialBuilder,
    CredentialConfig,
    CredentialError,
    EnvVar,
    resolve,
)
from endpoints.sandbox.profile import ReleaseFacts
from tests.conftest import require
from tests.fixtures.kube import KSERVE_RELEASES, KSERVE_VERSIONS_DIR

NS = "proj"
HF_DEFAULTS = [EnvVar("HF_HUB_ENABLE_HF_TRANSFER", "1"), EnvVar("HF_XET_HIGH_PERFORMANCE", "1"),
               EnvVar("HF_XET_NUM_CONCURRENT_RANGE_GETS", "8")]
A = "serving.kserve.io/"
pytestmark = pytest.mark.shared


@functools.cache
def _load(version: str):
    # The release's own facts and inferenceservice-config, without parsing its CRDs (slow).
    configmap = yaml.safe_load((KSERVE_VERSIONS_DIR / version / "configmap" / "inferenceservice.yaml").read_text())
    return ReleaseFacts(profiles.parse_version(version)), CredentialConfig.from_configmap(configmap)


def release(version: str):
    """The release's facts and its own ``credentials`` config."""
    folder = KSERVE_VERSIONS_DIR / version
    require(folder.is_dir(), f"KServe release data not found at {folder}")
    return _load(version)


def secret(name: str, data: dict[str, str], annotations: dict[str, str] | None = None) -> dict:
    meta = {"name": name, "namespace": NS, **({"annotations": annotations} if annotations else {})}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": meta,
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}


def build(facts, config, *secrets, account: str | None = "models", listed=None, isvc_annotations=None,
          account_annotations=None):
    by_name = {s["metadata"]["name"]: s for s in secrets}
    accounts = {}
    if account:
        accounts[account] = {"metadata": {"name": account, "namespace": NS,
                                          "annotations": account_annotations or {}},
                             "secrets": [{"name": n} for n in (listed if listed is not None else by_name)]}
    return CredentialBuilder(facts, config).build(
        namespace=NS, annotations=isvc_annotations, service_account_name=account,
        get_service_account=accounts.get, get_secret=by_name.get)


def extra(facts) -> list[EnvVar]:
    """What the injector adds after the credentials (0.16 on)."""
    return HF_DEFAULTS if facts.injects_hf_download_defaults else []


def s3_secret(**annotations) -> dict:
    return secret("s3-conn", {"AWS_ACCESS_KEY_ID": "AKIA1", "AWS_SECRET_ACCESS_KEY": "s3cr3t"},
                  {A + k.replace("_", "-"): v for k, v in annotations.items()})


KEYS = [EnvVar("AWS_ACCESS_KEY_ID", secret="s3-conn", key="AWS_ACCESS_KEY_ID"),
        EnvVar("AWS_SECRET_ACCESS_KEY", secret="s3-conn", key="AWS_SECRET_ACCESS_KEY")]


@pytest.mark.parametrize("version", KSERVE_RELEASES)
def test_the_console_s3_secret_gives_keys_by_reference_and_the_annotated_settings(version):
    facts, config = release(version)
    built = build(facts, config, s3_secret(s3_endpoint="127.0.0.1:9000", s3_usehttps="0", s3_region="eu-west-1",
                                           s3_verifyssl="0"))
    assert built.env == [*KEYS, EnvVar("S3_USE_HTTPS", "0"), EnvVar("S3_ENDPOINT", "127.0.0.1:9000"),
                         EnvVar("AWS_ENDPOINT_URL", "http://127.0.0.1:9000"), EnvVar("S3_VERIFY_SSL", "0"),
                         EnvVar("AWS_DEFAULT_REGION", "eu-west-1"), *extra(facts)]
    assert built.service_account == "models" and built.mounts == []
    assert built.env_manifest()[0] == {"name": "AWS_ACCESS_KEY_ID",
                                       "valueFrom": {"secretKeyRef": {"name": "s3-conn", "key": "AWS_ACCESS_KEY_ID"}}}


@pytest.mark.parametrize("version", KSERVE_RELEASES)
def test_an_endpoint_written_with_its_scheme_works_from_0_17(version):
    facts, config = release(version)
    built = build(facts, config, s3_secret(s3_endpoint="http://127.0.0.1:9000"))
    endpoint = [e for e in built.env if e.name in ("S3_USE_HTTPS", "S3_ENDPOINT", "AWS_ENDPOINT_URL")]
    if facts.s3_endpoint_scheme_prefix:
        assert endpoint == [EnvVar("S3_USE_HTTPS", "0"), EnvVar("S3_ENDPOINT", "127.0.0.1:9000"),
                            EnvVar("AWS_ENDPOINT_URL", "http://127.0.0.1:9000")]
    else:  # kept as written, and https:// put in front: boto3 gets host "http"
        assert endpoint == [EnvVar("S3_ENDPOINT", "http://127.0.0.1:9000"),
                            EnvVar("AWS_ENDPOINT_URL", "https://http://127.0.0.1:9000")]


@pytest.mark.parametrize("version", KSERVE_RELEASES)
def test_settings_in_the_secret_data_count_from_0_16(version):
    facts, config = release(version)
    data = {"AWS_ACCESS_KEY_ID": "AKIA1", "AWS_SECRET_ACCESS_KEY": "s3cr3t",
            "S3_ENDPOINT": "127.0.0.1:9000", "S3_USE_HTTPS": "0", "AWS_DEFAULT_REGION": "us-east-1"}
    built = build(facts, config, secret("s3-conn", data))
    if facts.s3_settings_from_secret_data:
        assert built.env == [*KEYS, EnvVar("S3_USE_HTTPS", "0"), EnvVar("S3_ENDPOINT", "127.0.0.1:9000"),
                             EnvVar("AWS_ENDPOINT_URL", "http://127.0.0.1:9000"),
                             EnvVar("AWS_DEFAULT_REGION", "us-east-1"), *extra(facts)]
    else:
        assert built.env == KEYS


@pytest.mark.parametrize("version", KSERVE_RELEASES)
def test_the_config_s3UseHttps_and_an_annotated_endpoint(version):
    """Annotation, then (0.16 on) secret data, then the cluster config, per setting; before 0.16
    an annotated endpoint only looks at the annotated s3-usehttps."""
    facts, _ = release(version)
    config = CredentialConfig(s3={"s3AccessKeyIDName": "AWS_ACCESS_KEY_ID",
                                  "s3SecretAccessKeyName": "AWS_SECRET_ACCESS_KEY",
                                  "s3UseHttps": "0", "s3Region": "us-east-2"})
    built = build(facts, config, s3_secret(s3_endpoint="127.0.0.1:9000"))
    url = built.plain("AWS_ENDPOINT_URL")
    assert url == ("http://127.0.0.1:9000" if facts.s3_settings_from_secret_data else "https://127.0.0.1:9000")
    assert built.plain("AWS_DEFAULT_REGION") == "us-east-2"
    # the config's own endpoint, when no annotation names one
    config = CredentialConfig(s3={**config.s3, "s3Endpoint": "127.0.0.1:8333"})
    built = build(facts, config, s3_secret())
    assert [e for e in built.env if e.name in ("S3_USE_HTTPS", "S3_ENDPOINT", "AWS_ENDPOINT_URL")] == [
        EnvVar("S3_USE_HTTPS", "0"), EnvVar("S3_ENDPOINT", "127.0.0.1:8333"),
        EnvVar("AWS_ENDPOINT_URL", "http://127.0.0.1:8333")]


def test_without_key_names_in_the_config_kserve_looks_for_its_own_defaults():
    facts = ReleaseFacts((0, 20))
    console_secret = s3_secret(s3_endpoint="127.0.0.1:9000")
    assert build(facts, CredentialConfig(), console_secret).env == HF_DEFAULTS  # not recognised: skipped
    legacy = secret("legacy", {"awsAccessKeyID": "AKIA1", "awsSecretAccessKey": "s3cr3t"})
    assert build(facts, CredentialConfig(), legacy).env[:2] == [
        EnvVar("AWS_ACCESS_KEY_ID", secret="legacy", key="awsAccessKeyID"),
        EnvVar("AWS_SECRET_ACCESS_KEY", secret="legacy", key="awsSecretAccessKey")]


@pytest.mark.parametrize("version", KSERVE_RELEASES)
def test_anonymous_and_virtual_bucket_and_ca_bundle_annotations(version):
    facts, config = release(version)
    built = build(facts, config, s3_secret(s3_endpoint="127.0.0.1:9000", s3_useanoncredential="true",
                                           s3_usevirtualbucket="false", s3_cabundle="/etc/ssl/ca.crt"))
    assert [e for e in built.env if e.name in ("awsAnonymousCredential", "S3_USER_VIRTUAL_BUCKET", "AWS_CA_BUNDLE")] \
        == [EnvVar("awsAnonymousCredential", "true"), EnvVar("S3_USER_VIRTUAL_BUCKET", "false"),
            EnvVar("AWS_CA_BUNDLE", "/etc/ssl/ca.crt")]


@pytest.mark.parametrize("version", KSERVE_RELEASES)
def test_gcs_mounts_the_secret_and_resolve_writes_the_file(version, tmp_path):
    facts, config = release(version)
    key_file = json.dumps({"type": "service_account", "project_id": "p"})
    gcs = secret("gcs-conn", {"gcloud-application-credentials.json": key_file})
    built = build(facts, config, gcs)
    assert built.env == [EnvVar("GOOGLE_APPLICATION_CREDENTIALS", "/var/secrets/gcloud-application-credentials.json"),
                         *extra(facts)]
    assert built.pod_volumes() == [{"name": "user-gcp-sa", "secret": {"secretName": "gcs-conn"}}]
    assert built.volume_mounts() == [{"name": "user-gcp-sa", "mountPath": "/var/secrets/", "readOnly": True}]
    env = resolve(built, namespace=NS, get_secret={"gcs-conn": gcs}.get, mount_root=tmp_path)
    assert Path(env["GOOGLE_APPLICATION_CREDENTIALS"]).read_text() == key_file
    assert Path(env["GOOGLE_APPLICATION_CREDENTIALS"]).is_relative_to(tmp_path)


@pytest.mark.parametrize("version", KSERVE_RELEASES)
def test_azure_service_principal_keys(version):
    facts, config = release(version)
    azure = secret("az", {"AZURE_CLIENT_ID": "id", "AZURE_CLIENT_SECRET": "pw", "AZURE_TENANT_ID": "t"})
    names = [e.name for e in build(facts, config, azure).env if e.name.startswith("AZ")]
    if facts.azure_access_token:  # every key but the tenant is left out when absent
        assert names == ["AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET"]
    else:  # the subscription is referenced even though the secret lacks it
        assert names == ["AZURE_SUBSCRIPTION_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET"]
    legacy = secret("az", {"AZ_CLIENT_ID": "id", "AZ_CLIENT_SECRET": "pw", "AZ_TENANT_ID": "t",
                           "AZ_SUBSCRIPTION_ID": "s"})
    env = build(facts, config, legacy).env
    assert EnvVar("AZURE_CLIENT_ID", secret="az", key="AZ_CLIENT_ID") in env
    assert EnvVar("AZURE_SUBSCRIPTION_ID", secret="az", key="AZ_SUBSCRIPTION_ID") in env


@pytest.mark.parametrize("version", KSERVE_RELEASES)
def test_azure_storage_key_and_access_token(version):
    facts, config = release(version)
    key_only = build(facts, config, secret("az", {"AZURE_STORAGE_ACCESS_KEY": "k"})).env
    assert key_only == [EnvVar("AZURE_STORAGE_ACCESS_KEY", secret="az", key="AZURE_STORAGE_ACCESS_KEY"), *extra(facts)]
    with_client = build(facts, config, secret("az", {"AZURE_CLIENT_ID": "id", "AZURE_TENANT_ID": "t",
                                                     "AZURE_STORAGE_ACCESS_KEY": "k"})).env
    assert (EnvVar("AZURE_STORAGE_ACCESS_KEY", secret="az", key="AZURE_STORAGE_ACCESS_KEY") in with_client) \
        == facts.azure_storage_key_with_client_keys
    token = build(facts, config, secret("az", {"AZURE_ACCESS_TOKEN": "tok", "AZURE_ACCOUNT_NAME": "acct"})).env
    if facts.azure_access_token:
        assert [e.name for e in token if e.name.startswith("AZ")] == [
            "AZURE_TENANT_ID", "AZURE_ACCESS_TOKEN", "AZURE_ACCOUNT_NAME"]
    else:
        assert token == extra(facts)  # not an Azure secret before 0.16: skipped


@pytest.mark.parametrize("version", KSERVE_RELEASES)
def test_https_headers_and_hugging_face_token(version):
    facts, config = release(version)
    headers = json.dumps({"Authorization": "Bearer t0k3n"})
    https = build(facts, config, secret("web", {"https-host": "127.0.0.1", "headers": headers})).env
    assert https == [EnvVar("127.0.0.1-headers", headers), *extra(facts)]  # in plain sight in the pod spec
    hf = build(facts, config, secret("hf", {"HF_TOKEN": "hf_abc"})).env
    if not facts.hf_token_secret:
        assert hf == []
    elif facts.hf_token_as_literal:
        assert hf == [EnvVar("HF_TOKEN", "hf_abc")] + (
            [EnvVar("HF_HUB_ENABLE_HF_TRANSFER", "1")] if facts.hf_secret_enables_transfer else [])
    else:
        assert hf == [EnvVar("HF_TOKEN", secret="hf", key="HF_TOKEN"), *HF_DEFAULTS]


def test_hf_token_arrives_with_0_14():
    assert [release(v)[0].hf_token_secret for v in KSERVE_RELEASES] == [False] + [True] * 7


def test_the_storage_secret_name_annotation_overrides_the_account():
    facts, config = release("0.20.0")
    chosen = s3_secret(s3_endpoint="127.0.0.1:9000")
    other = secret("other", {"HF_TOKEN": "x"})
    built = build(facts, config, chosen, other, listed=["other"],
                  isvc_annotations={A + "storageSecretName": "s3-conn"})
    assert [e.name for e in built.env][:2] == ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]
    assert "HF_TOKEN" not in [e.name for e in built.env]
    with pytest.raises(CredentialError) as error:
        build(facts, config, other, isvc_annotations={A + "storageSecretName": "gone"})
    assert str(error.value) == 'secrets "gone" not found'
    # without storageSecretNameAnnotation in the config the annotation means nothing
    plain = CredentialConfig(s3=config.s3, gcs=config.gcs)
    assert "HF_TOKEN" in [e.name for e in build(facts, plain, chosen, other, listed=["other"],
                                                isvc_annotations={A + "storageSecretName": "s3-conn"}).env]


@pytest.mark.parametrize("version", ["0.13.1", "0.20.0"])
def test_no_account_or_no_secrets_means_no_credentials(version):
    facts, config = release(version)
    missing = build(facts, config, account=None)
    assert missing.env == extra(facts) and missing.service_account == "default"
    assert any("Failed to find service account" in line for line in missing.log)
    assert build(facts, config, listed=[]).env == extra(facts)


def test_a_listed_secret_that_is_missing_refuses_the_pod():
    facts, config = release("0.20.0")
    with pytest.raises(CredentialError) as error:
        build(facts, config, s3_secret(), listed=["s3-conn", "nope"])
    assert str(error.value) == 'secrets "nope" not found'
    assert error.value.denial == ('admission webhook "inferenceservice.kserve-webhook-server.pod-mutator" '
                                  'denied the request: secrets "nope" not found')


def test_two_s3_secrets_merge_like_kserve():
    """MergeEnvs copies the later value over an earlier variable but keeps its secretKeyRef:
    the keys stay the first secret's, the endpoint becomes the second's."""
    facts, config = release("0.20.0")
    first = secret("first", {"AWS_ACCESS_KEY_ID": "A1", "AWS_SECRET_ACCESS_KEY": "S1"},
                   {A + "s3-endpoint": "127.0.0.1:1111", A + "s3-usehttps": "0"})
    second = secret("second", {"AWS_ACCESS_KEY_ID": "A2", "AWS_SECRET_ACCESS_KEY": "S2"},
                    {A + "s3-endpoint": "127.0.0.1:2222", A + "s3-usehttps": "0"})
    built = build(facts, config, first, second)
    assert built.env[:2] == [EnvVar("AWS_ACCESS_KEY_ID", "", "first", "AWS_ACCESS_KEY_ID"),
                             EnvVar("AWS_SECRET_ACCESS_KEY", "", "first", "AWS_SECRET_ACCESS_KEY")]
    assert built.plain("AWS_ENDPOINT_URL") == "http://127.0.0.1:2222"


def test_irsa_account_annotations_give_s3_settings_without_keys():
    facts, config = release("0.20.0")
    built = build(facts, config, listed=[], account_annotations={
        "eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/r", A + "s3-endpoint": "127.0.0.1:9000",
        A + "s3-usehttps": "0"})
    assert built.env[:3] == [EnvVar("S3_USE_HTTPS", "0"), EnvVar("S3_ENDPOINT", "127.0.0.1:9000"),
                             EnvVar("AWS_ENDPOINT_URL", "http://127.0.0.1:9000")]


def test_unknown_secrets_are_skipped_and_the_config_must_parse():
    facts, config = release("0.20.0")
    assert build(facts, config, secret("misc", {"password": "x"})).env == HF_DEFAULTS
    with pytest.raises(CredentialError, match="unable to parse credential config json"):
        CredentialConfig.from_configmap({"data": {"credentials": "{not json"}})
    assert CredentialConfig.from_configmap({"data": {}}) == CredentialConfig()


def test_resolve_reads_keys_like_the_kubelet(tmp_path):
    facts, config = release("0.20.0")
    conn = s3_secret(s3_endpoint="127.0.0.1:9000", s3_usehttps="0")
    built = build(facts, config, conn)
    env = resolve(built, namespace=NS, get_secret={"s3-conn": conn}.get, mount_root=tmp_path)
    assert env["AWS_ACCESS_KEY_ID"] == "AKIA1" and env["AWS_SECRET_ACCESS_KEY"] == "s3cr3t"
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:9000"
    no_id = secret("s3-conn", {"AWS_SECRET_ACCESS_KEY": "s3cr3t"})
    with pytest.raises(ContainerConfigError) as error:
        resolve(build(facts, config, no_id), namespace=NS, get_secret={"s3-conn": no_id}.get, mount_root=tmp_path)
    assert str(error.value) == "couldn't find key AWS_ACCESS_KEY_ID in Secret proj/s3-conn"
    with pytest.raises(ContainerConfigError, match='secret "s3-conn" not found'):
        resolve(built, namespace=NS, get_secret={}.get, mount_root=tmp_path)


@pytest.mark.parametrize("version", KSERVE_RELEASES)
def test_s3_use_https_without_an_endpoint_only_in_0_16(version):
    facts, config = release(version)
    names = [e.name for e in build(facts, config, s3_secret(s3_usehttps="0")).env]
    assert ("S3_USE_HTTPS" in names) == (facts.s3_settings_from_secret_data and not facts.s3_endpoint_scheme_prefix)
    assert "S3_ENDPOINT" not in names
