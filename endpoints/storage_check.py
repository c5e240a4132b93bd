"""Storage preflight: before an endpoint is applied and when a model version is registered, the
console checks — with the storage connection's own credentials, from the console process — that
the storage URI's object or prefix exists and is readable, so "bucket does not exist" shows in
the plan instead of as a failed endpoint.

``check_storage(kind, config, secrets, uri)`` returns a ``StorageCheck`` whose ``state`` is one
of ``STATES``. Its ``message`` quotes the server's own error code and message; neither the
message nor the ``detail`` ever holds a secret value (every result passes through ``_scrub``
with the connection's secrets, whatever a library or a server put in its error text).

What each kind checks (the same listing KServe's storage initializer does, so "ok" means the
download would find something):

- ``s3``: HEAD the key; on 404, LIST with the key as the prefix (a model is often a directory)
  and HEAD the first object found (listable is not readable). LIST also tells a missing bucket
  (``NoSuchBucket``) from a missing key, and gives the error code a HEAD cannot carry.
- ``gcs``: GET the object's metadata; if absent, LIST under ``<key>/`` (KServe appends the
  slash); a 404 on the LIST is a missing bucket.
- ``azure``: the blob's properties; on ``BlobNotFound`` LIST with the path as the prefix;
  ``ContainerNotFound`` is a missing container.
- ``hf``, ``oci``, ``https``: not checked (``not_checked``), the scheme is still validated.

Pure: no models, no database; each call makes its own client with short timeouts and no
retries, and reads no ambient credentials (environment, ``~/.aws``, metadata servers).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import functools
import json
import os
import socket
import ssl
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

OK = "ok"
MISSING_CONTAINER = "missing_container"
MISSING_OBJECT = "missing_object"
DENIED = "denied"
UNREACHABLE = "unreachable"
INVALID = "invalid"
NOT_CHECKED = "not_checked"
STATES = (OK, MISSING_CONTAINER, MISSING_OBJECT, DENIED, UNREACHABLE, INVALID, NOT_CHECKED)

KINDS = ("s3", "gcs", "azure", "hf", "oci", "https")

# How many keys a prefix listing reads: enough to say "12 objects", never a whole bucket.
LIST_LIMIT = 100
# Longest server message quoted in a result.
MAX_QUOTED = 300

GCS_READ_ONLY_SCOPE = "https://www.googleapis.com/auth/devstorage.read_only"
AZURE_STORAGE_SCOPE = "https://storage.azure.com/.default"

# Error codes that mean "these credentials are not accepted" (as opposed to "accepted, but not
# allowed here"): the message says so.
_REFUSED_CREDENTIAL_CODES = {
    # S3
    "SignatureDoesNotMatch", "InvalidAccessKeyId", "InvalidToken", "ExpiredToken", "TokenRefreshRequired",
    "InvalidSecurity",
    # Azure (Azurite answers AuthorizationFailure where Azure answers AuthenticationFailed)
    "AuthenticationFailed", "AuthorizationFailure", "InvalidAuthenticationInfo", "NoAuthenticationInformation",
    # Google token endpoint
    "invalid_grant", "invalid_client", "unauthorized_client",
}


@dataclass(frozen=True)
class StorageCheck:
    """The verdict of one preflight. ``detail`` holds machine-readable facts (``code``,
    ``status``, ``objects_found``, ``size``, ``endpoint`` …) for the plan and the API."""

    state: str
    message: str
    detail: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.state not in STATES:
            raise ValueError(f"unknown storage check state {self.state!r}")

    @property
    def checked(self) -> bool:
        """False only for kinds the console does not check (``not_checked``)."""
        return self.state != NOT_CHECKED

    @property
    def ok(self) -> bool:
        return self.state == OK


def _nothing_at(target: str, prefix: str, *, noun: str, holder: str, detail: dict, named: bool) -> StorageCheck:
    """No object at a key and none under it as a prefix (or an empty bucket/container)."""
    where = f"under '{prefix}'" if prefix else "in it"
    message = (f"Nothing at '{target}': no {noun} with that name and no {noun} {where} in {holder}" if named
               else f"{holder[0].upper()}{holder[1:]} is empty")
    return StorageCheck(MISSING_OBJECT, message, {**detail, "status": 404, "objects_found": 0})


def check_storage(kind: str, config: dict, secrets: dict, uri: str, *, timeout: float = 5.0) -> StorageCheck:
    """Check that ``uri`` exists and is readable with a storage connection of ``kind``
    (``KINDS``), its ``config`` and its ``secrets``. Never raises for what the storage or the
    connection's values do; raises ``ValueError`` for an unknown ``kind`` (a programming error)."""
    if kind not in _CHECKERS:
        raise ValueError(f"unknown storage kind {kind!r}; expected one of {', '.join(KINDS)}")
    config = dict(config or {})
    secrets = dict(secrets or {})
    uri = (uri or "").strip()
    scrub = _Scrubber(secrets)
    result = _CHECKERS[kind](config, secrets, uri, float(timeout), scrub)
    return scrub.result(result)


# --- secrets never leave -----------------------------------------------------------------------
class _Scrubber:
    """Replaces every secret value (and the pieces of one a library may quote: the lines of a
    PEM key, the fields of a service-account JSON, a token obtained during the check) in a
    result's message and detail."""

    MIN_LENGTH = 4
    REPLACEMENT = "[redacted]"

    def __init__(self, secrets: dict) -> None:
        self.values: set[str] = set()
        for value in secrets.values():
            self.add(value)

    def add(self, value: Any) -> None:
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if isinstance(value, dict):
            for key in ("private_key", "private_key_id", "client_secret", "refresh_token"):
                self.add(value.get(key))
            return
        if not isinstance(value, str):
            return
        value = value.strip()
        if len(value) < self.MIN_LENGTH:
            return
        self.values.add(value)
        # A JSON document (a service-account key): its secret fields on their own.
        if value.startswith("{"):
            with contextlib.suppress(ValueError, TypeError):
                parsed = json.loads(value)
                if isinstance(parsed, dict):
                    self.add(parsed)
        # A multi-line secret (a PEM key): each line long enough to be a fragment of it.
        for line in value.replace("\\n", "\n").splitlines():
            line = line.strip()
            if len(line) >= 16 and not line.startswith("-----"):
                self.values.add(line)

    def text(self, text: str) -> str:
        for value in sorted(self.values, key=len, reverse=True):
            if value in text:
                text = text.replace(value, self.REPLACEMENT)
        return text

    def value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(str(k)): self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        if isinstance(value, int | float | bool) or value is None:
            return value
        return self.text(str(value))

    def result(self, result: StorageCheck) -> StorageCheck:
        return StorageCheck(result.state, self.text(result.message), self.value(result.detail))


# --- shared helpers ------------------------------------------------------------------------------
def _quote(text: Any) -> str:
    """A server's message, on one line and short."""
    text = " ".join(str(text or "").split())
    return text if len(text) <= MAX_QUOTED else text[: MAX_QUOTED - 1] + "…"


def _first_line(text: Any) -> str:
    return _quote(str(text or "").strip().splitlines()[0] if str(text or "").strip() else "")


def _split_bucket_uri(uri: str, scheme: str, noun: str) -> tuple[str, str] | StorageCheck:
    """``scheme://bucket/key`` → (bucket, key), or an ``invalid`` result. The key is kept as
    written (no URL decoding): object keys may hold ``?``, ``#`` or ``%``."""
    prefix = f"{scheme}://"
    if not uri.lower().startswith(prefix):
        return _invalid(f"'{uri}' is not a {prefix} URI", uri=uri, expected_scheme=scheme)
    bucket, _, key = uri[len(prefix):].partition("/")
    if not bucket:
        return _invalid(f"'{uri}' names no {noun}", uri=uri)
    if any(ch.isspace() for ch in bucket) or any(ord(ch) < 32 for ch in uri):
        return _invalid(f"'{uri}' has whitespace or control characters in it", uri=uri)
    return bucket, key


def _invalid(message: str, **detail: Any) -> StorageCheck:
    return StorageCheck(INVALID, message, detail)


def _network_reason(exc: BaseException) -> tuple[str, str]:
    """(code, sentence) for a failure to talk to a server at all, found in the exception chain:
    ``tls``, ``refused``, ``dns``, ``timeout`` or ``connection``."""
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    texts: list[str] = []
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return "tls", f"the TLS certificate is not trusted ({current.verify_message or current.reason})"
        if isinstance(current, ssl.SSLError):
            return "tls", f"the TLS handshake failed ({current.reason or current})"
        if isinstance(current, ConnectionRefusedError):
            return "refused", "connection refused"
        if isinstance(current, socket.gaierror):
            return "dns", "the host name does not resolve"
        if isinstance(current, TimeoutError | socket.timeout):
            return "timeout", "timed out"
        texts.append(f"{type(current).__name__}: {current}")
        for nested in (current.__cause__, current.__context__, *getattr(current, "args", ())):
            if isinstance(nested, BaseException):
                stack.append(nested)
        for attribute in ("error", "reason", "inner_exception", "original_error"):
            nested = getattr(current, attribute, None)
            if isinstance(nested, BaseException):
                stack.append(nested)
        kwargs = getattr(current, "kwargs", None)
        if isinstance(kwargs, dict) and isinstance(kwargs.get("error"), BaseException):
            stack.append(kwargs["error"])
    joined = " ".join(texts).lower()
    if "certificate" in joined or "ssl" in joined or "tls" in joined:
        return "tls", "the TLS handshake failed"
    if "refused" in joined:
        return "refused", "connection refused"
    if "name or service not known" in joined or "nodename nor servname" in joined or "resolve" in joined:
        return "dns", "the host name does not resolve"
    if "timed out" in joined or "timeout" in joined:
        return "timeout", "timed out"
    return "connection", "the connection failed"


def _unreachable(endpoint: str, exc: BaseException, *, what: str = "", **detail: Any) -> StorageCheck:
    code, reason = _network_reason(exc)
    target = what or endpoint
    return StorageCheck(UNREACHABLE, f"Cannot reach {target}: {reason}", {"code": code, "endpoint": endpoint, **detail})


def _denied(target: str, code: str, server_message: str, status: int | None, **detail: Any) -> StorageCheck:
    quoted = _quote(server_message)
    tail = f"{code} — {quoted}" if quoted and quoted != code else code
    if code in _REFUSED_CREDENTIAL_CODES or status == 401:
        message = f"The server refused the credentials: {tail}"
    else:
        message = f"The server denied access to {target}: {tail}"
    return StorageCheck(DENIED, message, {"code": code, "status": status, **detail})


def _server_error(target: str, code: str, server_message: str, status: int | None, **detail: Any) -> StorageCheck:
    """An answer that is neither "missing" nor "denied": a 5xx is "unreachable" (the service
    is not serving), anything else "invalid" (the request as configured makes no sense to the
    server: a wrong region, an invalid bucket name)."""
    quoted = _quote(server_message)
    tail = f"{code} — {quoted}" if quoted and quoted != code else code
    if status is not None and status >= 500:
        return StorageCheck(UNREACHABLE, f"The storage service failed to answer for {target}: {tail}",
                            {"code": code, "status": status, **detail})
    return StorageCheck(INVALID, f"The server rejected the request for {target}: {tail}",
                        {"code": code, "status": status, **detail})


def _object_noun(count: int, truncated: bool) -> str:
    if truncated:
        return f"at least {count} objects"
    return "1 object" if count == 1 else f"{count} objects"


@contextlib.contextmanager
def _ca_file(pem: str) -> Iterator[str]:
    """The PEM text in a temporary file (libraries want a path), removed afterwards."""
    fd, path = tempfile.mkstemp(prefix="console-ca-", suffix=".pem")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(pem)
        yield path
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)


def _validate_ca_bundle(pem: str) -> str | None:
    """None when ``pem`` holds at least one PEM certificate, else why not."""
    from cryptography import x509

    try:
        certificates = x509.load_pem_x509_certificates(pem.encode())
    except ValueError:
        return "config 'ca_bundle' is not a PEM certificate bundle"
    return None if certificates else "config 'ca_bundle' holds no certificate"


def _validate_endpoint(url: str, field_name: str = "endpoint_url") -> str | None:
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
    except ValueError:
        return f"config '{field_name}' is not a URL"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"config '{field_name}' must be an http:// or https:// URL with a host"
    return None


# --- S3 --------------------------------------------------------------------------------------------
def _check_s3(config: dict, secrets: dict, uri: str, timeout: float, scrub: _Scrubber) -> StorageCheck:
    parsed = _split_bucket_uri(uri, "s3", "bucket")
    if isinstance(parsed, StorageCheck):
        return parsed
    bucket, key = parsed
    anonymous = bool(config.get("anonymous"))
    access_key = str(secrets.get("access_key_id") or "").strip()
    secret_key = str(secrets.get("secret_access_key") or "")
    if not anonymous:
        if not access_key and not secret_key:
            return StorageCheck(
                NOT_CHECKED,
                "The connection has no access key (the cluster's workload identity is used): "
                "the console cannot check with those credentials",
                {"reason": "no_credentials"},
            )
        missing = [name for name, value in (("access_key_id", access_key), ("secret_access_key", secret_key))
                   if not value]
        if missing:
            return _invalid(f"The connection's secret '{missing[0]}' is empty", field=missing[0])
    addressing = str(config.get("addressing") or "auto").strip().lower()
    if addressing not in ("path", "virtual", "auto"):
        return _invalid("config 'addressing' must be 'path' or 'virtual'", field="addressing")
    endpoint_url = str(config.get("endpoint_url") or "").strip()
    if endpoint_url and (problem := _validate_endpoint(endpoint_url)):
        return _invalid(problem, field="endpoint_url")
    region = str(config.get("region") or "").strip() or "us-east-1"
    ca_bundle = str(config.get("ca_bundle") or "").strip()
    if ca_bundle and (problem := _validate_ca_bundle(ca_bundle)):
        return _invalid(problem, field="ca_bundle")
    verify_tls = config.get("verify_tls", True) is not False

    endpoint = endpoint_url or f"https://s3.{region}.amazonaws.com"
    with contextlib.ExitStack() as stack:
        verify: bool | str = verify_tls
        if verify_tls and ca_bundle:
            verify = stack.enter_context(_ca_file(ca_bundle))
        client = _s3_client(endpoint_url=endpoint_url or None, region=region, addressing=addressing,
                            verify=verify, anonymous=anonymous, access_key=access_key, secret_key=secret_key,
                            timeout=timeout)
        return _s3_probe(client, bucket, key, endpoint)


def _s3_client(*, endpoint_url: str | None, region: str, addressing: str, verify: bool | str, anonymous: bool,
               access_key: str, secret_key: str, timeout: float):
    """An S3 client with exactly the connection's settings: explicit keys (or unsigned
    requests), one attempt, the given timeouts. No ambient credential chain is consulted."""
    from botocore import UNSIGNED
    from botocore.config import Config

    client_config = Config(
        region_name=region,
        s3={"addressing_style": addressing},
        connect_timeout=timeout, read_timeout=timeout,
        retries={"mode": "standard", "total_max_attempts": 1},
        signature_version=UNSIGNED if anonymous else "s3v4",
        user_agent_extra="inference-console-preflight",
    )
    with _BOTO_LOCK:
        return _boto_session().client(
            "s3", endpoint_url=endpoint_url, verify=verify, config=client_config, region_name=region,
            aws_access_key_id=None if anonymous else access_key,
            aws_secret_access_key=None if anonymous else secret_key,
        )


_BOTO_LOCK = threading.Lock()


@functools.cache
def _boto_session():
    """One boto3 session for every check: it holds no credentials (each client gets the
    connection's keys), only the loaded service descriptions, which cost ~0.15 s per new
    session. Sessions are not thread-safe: clients are made under ``_BOTO_LOCK``."""
    import boto3

    return boto3.session.Session()


def _s3_error(exc) -> tuple[str, str, int | None]:
    error = exc.response.get("Error") or {}
    status = (exc.response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
    code = str(error.get("Code") or status or "Error")
    message = str(error.get("Message") or "")
    return code, message, status


def _s3_probe(client, bucket: str, key: str, endpoint: str) -> StorageCheck:
    from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError, ParamValidationError
    from botocore.exceptions import ConnectionError as BotoConnectionError

    target = f"s3://{bucket}/{key}"
    base = {"endpoint": endpoint, "bucket": bucket, "key": key}
    head_error: tuple[str, str, int | None] | None = None
    try:
        if key:
            try:
                head = client.head_object(Bucket=bucket, Key=key)
            except ClientError as exc:
                head_error = _s3_error(exc)
            else:
                size = head.get("ContentLength")
                return StorageCheck(OK, f"Object '{target}' exists and is readable ({size} bytes)",
                                    {**base, "match": "object", "objects_found": 1, "size": size, "status": 200})
        # A HEAD answer has no body: the LIST below says which bucket or key is missing and
        # carries the server's own error code.
        try:
            listing = client.list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=LIST_LIMIT)
        except ClientError as exc:
            code, message, status = _s3_error(exc)
            if code == "NoSuchBucket" or (status == 404 and code in ("404", "NotFound")):
                return StorageCheck(MISSING_CONTAINER, f"Bucket '{bucket}' does not exist ({code})",
                                    {**base, "code": code, "status": status})
            return _s3_classify(target, code, message, status, base)
        contents = listing.get("Contents") or []
        if not contents:
            if head_error and head_error[2] not in (404, None):
                # HEAD refused and LIST allowed but empty: report HEAD's refusal.
                return _s3_classify(target, *head_error, base)
            where = f"under '{key}'" if key else "in it"
            return StorageCheck(
                MISSING_OBJECT,
                f"Nothing at '{target}': no object with that key and no object {where} in bucket '{bucket}'"
                if key else f"Bucket '{bucket}' is empty",
                {**base, "code": "NoSuchKey", "status": 404, "objects_found": 0},
            )
        if head_error and head_error[2] not in (404, None):
            # Listed, but the exact key was refused: the object exists and is not readable.
            return _s3_classify(target, *head_error, base)
        count, truncated = len(contents), bool(listing.get("IsTruncated"))
        first = contents[0]["Key"]
        # Listable is not readable: HEAD the first object under the prefix.
        try:
            client.head_object(Bucket=bucket, Key=first)
        except ClientError as exc:
            code, message, status = _s3_error(exc)
            if status in (401, 403):
                return _denied(f"s3://{bucket}/{first}", "AccessDenied" if code == "403" else code,
                               message or "objects can be listed but not read", status,
                               **base, objects_found=count)
            return _s3_classify(f"s3://{bucket}/{first}", code, message, status, base)
        noun = _object_noun(count, truncated)
        return StorageCheck(OK, f"Found {noun} under '{target}' (first: '{first}'), readable",
                            {**base, "match": "prefix", "objects_found": count, "truncated": truncated,
                             "first": first, "status": 200})
    except (BotoConnectionError, HTTPClientError) as exc:
        return _unreachable(endpoint, exc)
    except ParamValidationError as exc:
        report = _first_line(exc.kwargs.get("report")).split(": ")[0]
        return _invalid(f"'{target}' is not a valid S3 location: {report}", **base)
    except BotoCoreError as exc:
        return _invalid(f"The S3 request could not be made: {type(exc).__name__}", **base)


def _s3_classify(target: str, code: str, message: str, status: int | None, base: dict) -> StorageCheck:
    if status in (401, 403) or code in _REFUSED_CREDENTIAL_CODES or code == "AccessDenied":
        if code == "403":
            code = "AccessDenied"
        return _denied(target, code, message, status, **base)
    if code == "NoSuchBucket":
        return StorageCheck(MISSING_CONTAINER, f"Bucket '{base['bucket']}' does not exist ({code})",
                            {**base, "code": code, "status": status})
    if code in ("NoSuchKey", "404", "NotFound"):
        return StorageCheck(MISSING_OBJECT, f"No object at '{target}' ({code})", {**base, "code": code, "status": status})
    return _server_error(target, code, message, status, **base)


# --- Google Cloud Storage -----------------------------------------------------------------------------
_SA_REQUIRED_FIELDS = ("client_email", "private_key", "token_uri")


def _gcs_credentials(secrets: dict, scrub: _Scrubber):
    """(credentials, service-account info) or an ``invalid`` result naming the field."""
    from google.auth.credentials import AnonymousCredentials

    raw = secrets.get("service_account_json")
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return AnonymousCredentials(), {}
    if isinstance(raw, dict):
        info = raw
    else:
        try:
            info = json.loads(raw)
        except (TypeError, ValueError) as exc:
            where = f" (line {exc.lineno}, column {exc.colno})" if isinstance(exc, json.JSONDecodeError) else ""
            return _invalid(f"The secret 'service_account_json' is not valid JSON{where}",
                            field="service_account_json")
    if not isinstance(info, dict):
        return _invalid("The secret 'service_account_json' is not a JSON object", field="service_account_json")
    scrub.add(info)
    if info.get("type") != "service_account":
        return _invalid("The secret 'service_account_json' must have \"type\": \"service_account\" "
                        "(a service-account key file)", field="service_account_json.type")
    missing = [name for name in _SA_REQUIRED_FIELDS if not isinstance(info.get(name), str) or not info.get(name)]
    if missing:
        names = ", ".join(f"'{name}'" for name in missing)
        return _invalid(f"The secret 'service_account_json' has no {names} field",
                        field=f"service_account_json.{missing[0]}")
    from google.oauth2 import service_account

    try:
        credentials = service_account.Credentials.from_service_account_info(info, scopes=[GCS_READ_ONLY_SCOPE])
    except Exception:  # noqa: BLE001 - the key's parser raises several types; its text is never shown
        return _invalid("The secret 'service_account_json' has a 'private_key' that is not a valid PEM private key",
                        field="service_account_json.private_key")
    return credentials, info


def _check_gcs(config: dict, secrets: dict, uri: str, timeout: float, scrub: _Scrubber) -> StorageCheck:
    parsed = _split_bucket_uri(uri, "gs", "bucket")
    if isinstance(parsed, StorageCheck):
        return parsed
    bucket_name, key = parsed
    endpoint_url = str(config.get("endpoint_url") or "").strip().rstrip("/")
    if endpoint_url and (problem := _validate_endpoint(endpoint_url)):
        return _invalid(problem, field="endpoint_url")
    credentials = _gcs_credentials(secrets, scrub)
    if isinstance(credentials, StorageCheck):
        return credentials
    credentials, info = credentials
    from google.auth.transport.requests import AuthorizedSession
    from google.cloud import storage

    # A project is always given: without one the client would look for a default project
    # (environment, metadata server). Reading objects does not use it.
    project = str(config.get("project") or info.get("project_id") or "-")
    session = AuthorizedSession(credentials, refresh_timeout=timeout)
    client = storage.Client(project=project, credentials=credentials, _http=session,
                            client_options={"api_endpoint": endpoint_url} if endpoint_url else None)
    # The client's bucket-metadata cache (3.x, for observability) fetches the bucket's metadata
    # in a background thread on the first call: requests the preflight did not ask for, that
    # outlive it. Off for this client.
    client._bucket_metadata_cache = None
    endpoint = endpoint_url or "https://storage.googleapis.com"
    try:
        return _gcs_probe(client, bucket_name, key, endpoint, timeout)
    finally:
        scrub.add(getattr(credentials, "token", None))
        client.close()


def _gcs_probe(client, bucket_name: str, key: str, endpoint: str, timeout: float) -> StorageCheck:
    import requests
    from google.api_core import exceptions as api_exceptions
    from google.auth import exceptions as auth_exceptions

    target = f"gs://{bucket_name}/{key}"
    base = {"endpoint": endpoint, "bucket": bucket_name, "key": key}
    bucket = client.bucket(bucket_name)
    try:
        if key and not key.endswith("/"):
            blob = bucket.get_blob(key, timeout=timeout, retry=None)
            if blob is not None:
                return StorageCheck(OK, f"Object '{target}' exists and is readable ({blob.size} bytes)",
                                    {**base, "match": "object", "objects_found": 1, "size": blob.size,
                                     "status": 200})
        prefix = key if not key or key.endswith("/") else key + "/"
        iterator = client.list_blobs(bucket_name, prefix=prefix or None, max_results=LIST_LIMIT,
                                     timeout=timeout, retry=None)
        names = [blob.name for blob in iterator]
        if not names:
            return _nothing_at(target, prefix, noun="object", holder=f"bucket '{bucket_name}'",
                               detail={**base, "code": "notFound"}, named=bool(key))
        # Listable is not readable: the first object's metadata takes the read permission.
        bucket.get_blob(names[0], timeout=timeout, retry=None)
        noun = _object_noun(len(names), len(names) >= LIST_LIMIT)
        return StorageCheck(OK, f"Found {noun} under '{target}' (first: '{names[0]}'), readable",
                            {**base, "match": "prefix", "objects_found": len(names),
                             "truncated": len(names) >= LIST_LIMIT, "first": names[0], "status": 200})
    except api_exceptions.NotFound as exc:
        code, message = _gcs_error(exc)
        said = f"{code}: {_quote(message)}" if message else code
        return StorageCheck(MISSING_CONTAINER, f"Bucket '{bucket_name}' does not exist ({said})",
                            {**base, "code": code, "status": 404})
    except (api_exceptions.Forbidden, api_exceptions.Unauthorized) as exc:
        code, message = _gcs_error(exc)
        return _denied(target, code, message, exc.code, **base)
    except api_exceptions.GoogleAPICallError as exc:
        code, message = _gcs_error(exc)
        return _server_error(target, code, message, exc.code, **base)
    except auth_exceptions.RefreshError as exc:
        return _gcs_refresh_refused(exc, base)
    except auth_exceptions.TransportError as exc:
        return _unreachable(endpoint, exc, what="the service account's token endpoint",
                                stage="token")
    except requests.exceptions.RequestException as exc:
        return _unreachable(endpoint, exc)


def _gcs_error(exc) -> tuple[str, str]:
    errors = getattr(exc, "errors", None) or []
    first = errors[0] if errors and isinstance(errors[0], dict) else {}
    code = str(first.get("reason") or exc.code or type(exc).__name__)
    message = str(first.get("message") or exc.message or "")
    # The library prefixes "GET <url>: " and says "unknown error" when the body was empty.
    method, _, rest = message.partition(" ")
    if method.isupper() and rest.startswith(("http://", "https://")) and ": " in rest:
        message = rest.split(": ", 1)[1]
    if message.strip() == "unknown error":
        message = ""
    return code, message


def _gcs_refresh_refused(exc, base: dict) -> StorageCheck:
    """The token endpoint answered, and refused the service account (google-auth's
    ``RefreshError`` carries the OAuth error and its description)."""
    response = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], dict) else {}
    code = str(response.get("error") or "RefreshError")
    description = str(response.get("error_description") or "")
    if not response:
        # No OAuth answer: a transport problem wrapped as a refresh error, or a bad answer.
        text = _first_line(exc.args[0] if exc.args else "")
        cause = exc.__cause__ or exc.__context__
        if cause is not None and not isinstance(cause, ValueError):
            return _unreachable(base["endpoint"], cause, what="the service account's token endpoint",
                                stage="token")
        description = text
    message = f"The token endpoint refused the service account: {code}" + (
        f" — {_quote(description)}" if description else "")
    return StorageCheck(DENIED, message, {**base, "code": code, "status": 400 if response else None,
                                          "stage": "token"})


# --- Azure Blob -----------------------------------------------------------------------------------------
def _parse_azure_uri(uri: str) -> tuple[str, str, str, str] | StorageCheck:
    """KServe's form ``https://<account>.blob.core.windows.net/<container>/<path>`` →
    (account, host, container, path)."""
    from urllib.parse import urlsplit

    if not uri.lower().startswith("https://"):
        return _invalid(f"'{uri}' is not an Azure Blob URL (https://<account>.blob.core.windows.net/<container>/<path>)",
                        uri=uri, expected_scheme="https")
    try:
        parts = urlsplit(uri)
    except ValueError:
        return _invalid(f"'{uri}' is not a URL", uri=uri)
    host = (parts.hostname or "").lower()
    labels = host.split(".")
    if len(labels) >= 3 and labels[1] == "file":
        return StorageCheck(NOT_CHECKED, "Azure Files shares are not checked before deploy", {"reason": "azure_files"})
    if len(labels) < 3 or labels[1] != "blob" or not labels[0]:
        return _invalid(f"'{uri}' is not an Azure Blob URL (https://<account>.blob.core.windows.net/<container>/<path>)",
                        uri=uri)
    container, _, path = parts.path.lstrip("/").partition("/")
    if not container:
        return _invalid(f"'{uri}' names no container", uri=uri)
    return labels[0], host, container, path


def _azure_credential(config: dict, secrets: dict, account_name: str, timeout: float):
    """The credential the connection describes: the account key (shared key), a service
    principal (tenant, client id, client secret) or none (anonymous, a public container);
    else an ``invalid`` result naming the field."""
    account_key = str(secrets.get("account_key") or "").strip()
    client_secret = str(secrets.get("client_secret") or "")
    if account_key:
        try:
            base64.b64decode(account_key, validate=True)
        except (binascii.Error, ValueError):
            return _invalid("The secret 'account_key' is not base64 (copy the storage account's access key)",
                            field="account_key")
        return {"account_name": account_name, "account_key": account_key}
    if client_secret:
        missing = [name for name in ("tenant_id", "client_id") if not str(config.get(name) or "").strip()]
        if missing:
            return _invalid(f"config '{missing[0]}' is needed with a client secret (service principal)",
                            field=missing[0])
        from azure.identity import ClientSecretCredential

        options: dict[str, Any] = {"connection_timeout": timeout, "read_timeout": timeout, "retry_total": 0}
        authority = str(config.get("authority_host") or "").strip()
        if authority:
            # A private or sovereign authority: no instance discovery against the public cloud.
            options.update(authority=authority, disable_instance_discovery=True)
        return ClientSecretCredential(str(config["tenant_id"]).strip(), str(config["client_id"]).strip(),
                                      client_secret, **options)
    return None


def _check_azure(config: dict, secrets: dict, uri: str, timeout: float, scrub: _Scrubber) -> StorageCheck:
    parsed = _parse_azure_uri(uri)
    if isinstance(parsed, StorageCheck):
        return parsed
    uri_account, host, container, path = parsed
    configured_account = str(config.get("account_name") or "").strip()
    if configured_account and configured_account.lower() != uri_account:
        return _invalid(f"The URI names storage account '{uri_account}' but the connection is for "
                        f"'{configured_account}'", field="account_name")
    account_name = configured_account or uri_account
    endpoint_url = str(config.get("endpoint_url") or "").strip().rstrip("/")
    if endpoint_url and (problem := _validate_endpoint(endpoint_url)):
        return _invalid(problem, field="endpoint_url")
    # With an endpoint (Azurite, a private endpoint) the URI's container and path go there.
    account_url = endpoint_url or f"https://{host}"
    credential = _azure_credential(config, secrets, account_name, timeout)
    if isinstance(credential, StorageCheck):
        return credential
    from azure.storage.blob import BlobServiceClient

    service = None
    try:
        service = BlobServiceClient(account_url=account_url, credential=credential, connection_timeout=timeout,
                                    read_timeout=timeout, retry_total=0)
        return _azure_probe(service, container, path, account_url)
    except ValueError as exc:
        # The SDK refuses some combinations before sending anything (a token over http://).
        return _invalid(f"The Azure request could not be made: {_first_line(exc)}", endpoint=account_url)
    finally:
        if service is not None:
            with contextlib.suppress(Exception):
                service.close()
        if hasattr(credential, "close"):
            with contextlib.suppress(Exception):
                credential.close()


def _azure_code(exc) -> str:
    code = getattr(exc, "error_code", None)
    code = getattr(code, "value", code)
    if not code:
        response = getattr(exc, "response", None)
        headers = getattr(response, "headers", None) or {}
        code = headers.get("x-ms-error-code")
    return str(code or getattr(exc, "status_code", None) or type(exc).__name__)


def _azure_message(exc) -> str:
    """The error body's message (first line: the SDK appends request id, time and the body);
    for a HEAD, which has no body, the status line's reason (Azure puts the message there)."""
    text = _first_line(getattr(exc, "message", None) or "")
    text = text.removeprefix("Operation returned an invalid status ").strip("'\"")
    return text or _first_line(getattr(exc, "reason", None) or "")


def _azure_probe(service, container: str, path: str, endpoint: str) -> StorageCheck:
    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ServiceRequestError,
        ServiceResponseError,
    )

    target = f"{container}/{path}"
    base = {"endpoint": endpoint, "container": container, "path": path}
    container_client = service.get_container_client(container)
    try:
        if path:
            try:
                properties = container_client.get_blob_client(path).get_blob_properties()
            except HttpResponseError as exc:
                if _azure_code(exc) != "BlobNotFound":
                    raise
            else:
                size = properties.size
                return StorageCheck(OK, f"Blob '{target}' exists and is readable ({size} bytes)",
                                    {**base, "match": "object", "objects_found": 1, "size": size, "status": 200})
        pages = container_client.list_blobs(name_starts_with=path or None, results_per_page=LIST_LIMIT).by_page()
        names = [blob.name for blob in next(pages, [])]
        if not names:
            return _nothing_at(target, path, noun="blob", holder=f"container '{container}'",
                               detail={**base, "code": "BlobNotFound"}, named=bool(path))
        # Listable is not readable (a SAS or a role may allow one and not the other).
        container_client.get_blob_client(names[0]).get_blob_properties()
        truncated = len(names) >= LIST_LIMIT
        noun = _object_noun(len(names), truncated).replace("object", "blob")
        return StorageCheck(OK, f"Found {noun} under '{target}' (first: '{names[0]}'), readable",
                            {**base, "match": "prefix", "objects_found": len(names), "truncated": truncated,
                             "first": names[0], "status": 200})
    except (ServiceRequestError, ServiceResponseError) as exc:
        return _unreachable(endpoint, exc)
    except HttpResponseError as exc:
        code, status = _azure_code(exc), getattr(exc, "status_code", None)
        if code == "ContainerNotFound":
            return StorageCheck(MISSING_CONTAINER, f"Container '{container}' does not exist ({code})",
                                {**base, "code": code, "status": status})
        if code == "BlobNotFound":
            return StorageCheck(MISSING_OBJECT, f"No blob at '{target}' ({code})", {**base, "code": code, "status": status})
        if status in (401, 403):
            return _denied(target, code, _azure_message(exc), status, **base)
        if isinstance(exc, ClientAuthenticationError) and status is None:
            return _azure_token_failure(exc, base)
        return _server_error(target, code, _azure_message(exc), status, **base)
    except ClientAuthenticationError as exc:
        return _azure_token_failure(exc, base)


def _azure_token_failure(exc, base: dict) -> StorageCheck:
    """The service principal got no token: the authority was unreachable, or it refused the
    client (its AADSTS code is quoted)."""
    from azure.core.exceptions import ServiceRequestError, ServiceResponseError

    chain = [exc]
    current = exc
    while (current := current.__cause__ or current.__context__) is not None and len(chain) < 10:
        chain.append(current)
    if any(isinstance(item, ServiceRequestError | ServiceResponseError | OSError) for item in chain):
        return _unreachable(base["endpoint"], exc, what="the service principal's token endpoint",
                                stage="token")
    text = _first_line(getattr(exc, "message", None) or exc)
    code = next((word.rstrip(":") for word in text.split() if word.startswith("AADSTS")), "ClientAuthenticationError")
    if code == "ClientAuthenticationError" and ("connection" in text.lower() or "unreachable" in text.lower()
                                                 or "timed out" in text.lower()):
        return _unreachable(base["endpoint"], exc, what="the service principal's token endpoint",
                                stage="token")
    return StorageCheck(DENIED, f"The identity provider refused the service principal: {text}",
                        {**base, "code": code, "status": None, "stage": "token"})


# --- kinds the console does not check ----------------------------------------------------------------------
_UNCHECKED = {
    "hf": (("hf://",), "Hugging Face repositories are not checked before deploy"),
    "oci": (("oci://", "oci+native://", "oci+fetch://"),
            "OCI model images are not checked before deploy: the cluster pulls them with its own pull secrets"),
    "https": (("https://", "http://"), "HTTP(S) downloads are not checked before deploy"),
}


def _not_checked(kind: str):
    schemes, sentence = _UNCHECKED[kind]

    def check(config: dict, secrets: dict, uri: str, timeout: float, scrub: _Scrubber) -> StorageCheck:
        if not uri.lower().startswith(schemes):
            return _invalid(f"'{uri}' does not start with {' or '.join(schemes)}", uri=uri,
                            expected_scheme=schemes[0].removesuffix("://"))
        return StorageCheck(NOT_CHECKED, sentence, {"reason": "kind_not_checked", "kind": kind})

    return check


_CHECKERS = {
    "s3": _check_s3,
    "gcs": _check_gcs,
    "azure": _check_azure,
    **{kind: _not_checked(kind) for kind in _UNCHECKED},
}
