"""The storage preflight (``endpoints.storage_check``) against real servers on loopback: the
SeaweedFS S3 server (signature checking on), the GCS emulator and Azurite (shared-key
signatures checked). What an emulator cannot do (refuse Google credentials, a service
principal's token endpoint, TLS with a private CA, a server quoting a secret back) is played by
a scripted loopback server, so every result still comes out of a real HTTP exchange.

Every result goes through ``run``, which fails the test when a secret value appears anywhere
in the message or the detail.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import secrets
import socket
import ssl
import time
from functools import cache

import pytest

from endpoints.storage_check import (
    MISSING_CONTAINER,
    MISSING_OBJECT,
    NOT_CHECKED,
    OK,
    STATES,
    StorageCheck,
    _azure_credential,
    _s3_client,
    check_storage,
)
from tests.fixtures.emulators import Reply, closed_port, scripted_http_server
from tests.fixtures.storage import REGION, s3_client

DENIED, UNREACHABLE, INVALID = "denied", "unreachable", "invalid"


# --- every result is searched for the secrets ----------------------------------------------------
def secret_strings(secrets_: dict) -> list[str]:
    """The secret values and the pieces of one a library could quote."""
    found = []
    for value in secrets_.values():
        if not isinstance(value, str) or not value:
            continue
        found.append(value)
        try:
            info = json.loads(value)
        except ValueError:
            info = None
        if isinstance(info, dict):
            for name in ("private_key", "private_key_id"):
                if isinstance(info.get(name), str):
                    found.append(info[name])
                    found.extend(line for line in info[name].splitlines() if len(line) >= 16 and "-----" not in line)
    return found


def assert_no_secret(result: StorageCheck, secrets_: dict, *extra: str) -> None:
    text = result.message + "\n" + json.dumps(result.detail, default=str)
    for value in [*secret_strings(secrets_), *extra]:
        assert value not in text, f"a secret value leaked into the result: {result!r}"


def run(kind: str, config: dict, secrets_: dict, uri: str, *, also_secret: tuple[str, ...] = (), **kwargs) -> StorageCheck:
    result = check_storage(kind, config, secrets_, uri, **kwargs)
    assert result.state in STATES
    assert result.message and "\n" not in result.message
    assert_no_secret(result, secrets_, *also_secret)
    return result


# --- certificates and keys made here ----------------------------------------------------------------
@cache
def rsa_key_pem() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


@cache
def loopback_certificate() -> tuple[str, str]:
    """(certificate PEM, key PEM): self-signed, for 127.0.0.1."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return certificate.public_bytes(serialization.Encoding.PEM).decode(), key_pem


def tls_context(tmp_path) -> ssl.SSLContext:
    cert, key = loopback_certificate()
    (tmp_path / "cert.pem").write_text(cert)
    (tmp_path / "key.pem").write_text(key)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    return context


def service_account_json(token_uri: str, **overrides) -> str:
    info = {
        "type": "service_account", "project_id": "console-test", "private_key_id": secrets.token_hex(20),
        "private_key": rsa_key_pem(), "client_email": "preflight@console-test.iam.gserviceaccount.com",
        "client_id": "1234567890", "token_uri": token_uri,
    }
    info.update(overrides)
    return json.dumps({k: v for k, v in info.items() if v is not None})


def test_a_result_says_whether_it_was_checked():
    assert StorageCheck(OK, "fine").checked and StorageCheck(OK, "fine").ok
    assert not StorageCheck(NOT_CHECKED, "not checked").checked
    assert StorageCheck(INVALID, "bad").checked and not StorageCheck(INVALID, "bad").ok
    with pytest.raises(ValueError):
        StorageCheck("bucket_gone", "no such state")
    with pytest.raises(ValueError):
        check_storage("ftp", {}, {}, "ftp://x/y")


# --- S3 (SeaweedFS) -------------------------------------------------------------------------------------
def s3_config(server, **overrides) -> dict:
    return {"endpoint_url": server.endpoint_url, "region": REGION, "verify_tls": True, "ca_bundle": "",
            "addressing": "path", "anonymous": False, **overrides}


def s3_secrets(server, **overrides) -> dict:
    identity = server.identities[0]
    return {"access_key_id": identity.access_key, "secret_access_key": identity.secret_key, **overrides}


@pytest.fixture
def s3_model(s3_server, s3_bucket) -> str:
    client = s3_client(s3_server)
    client.put_object(Bucket=s3_bucket, Key="iris/v1/model.joblib", Body=b"0123456789")
    client.put_object(Bucket=s3_bucket, Key="iris/v1/settings.json", Body=b"{}")
    return s3_bucket


def test_s3_object_uri_is_ok(s3_server, s3_model):
    result = run("s3", s3_config(s3_server), s3_secrets(s3_server), f"s3://{s3_model}/iris/v1/model.joblib")
    assert result.state == OK, result
    assert result.detail["match"] == "object" and result.detail["size"] == 10
    assert "exists and is readable (10 bytes)" in result.message


def test_s3_prefix_uri_is_ok_and_counts_the_objects(s3_server, s3_model):
    result = run("s3", s3_config(s3_server), s3_secrets(s3_server), f"s3://{s3_model}/iris/v1")
    assert result.state == OK, result
    assert result.detail["match"] == "prefix" and result.detail["objects_found"] == 2
    assert result.detail["first"] == "iris/v1/model.joblib"


def test_s3_missing_bucket_quotes_no_such_bucket(s3_server):
    result = run("s3", s3_config(s3_server), s3_secrets(s3_server), "s3://no-such-bucket-here/iris")
    assert result.state == MISSING_CONTAINER, result
    assert result.message == "Bucket 'no-such-bucket-here' does not exist (NoSuchBucket)"
    assert result.detail["code"] == "NoSuchBucket" and result.detail["status"] == 404


def test_s3_missing_key_with_nothing_under_it(s3_server, s3_model):
    result = run("s3", s3_config(s3_server), s3_secrets(s3_server), f"s3://{s3_model}/iris/v2")
    assert result.state == MISSING_OBJECT, result
    assert result.detail["objects_found"] == 0
    assert "no object with that key and no object under 'iris/v2'" in result.message


def test_s3_empty_bucket_uri_is_missing_object(s3_server, s3_bucket):
    result = run("s3", s3_config(s3_server), s3_secrets(s3_server), f"s3://{s3_bucket}")
    assert result.state == MISSING_OBJECT and result.message == f"Bucket '{s3_bucket}' is empty"


def test_s3_wrong_secret_gets_the_servers_signature_does_not_match(s3_server, s3_model):
    wrong = s3_secrets(s3_server, secret_access_key=secrets.token_urlsafe(30))
    for uri in (f"s3://{s3_model}/iris/v1/model.joblib", f"s3://{s3_model}/iris/v1"):
        result = run("s3", s3_config(s3_server), wrong, uri,
                     also_secret=(s3_server.identities[0].secret_key,))
        assert result.state == DENIED, result
        assert result.detail["code"] == "SignatureDoesNotMatch" and result.detail["status"] == 403
        assert result.message.startswith("The server refused the credentials: SignatureDoesNotMatch — ")
        assert "signature" in result.message.lower()


def test_s3_unknown_access_key(s3_server, s3_model):
    result = run("s3", s3_config(s3_server), s3_secrets(s3_server, access_key_id="AKIANOBODYKNOWSTHIS"),
                 f"s3://{s3_model}/iris/v1")
    assert result.state == DENIED and result.detail["code"] == "InvalidAccessKeyId", result


def test_s3_anonymous_on_a_private_bucket_is_denied(s3_server, s3_model):
    result = run("s3", s3_config(s3_server, anonymous=True), {}, f"s3://{s3_model}/iris/v1/model.joblib")
    assert result.state == DENIED and result.detail["code"] == "AccessDenied", result
    assert result.message.startswith(f"The server denied access to s3://{s3_model}/iris/v1/model.joblib: AccessDenied")


def test_s3_closed_port_is_unreachable():
    port = closed_port()
    started = time.monotonic()
    result = run("s3", {"endpoint_url": f"http://127.0.0.1:{port}", "region": REGION, "addressing": "path"},
                 {"access_key_id": "AKIAEXAMPLE", "secret_access_key": "not-a-real-secret-but-secret"},
                 "s3://models/iris", timeout=2)
    assert result.state == UNREACHABLE and result.detail["code"] == "refused", result
    assert result.message == f"Cannot reach http://127.0.0.1:{port}: connection refused"
    assert time.monotonic() - started < 2


def test_s3_listable_but_not_readable_is_denied(scripted_server):
    """LIST answers, HEAD of the first object is refused: the plan must not say "ok"."""
    scripted_server.replies["/models"] = Reply(200, (
        '<?xml version="1.0" encoding="UTF-8"?><ListBucketResult><Name>models</Name><Prefix>iris</Prefix>'
        "<KeyCount>1</KeyCount><MaxKeys>100</MaxKeys><IsTruncated>false</IsTruncated>"
        "<Contents><Key>iris/model.joblib</Key><Size>3</Size></Contents></ListBucketResult>"),
        {"Content-Type": "application/xml"})
    scripted_server.replies["/models/iris"] = Reply(404)
    scripted_server.replies["/models/iris/model.joblib"] = Reply(403)
    result = run("s3", {"endpoint_url": scripted_server.url, "addressing": "path"},
                 {"access_key_id": "AKIAEXAMPLE", "secret_access_key": "wJalrXUtnFEMI/K7MDENG"}, "s3://models/iris")
    assert result.state == DENIED and result.detail["objects_found"] == 1, result
    assert "s3://models/iris/model.joblib" in result.message


def test_s3_server_quoting_the_secret_back_is_redacted(scripted_server):
    secret_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY"
    scripted_server.reply = Reply(403, (
        "<Error><Code>SignatureDoesNotMatch</Code>"
        f"<Message>Expected a signature made with {secret_key}</Message></Error>"),
        {"Content-Type": "application/xml"})
    result = run("s3", {"endpoint_url": scripted_server.url, "addressing": "path"},
                 {"access_key_id": "AKIAEXAMPLE", "secret_access_key": secret_key}, "s3://models/iris")
    assert result.state == DENIED and "[redacted]" in result.message, result


@pytest.mark.parametrize(("status", "code", "server_message", "state"), [
    (400, "AuthorizationHeaderMalformed", "The authorization header is malformed; the region 'us-east-1' is wrong; "
                                          "expecting 'eu-west-1'", INVALID),
    (503, "ServiceUnavailable", "Please reduce your request rate.", UNREACHABLE),
])
def test_s3_other_server_errors_quote_the_server(scripted_server, status, code, server_message, state):
    scripted_server.reply = Reply(status, f"<Error><Code>{code}</Code><Message>{server_message}</Message></Error>",
                                  {"Content-Type": "application/xml"})
    result = run("s3", {"endpoint_url": scripted_server.url, "addressing": "path"},
                 {"access_key_id": "AKIAEXAMPLE", "secret_access_key": "other-errors-secret"}, "s3://models/iris")
    assert result.state == state and result.detail["code"] == code, result
    assert f"{code} — {server_message}" in result.message


@pytest.mark.filterwarnings("ignore:Unverified HTTPS request")
def test_s3_tls_with_the_connections_ca_bundle(tmp_path):
    cert, _ = loopback_certificate()
    with scripted_http_server(tls_context(tmp_path)) as server:
        server.reply = Reply(404, "<Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message></Error>",
                             {"Content-Type": "application/xml"})
        keys = {"access_key_id": "AKIAEXAMPLE", "secret_access_key": "tls-test-secret-value"}
        config = {"endpoint_url": server.url, "addressing": "path"}

        untrusted = run("s3", config, keys, "s3://models/iris")
        assert untrusted.state == UNREACHABLE and untrusted.detail["code"] == "tls", untrusted
        assert "certificate" in untrusted.message

        trusted = run("s3", {**config, "ca_bundle": cert}, keys, "s3://models/iris")
        assert trusted.state == MISSING_CONTAINER and trusted.detail["code"] == "NoSuchBucket", trusted

        unverified = run("s3", {**config, "verify_tls": False}, keys, "s3://models/iris")
        assert unverified.state == MISSING_CONTAINER, unverified

    not_pem = run("s3", {**config, "ca_bundle": "-----BEGIN CERTIFICATE-----\nnope\n"}, keys, "s3://models/iris")
    assert not_pem.state == INVALID and not_pem.detail["field"] == "ca_bundle"


@pytest.mark.parametrize(("addressing", "url"), [
    ("path", "https://objects.example.test/models/iris/model.joblib"),
    ("virtual", "https://models.objects.example.test/iris/model.joblib"),
])
def test_s3_addressing_style_is_honoured(addressing, url):
    client = _s3_client(endpoint_url="https://objects.example.test", region=REGION, addressing=addressing,
                        verify=True, anonymous=False, access_key="AKIAEXAMPLE", secret_key="example-secret",
                        timeout=1)
    presigned = client.generate_presigned_url("get_object", Params={"Bucket": "models", "Key": "iris/model.joblib"})
    assert presigned.startswith(url + "?")


@pytest.mark.parametrize(("config", "keys", "uri", "state", "field"), [
    ({}, {"access_key_id": "AKIAEXAMPLE", "secret_access_key": "s3cr3t-value"}, "gs://models/iris", INVALID, None),
    ({}, {"access_key_id": "AKIAEXAMPLE", "secret_access_key": "s3cr3t-value"}, "s3:///iris", INVALID, None),
    ({}, {"access_key_id": "AKIAEXAMPLE", "secret_access_key": ""}, "s3://models/iris", INVALID, "secret_access_key"),
    ({"addressing": "sideways"}, {"access_key_id": "AKIAEXAMPLE", "secret_access_key": "s3cr3t-value"},
     "s3://models/iris", INVALID, "addressing"),
    ({"endpoint_url": "ftp://127.0.0.1"}, {"access_key_id": "AKIAEXAMPLE", "secret_access_key": "s3cr3t-value"},
     "s3://models/iris", INVALID, "endpoint_url"),
    ({}, {}, "s3://models/iris", NOT_CHECKED, None),
])
def test_s3_invalid_values_are_caught_before_any_request(config, keys, uri, state, field):
    result = run("s3", config, keys, uri)
    assert result.state == state, result
    if field:
        assert result.detail["field"] == field and field in result.message


# --- Google Cloud Storage (gcp-storage-emulator) ------------------------------------------------------------
@pytest.fixture
def token_server(scripted_server):
    """The service account's token endpoint (the emulator does not check credentials)."""
    scripted_server.reply = Reply(200, {"access_token": "ya29." + secrets.token_urlsafe(40), "expires_in": 3600,
                                        "token_type": "Bearer"})
    return scripted_server


@pytest.fixture
def gcs_model(gcs_emulator) -> str:
    bucket = gcs_emulator.new_bucket()
    gcs_emulator.upload(bucket, "iris/v1/model.joblib", b"0123456789")
    gcs_emulator.upload(bucket, "iris/v1/settings.json", b"{}")
    return bucket


def test_gcs_object_is_ok_with_a_service_account(gcs_emulator, gcs_model, token_server):
    keys = {"service_account_json": service_account_json(token_server.url + "/token")}
    result = run("gcs", {"endpoint_url": gcs_emulator.endpoint_url}, keys, f"gs://{gcs_model}/iris/v1/model.joblib",
                 also_secret=(token_server.reply.body["access_token"],))
    assert result.state == OK and result.detail["size"] == 10, result
    # The credentials were really used: one JWT-bearer grant at the token endpoint.
    assert [r["method"] for r in token_server.requests] == ["POST"]
    assert b"grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer" in token_server.requests[0]["body"]


def test_gcs_prefix_is_ok(gcs_emulator, gcs_model, token_server):
    keys = {"service_account_json": service_account_json(token_server.url + "/token")}
    result = run("gcs", {"endpoint_url": gcs_emulator.endpoint_url, "project": "console-test"}, keys,
                 f"gs://{gcs_model}/iris/v1")
    assert result.state == OK and result.detail["match"] == "prefix" and result.detail["objects_found"] == 2, result


def test_gcs_anonymous_is_ok_on_the_emulator(gcs_emulator, gcs_model):
    result = run("gcs", {"endpoint_url": gcs_emulator.endpoint_url}, {}, f"gs://{gcs_model}/iris")
    assert result.state == OK, result


def test_gcs_missing_bucket(gcs_emulator):
    result = run("gcs", {"endpoint_url": gcs_emulator.endpoint_url}, {}, "gs://no-such-bucket-here/iris")
    assert result.state == MISSING_CONTAINER and result.detail["status"] == 404, result
    assert result.message.startswith("Bucket 'no-such-bucket-here' does not exist (")


def test_gcs_missing_object(gcs_emulator, gcs_model):
    # "iris/v" is a prefix of the keys, but KServe lists "<key>/": nothing would be downloaded.
    for uri in (f"gs://{gcs_model}/iris/v2", f"gs://{gcs_model}/iris/v"):
        result = run("gcs", {"endpoint_url": gcs_emulator.endpoint_url}, {}, uri)
        assert result.state == MISSING_OBJECT and result.detail["objects_found"] == 0, result


def test_gcs_closed_port_is_unreachable():
    port = closed_port()
    result = run("gcs", {"endpoint_url": f"http://127.0.0.1:{port}"}, {}, "gs://models/iris", timeout=2)
    assert result.state == UNREACHABLE and result.detail["code"] == "refused", result


def test_gcs_token_endpoint_refusing_the_service_account_is_denied(scripted_server):
    scripted_server.reply = Reply(400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."})
    keys = {"service_account_json": service_account_json(scripted_server.url + "/token")}
    result = run("gcs", {"endpoint_url": "http://127.0.0.1:9"}, keys, "gs://models/iris")
    assert result.state == DENIED and result.detail["code"] == "invalid_grant", result
    assert result.message == "The token endpoint refused the service account: invalid_grant — Invalid JWT Signature."


def test_gcs_token_endpoint_unreachable():
    keys = {"service_account_json": service_account_json(f"http://127.0.0.1:{closed_port()}/token")}
    started = time.monotonic()
    result = run("gcs", {"endpoint_url": "http://127.0.0.1:9"}, keys, "gs://models/iris", timeout=2)
    assert result.state == UNREACHABLE and result.detail["stage"] == "token", result
    assert "token endpoint" in result.message
    assert time.monotonic() - started < 10


def test_gcs_storage_refusing_is_denied_with_googles_reason(scripted_server):
    scripted_server.reply = Reply(403, {"error": {"code": 403, "message": "preflight@console-test.iam.gserviceaccount.com "
                                                  "does not have storage.objects.get access to the Google Cloud Storage object.",
                                                  "errors": [{"reason": "forbidden", "message": "preflight@console-test.iam."
                                                              "gserviceaccount.com does not have storage.objects.get access "
                                                              "to the Google Cloud Storage object."}]}})
    result = run("gcs", {"endpoint_url": scripted_server.url}, {}, "gs://models/iris/model.joblib")
    assert result.state == DENIED and result.detail["code"] == "forbidden" and result.detail["status"] == 403, result
    assert "does not have storage.objects.get access" in result.message


def test_gcs_token_endpoint_quoting_the_key_back_is_redacted(scripted_server):
    keys = {"service_account_json": service_account_json(scripted_server.url + "/token")}
    info = json.loads(keys["service_account_json"])
    key_line = info["private_key"].splitlines()[3]
    scripted_server.reply = Reply(400, {"error": "invalid_grant",
                                        "error_description": f"key {info['private_key_id']} rejected: {key_line}"})
    result = run("gcs", {"endpoint_url": "http://127.0.0.1:9"}, keys, "gs://models/iris")
    assert result.state == DENIED and result.message.count("[redacted]") == 2, result


@pytest.mark.parametrize(("value", "field"), [
    ("{not json", "service_account_json"),
    ("[1, 2]", "service_account_json"),
    (json.dumps({"type": "authorized_user", "refresh_token": "1//refresh-token-value"}), "service_account_json.type"),
    ("missing private_key", "service_account_json.private_key"),
    ("garbage private_key", "service_account_json.private_key"),
])
def test_gcs_invalid_service_account_json_names_the_field(value, field):
    if value == "missing private_key":
        value = service_account_json("http://127.0.0.1:9/token", private_key=None)
    elif value == "garbage private_key":
        value = service_account_json("http://127.0.0.1:9/token",
                                     private_key="-----BEGIN PRIVATE KEY-----\nTm90QUtleUF0QWxsQnV0U2VjcmV0\n-----END PRIVATE KEY-----\n")
    result = run("gcs", {}, {"service_account_json": value}, "gs://models/iris",
                 also_secret=("1//refresh-token-value", "Tm90QUtleUF0QWxsQnV0U2VjcmV0"))
    assert result.state == INVALID and result.detail["field"] == field, result
    assert field.split(".")[-1] in result.message


def test_gcs_scheme_must_match():
    assert run("gcs", {}, {}, "s3://models/iris").state == INVALID


# --- Azure Blob (Azurite) ------------------------------------------------------------------------------------
def azure_config(server, **overrides) -> dict:
    return {"account_name": server.account_name, "endpoint_url": server.blob_endpoint, "tenant_id": "",
            "client_id": "", **overrides}


@pytest.fixture
def azure_model(azurite_server) -> str:
    container = azurite_server.new_container()
    azurite_server.upload(container, "iris/v1/model.joblib", b"0123456789")
    azurite_server.upload(container, "iris/v1/settings.json", b"{}")
    return container


def test_azure_blob_is_ok(azurite_server, azure_model):
    result = run("azure", azure_config(azurite_server), {"account_key": azurite_server.account_key},
                 azurite_server.uri(azure_model, "iris/v1/model.joblib"))
    assert result.state == OK and result.detail["size"] == 10 and result.detail["match"] == "object", result


def test_azure_prefix_is_ok(azurite_server, azure_model):
    result = run("azure", azure_config(azurite_server), {"account_key": azurite_server.account_key},
                 azurite_server.uri(azure_model, "iris/v1"))
    assert result.state == OK and result.detail["objects_found"] == 2, result


def test_azure_missing_container(azurite_server):
    result = run("azure", azure_config(azurite_server), {"account_key": azurite_server.account_key},
                 azurite_server.uri("no-such-container", "iris"))
    assert result.state == MISSING_CONTAINER and result.detail["code"] == "ContainerNotFound", result
    assert result.message == "Container 'no-such-container' does not exist (ContainerNotFound)"


def test_azure_missing_blob(azurite_server, azure_model):
    result = run("azure", azure_config(azurite_server), {"account_key": azurite_server.account_key},
                 azurite_server.uri(azure_model, "iris/v2"))
    assert result.state == MISSING_OBJECT and result.detail["objects_found"] == 0, result


def test_azure_wrong_account_key_gets_azurites_own_code(azurite_server, azure_model):
    import base64

    wrong = {"account_key": base64.b64encode(secrets.token_bytes(64)).decode()}
    for path in ("iris/v1/model.joblib", "iris/v1"):
        result = run("azure", azure_config(azurite_server), wrong, azurite_server.uri(azure_model, path),
                     also_secret=(azurite_server.account_key,))
        assert result.state == DENIED and result.detail["status"] == 403, result
        # Azurite's code for a bad shared-key signature (Azure's is AuthenticationFailed).
        assert result.detail["code"] == "AuthorizationFailure"
        assert result.message.startswith("The server refused the credentials: AuthorizationFailure — Server failed to authenticate")


def test_azure_anonymous_on_a_private_container_is_denied(azurite_server, azure_model):
    result = run("azure", azure_config(azurite_server), {}, azurite_server.uri(azure_model, "iris/v1/model.joblib"))
    assert result.state == DENIED, result


def test_azure_closed_port_is_unreachable(azurite_server):
    port = closed_port()
    result = run("azure", azure_config(azurite_server, endpoint_url=f"http://127.0.0.1:{port}/{azurite_server.account_name}"),
                 {"account_key": azurite_server.account_key}, azurite_server.uri("models", "iris"), timeout=2)
    assert result.state == UNREACHABLE and result.detail["code"] == "refused", result


@pytest.mark.parametrize(("config", "keys", "uri", "state", "field"), [
    ({"account_name": "other"}, {}, "https://acct.blob.core.windows.net/models/iris", INVALID, "account_name"),
    ({}, {"account_key": "not base64 at all!"}, "https://acct.blob.core.windows.net/models/iris", INVALID, "account_key"),
    ({"client_id": "app"}, {"client_secret": "sp-secret-value"}, "https://acct.blob.core.windows.net/models/iris",
     INVALID, "tenant_id"),
    ({}, {}, "https://acct.blob.core.windows.net/", INVALID, None),
    ({}, {}, "https://example.com/models/iris", INVALID, None),
    ({}, {}, "s3://models/iris", INVALID, None),
    ({}, {}, "https://acct.file.core.windows.net/share/iris", NOT_CHECKED, None),
])
def test_azure_invalid_values_are_caught_before_any_request(config, keys, uri, state, field):
    result = run("azure", config, keys, uri)
    assert result.state == state, result
    if field:
        assert result.detail["field"] == field


def test_azure_service_principal_builds_a_client_secret_credential():
    from azure.identity import ClientSecretCredential

    credential = _azure_credential({"tenant_id": "tenant-1", "client_id": "app-1"}, {"client_secret": "sp-secret-value"},
                                   "acct", 2.0)
    assert isinstance(credential, ClientSecretCredential)
    assert credential._tenant_id == "tenant-1" and credential._client_id == "app-1"


def test_azure_service_principal_with_an_unreachable_token_endpoint():
    config = {"endpoint_url": f"https://127.0.0.1:{closed_port()}/acct", "tenant_id": "tenant-1", "client_id": "app-1",
              "authority_host": f"https://127.0.0.1:{closed_port()}"}
    result = run("azure", config, {"client_secret": "sp-secret-value"}, "https://acct.blob.core.windows.net/models/iris",
                 timeout=2)
    assert result.state == UNREACHABLE and result.detail["stage"] == "token", result
    assert result.message == "Cannot reach the service principal's token endpoint: connection refused"


def test_azure_service_principal_refused_by_the_identity_provider(tmp_path, monkeypatch):
    cert, _ = loopback_certificate()
    (tmp_path / "ca.pem").write_text(cert)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "ca.pem"))
    with scripted_http_server(tls_context(tmp_path)) as idp:
        tenant = "tenant-1"
        idp.replies[f"/{tenant}/v2.0/.well-known/openid-configuration"] = Reply(200, {
            "token_endpoint": f"{idp.url}/{tenant}/oauth2/v2.0/token",
            "authorization_endpoint": f"{idp.url}/{tenant}/oauth2/v2.0/authorize",
            "issuer": f"{idp.url}/{tenant}/v2.0",
        })
        idp.reply = Reply(401, {"error": "invalid_client",
                                "error_description": "AADSTS7000215: Invalid client secret provided. "
                                                    "Ensure the secret being sent in the request is the client secret value "
                                                    "(sp-secret-value), not the client secret ID."})
        config = {"endpoint_url": f"https://127.0.0.1:{closed_port()}/acct", "tenant_id": tenant, "client_id": "app-1",
                  "authority_host": idp.url}
        result = run("azure", config, {"client_secret": "sp-secret-value"},
                     "https://acct.blob.core.windows.net/models/iris", timeout=2)
    assert result.state == DENIED and result.detail["code"] == "AADSTS7000215", result
    assert result.message.startswith("The identity provider refused the service principal")
    assert "[redacted]" in result.message


# --- every kind: a server that never answers, a server quoting the secret back ------------------------------
@pytest.fixture
def silent_port():
    """A loopback port that accepts connections (the kernel's backlog) and never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock.getsockname()[1]


@pytest.mark.parametrize("kind", ["s3", "gcs", "azure"])
def test_a_server_that_never_answers_times_out_within_the_timeout(kind, silent_port):
    endpoint = f"http://127.0.0.1:{silent_port}"
    config, keys, uri = {
        "s3": ({"endpoint_url": endpoint, "addressing": "path"},
               {"access_key_id": "AKIAEXAMPLE", "secret_access_key": "silent-secret-value"}, "s3://models/iris"),
        "gcs": ({"endpoint_url": endpoint}, {}, "gs://models/iris"),
        "azure": ({"endpoint_url": endpoint + "/acct"}, {"account_key": "c2lsZW50LXNlY3JldC12YWx1ZQ=="},
                  "https://acct.blob.core.windows.net/models/iris"),
    }[kind]
    started = time.monotonic()
    result = run(kind, config, keys, uri, timeout=0.5)
    assert result.state == UNREACHABLE and result.detail["code"] == "timeout", result
    assert result.message.endswith(": timed out")
    assert time.monotonic() - started < 3


def test_azure_server_quoting_the_key_back_is_redacted(scripted_server):
    key = "c2VjcmV0LWFjY291bnQta2V5LXZhbHVlLWZvci10ZXN0cw=="
    scripted_server.reply = Reply(403, (
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>AuthenticationFailed</Code>"
        f"<Message>Signature did not match, key was {key}</Message></Error>"),
        {"Content-Type": "application/xml", "x-ms-error-code": "AuthenticationFailed"})
    result = run("azure", {"endpoint_url": scripted_server.url + "/acct"}, {"account_key": key},
                 "https://acct.blob.core.windows.net/models/")
    assert result.state == DENIED and result.detail["code"] == "AuthenticationFailed", result
    assert "[redacted]" in result.message


# --- kinds not checked ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("kind", "uri", "sentence"), [
    ("hf", "hf://meta-llama/Llama-3.1-8B-Instruct", "Hugging Face repositories are not checked before deploy"),
    ("oci", "oci://registry.example/models/iris:1", "OCI model images are not checked before deploy"),
    ("https", "https://models.example/iris.tar.gz", "HTTP(S) downloads are not checked before deploy"),
])
def test_unchecked_kinds_say_so(kind, uri, sentence):
    result = run(kind, {}, {"token": "hf_secret_token_value"}, uri)
    assert result.state == NOT_CHECKED and not result.checked and result.message.startswith(sentence)
    assert run(kind, {}, {}, "s3://models/iris").state == INVALID
