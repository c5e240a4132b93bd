"""Storage connections as KServe reads them: which settings and secret fields each kind has,
which storage URIs it serves, and the Secret and ServiceAccount the console writes for it in a
project namespace (docs/storage.md; KServe's pkg/credentials at each release).

One ServiceAccount per connection and namespace (named like the Secret) lists exactly that
connection's Secret, and a predictor names it in ``serviceAccountName``. KServe hands the
storage initializer the credentials of every secret its ServiceAccount lists, so a shared
per-project account would give each endpoint every connection of the project — and two S3
connections on one account would overwrite each other's ``AWS_*`` variables. With one account per
connection an endpoint's pods see only the credentials of the version they serve.

Pure functions of plain data: the secret values come in decrypted from
``endpoints.services.connections`` and leave only inside the Secret manifest, which is applied and
never stored, shown or audited.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from urllib.parse import urlparse

from django.conf import settings

from endpoints.capabilities import Capabilities

LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_INSTANCE = "inference-console.io/instance"
LABEL_CONNECTION = "inference-console.io/connection"
ANNOTATION_SECRET_VERSION = "inference-console.io/secret-version"  # noqa: S105 - an annotation name
S3_ANNOTATION = "serving.kserve.io/s3-"
HF_TOKEN_KEY = "HF_TOKEN"  # noqa: S105 - the Secret key KServe reads
HTTPS_HOST_KEY = "https-host"
HTTPS_HEADERS_KEY = "headers"
AZURE_ACCOUNT_KEY = "AZURE_STORAGE_ACCESS_KEY"
CA_BUNDLE_FILE = "cabundle.crt"
NGC_KEY = "NGC_API_KEY"  # noqa: S105 - the Secret key a NIM reads
NGC_REGISTRY = "nvcr.io"
NGC_USER = "$oauthtoken"  # NGC's fixed registry user name for API-key logins
PULL_SUFFIX = "-pull"


@dataclass(frozen=True)
class Field:
    name: str
    label: str
    required: bool = False
    help: str = ""
    kind: str = "text"  # text | bool | textarea | choice
    choices: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class KindSpec:
    key: str
    label: str
    schemes: tuple[str, ...]
    config: tuple[Field, ...]
    secrets: tuple[Field, ...]
    example_uri: str


KINDS: dict[str, KindSpec] = {
    "s3": KindSpec(
        "s3", "S3 or S3-compatible", ("s3",),
        config=(
            Field("endpoint_url", "Endpoint URL", help="Empty for AWS; e.g. https://minio.internal:9000 for S3-compatible stores."),
            Field("region", "Region", help="e.g. us-east-1"),
            Field("verify_tls", "Verify TLS certificates", kind="bool"),
            Field("ca_bundle", "CA bundle (PEM)", kind="textarea",
                  help="Certificates of a private CA the endpoint's TLS certificate chains to."),
            Field("addressing", "Addressing style", kind="choice",
                  choices=(("path", "Path style (https://host/bucket/key)"),
                           ("virtual", "Virtual-host style (https://bucket.host/key)"))),
            Field("anonymous", "Anonymous (public bucket, no keys)", kind="bool"),
        ),
        secrets=(Field("access_key_id", "Access key ID"), Field("secret_access_key", "Secret access key")),
        example_uri="s3://bucket/path/to/model",
    ),
    "gcs": KindSpec(
        "gcs", "Google Cloud Storage", ("gs",),
        config=(Field("project", "Project ID"),),
        secrets=(Field("service_account_json", "Service-account key (JSON)", required=True, kind="textarea"),),
        example_uri="gs://bucket/path/to/model",
    ),
    "azure": KindSpec(
        "azure", "Azure Blob Storage", ("https",),
        config=(
            Field("account_name", "Storage account", required=True),
            Field("tenant_id", "Tenant ID", help="Service principal only."),
            Field("client_id", "Client ID", help="Service principal only."),
            Field("subscription_id", "Subscription ID", help="Service principal only (optional)."),
        ),
        secrets=(Field("account_key", "Account key", help="Either an account key …"),
                 Field("client_secret", "Client secret", help="… or the service principal's secret.")),
        example_uri="https://account.blob.core.windows.net/container/path",
    ),
    "hf": KindSpec(
        "hf", "Hugging Face token", ("hf",),
        config=(),
        secrets=(Field("token", "Access token", required=True),),
        example_uri="hf://owner/model",
    ),
    "oci": KindSpec(
        "oci", "OCI registry", ("oci",),
        config=(Field("registry", "Registry host", required=True, help="e.g. registry.example.com"),
                Field("username", "User name", required=True)),
        secrets=(Field("password", "Password or token", required=True),),
        example_uri="oci://registry.example.com/models/name:tag",
    ),
    "ngc": KindSpec(
        "ngc", "NVIDIA NGC API key", ("pvc",),
        config=(),
        secrets=(Field("api_key", "NGC API key", required=True,
                       help="Pulls NIM images from nvcr.io and downloads their engines."),
                 Field("hf_token", "Hugging Face token", help="Optional: for NIMs that download from the Hub.")),
        example_uri="pvc://nvidia-nim-pvc/",
    ),
    "https": KindSpec(
        "https", "HTTPS with headers", ("https", "http"),
        config=(Field("host", "Host", required=True, help="The host the headers are sent to, e.g. models.example.com"),),
        secrets=(Field("headers", "Headers (JSON object)", required=True, kind="textarea",
                       help='e.g. {"Authorization": "Bearer …"}'),),
        example_uri="https://models.example.com/path/model.tar.gz",
    ),
}

NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?$")


class ConnectionError_(ValueError):
    """Settings or secret values a connection of its kind cannot have (``field`` names which)."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


# --- settings and secrets ----------------------------------------------------------------------


def _truthy(value) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "on"}
    return bool(value)


def clean_config(kind: str, config: dict) -> dict:
    """The kind's settings, normalised (booleans, defaults, URLs checked); raises ConnectionError_."""
    spec = KINDS[kind]
    known = {f.name: f for f in spec.config}
    unknown = sorted(set(config or {}) - set(known))
    if unknown:
        raise ConnectionError_(unknown[0], f"Unknown setting for a {spec.label} connection: {', '.join(unknown)}.")
    out: dict = {}
    for name, field in known.items():
        value = (config or {}).get(name)
        if field.kind == "bool":
            out[name] = _truthy(value) if value is not None else (name == "verify_tls")
            continue
        value = "" if value is None else str(value).strip()
        if field.required and not value:
            raise ConnectionError_(name, f"{field.label} is required.")
        if field.choices and value and value not in {c for c, _ in field.choices}:
            raise ConnectionError_(name, f"{field.label} must be one of {', '.join(c for c, _ in field.choices)}.")
        out[name] = value
    if kind == "s3":
        out["addressing"] = out["addressing"] or "path"
        if out["endpoint_url"]:
            parsed = urlparse(out["endpoint_url"])
            if parsed.scheme not in ("http", "https") or not parsed.hostname:
                raise ConnectionError_("endpoint_url", "Endpoint URL must be an http:// or https:// URL.")
        if out["ca_bundle"] and "-----BEGIN CERTIFICATE-----" not in out["ca_bundle"]:
            raise ConnectionError_("ca_bundle", "CA bundle must be PEM certificates (-----BEGIN CERTIFICATE-----).")
        if out["ca_bundle"]:
            out["ca_bundle"] += "\n"  # PEM files end with a newline; some TLS stacks insist
    if kind == "oci" and ("/" in out["registry"] or " " in out["registry"]):
        raise ConnectionError_("registry", "Registry host is a host name (optionally with :port), without a path.")
    if kind == "https" and ("/" in out["host"] or " " in out["host"]):
        raise ConnectionError_("host", "Host is a host name (optionally with :port), without scheme or path.")
    return out


def clean_secrets(kind: str, config: dict, secrets: dict, *, previous: dict | None = None) -> dict:
    """The secret values to store: given fields replace stored ones, blank ones keep them (edit
    forms never show a secret back); raises ConnectionError_ when required values are missing."""
    spec = KINDS[kind]
    merged = dict(previous or {})
    for field in spec.secrets:
        value = (secrets or {}).get(field.name)
        if value is not None and str(value).strip() != "":
            merged[field.name] = str(value).strip() if field.kind != "textarea" else str(value)
    merged = {f.name: merged[f.name] for f in spec.secrets if merged.get(f.name)}
    if kind == "s3" and not config.get("anonymous"):
        for name in ("access_key_id", "secret_access_key"):
            if not merged.get(name):
                raise ConnectionError_(name, f"{ {f.name: f.label for f in spec.secrets}[name]} is required "
                                             "(or mark the connection anonymous).")
    if kind == "s3" and config.get("anonymous"):
        merged = {}
    if kind == "azure":
        if not merged.get("account_key") and not merged.get("client_secret"):
            raise ConnectionError_("account_key", "Give an account key or a service principal's client secret.")
        if merged.get("client_secret") and not (config.get("tenant_id") and config.get("client_id")):
            raise ConnectionError_("client_id", "A service principal needs its tenant ID and client ID.")
    if kind == "gcs":
        try:
            document = json.loads(merged.get("service_account_json", ""))
        except ValueError:
            raise ConnectionError_("service_account_json", "The service-account key is not valid JSON.") from None
        if not isinstance(document, dict) or document.get("type") != "service_account" \
                or not document.get("private_key") or not document.get("client_email"):
            raise ConnectionError_("service_account_json", "The service-account key must be a JSON key file of type "
                                                           "service_account with client_email and private_key.")
    if kind == "https":
        try:
            headers = json.loads(merged.get("headers", ""))
        except ValueError:
            raise ConnectionError_("headers", "Headers must be a JSON object of header names to values.") from None
        if not isinstance(headers, dict) or not headers or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in headers.items()):
            raise ConnectionError_("headers", "Headers must be a JSON object of header names to text values.")
    for field in spec.secrets:
        if field.required and not merged.get(field.name):
            raise ConnectionError_(field.name, f"{field.label} is required.")
    return merged


# --- which URIs a connection serves ------------------------------------------------------------


def uri_problem(kind: str, config: dict, uri: str) -> str | None:
    """Why a connection of ``kind`` cannot serve ``uri`` (None: it can)."""
    spec = KINDS[kind]
    parsed = urlparse(uri or "")
    scheme = parsed.scheme.lower()
    if scheme not in spec.schemes:
        wanted = " or ".join(f"{s}://" for s in spec.schemes)
        return f"A {spec.label} connection serves {wanted} URIs, not {scheme or 'this'}:// ones."
    if kind == "azure":
        account = (config.get("account_name") or "").lower()
        host = (parsed.hostname or "").lower()
        if not re.match(r"^[a-z0-9]+\.(blob|file)\.core\.windows\.net$", host):
            return "An Azure connection serves https://<account>.blob.core.windows.net/<container>/<path> URIs."
        if account and host.split(".")[0] != account:
            return f"The URI's storage account ({host.split('.')[0]}) is not the connection's ({account})."
    if kind == "https" and (parsed.netloc or "").lower() != (config.get("host") or "").lower():
        return f"The connection's headers are for {config.get('host')}, not {parsed.netloc or 'this host'}."
    if kind == "oci" and (parsed.netloc or "").lower() != (config.get("registry") or "").lower():
        return f"The connection's credentials are for {config.get('registry')}, not {parsed.netloc or 'this registry'}."
    return None


def kinds_for_uri(uri: str) -> list[str]:
    scheme = urlparse(uri or "").scheme.lower()
    return [key for key, spec in KINDS.items() if scheme in spec.schemes]


# --- on the cluster ----------------------------------------------------------------------------


OBJECT_PREFIX = "ic-"
PLATFORM_OBJECT_PREFIX = "ic-shared-"


def object_name(connection_name: str, *, platform: bool) -> str:
    """The Secret and ServiceAccount name of a connection in a namespace."""
    return f"{PLATFORM_OBJECT_PREFIX if platform else OBJECT_PREFIX}{connection_name}"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def _labels(connection_name: str) -> dict:
    return {LABEL_MANAGED_BY: "inference-console", LABEL_INSTANCE: settings.CONSOLE_INSTANCE,
            LABEL_CONNECTION: connection_name}


def secret_data(kind: str, config: dict, secrets: dict, capabilities: Capabilities | None) -> tuple[dict, dict, str]:
    """(string data, annotations, Secret type) for KServe's credential builder of the cluster's release."""
    caps = capabilities or Capabilities()
    annotations: dict[str, str] = {}
    data: dict[str, str] = {}
    secret_type = "Opaque"  # noqa: S105 - a Secret type
    if kind == "s3":
        id_name, secret_name = caps.s3_key_names
        # KServe recognises an S3 secret by its secret-key entry; an anonymous connection keeps
        # empty keys so the storage initializer is still told where the store is.
        data[id_name] = secrets.get("access_key_id", "")
        data[secret_name] = secrets.get("secret_access_key", "")
        endpoint = config.get("endpoint_url") or ""
        if endpoint:
            annotations[S3_ANNOTATION + "endpoint"] = endpoint
            annotations[S3_ANNOTATION + "usehttps"] = "1" if endpoint.lower().startswith("https://") else "0"
        if config.get("region"):
            annotations[S3_ANNOTATION + "region"] = config["region"]
        annotations[S3_ANNOTATION + "verifyssl"] = "1" if config.get("verify_tls", True) else "0"
        annotations[S3_ANNOTATION + "usevirtualbucket"] = "true" if config.get("addressing") == "virtual" else "false"
        if config.get("anonymous"):
            annotations[S3_ANNOTATION + "useanoncredential"] = "true"
    elif kind == "gcs":
        data[caps.gcs_credential_file] = secrets.get("service_account_json", "")
    elif kind == "azure":
        if secrets.get("client_secret"):
            data.update({"AZURE_CLIENT_ID": config.get("client_id", ""), "AZURE_TENANT_ID": config.get("tenant_id", ""),
                         "AZURE_CLIENT_SECRET": secrets["client_secret"]})
            if config.get("subscription_id"):
                data["AZURE_SUBSCRIPTION_ID"] = config["subscription_id"]
        else:
            data[AZURE_ACCOUNT_KEY] = secrets.get("account_key", "")
    elif kind == "hf":
        data[HF_TOKEN_KEY] = secrets.get("token", "")
    elif kind == "oci":
        registry, user, password = config.get("registry", ""), config.get("username", ""), secrets.get("password", "")
        auth = _b64(f"{user}:{password}")
        data[".dockerconfigjson"] = json.dumps(
            {"auths": {registry: {"username": user, "password": password, "auth": auth}}}, sort_keys=True)
        secret_type = "kubernetes.io/dockerconfigjson"  # noqa: S105 - a Secret type
    elif kind == "ngc":
        # The names a NIM runtime reads (NVIDIA's nvidia-nim-secrets); the token stays an empty
        # entry when not given, so the runtime's secretKeyRef resolves either way.
        data[NGC_KEY] = secrets.get("api_key", "")
        data[HF_TOKEN_KEY] = secrets.get("hf_token", "")
    elif kind == "https":
        data[HTTPS_HOST_KEY] = config.get("host", "")
        data[HTTPS_HEADERS_KEY] = secrets.get("headers", "")
    return data, annotations, secret_type


def ca_bundle_configmap(connection_name: str, *, platform: bool, namespace: str, pem: str) -> dict:
    name = object_name(connection_name, platform=platform) + "-ca"
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace, "labels": _labels(connection_name)},
            "data": {CA_BUNDLE_FILE: pem}}


def cluster_objects(*, connection_name: str, platform: bool, kind: str, config: dict, secrets: dict,
                    secret_version: int, namespace: str, capabilities: Capabilities | None) -> list[dict]:
    """The objects to apply in ``namespace`` for one connection: its Secret, its ServiceAccount
    (except for OCI, whose Secret is a pull secret the predictor names) and, for an S3 CA
    bundle, a ConfigMap KServe mounts into the storage initializer."""
    name = object_name(connection_name, platform=platform)
    data, annotations, secret_type = secret_data(kind, config, secrets, capabilities)
    objects: list[dict] = []
    if kind == "s3" and config.get("ca_bundle"):
        configmap = ca_bundle_configmap(connection_name, platform=platform, namespace=namespace, pem=config["ca_bundle"])
        annotations[S3_ANNOTATION + "cabundle-configmap"] = configmap["metadata"]["name"]
        objects.append(configmap)
    annotations[ANNOTATION_SECRET_VERSION] = str(secret_version)
    objects.append({
        "apiVersion": "v1", "kind": "Secret", "type": secret_type,
        "metadata": {"name": name, "namespace": namespace, "labels": _labels(connection_name),
                     "annotations": annotations},
        # stringData is write-only on the API server (it becomes data); data is what a read
        # returns, so the console writes base64 ``data`` and compares it on drift checks.
        "data": {key: _b64(value) for key, value in data.items()},
    })
    if kind == "ngc":
        # The image pull secret for nvcr.io (user $oauthtoken, the key as password); the NIM
        # runtime names it in imagePullSecrets. No ServiceAccount: a pvc:// cache needs no
        # storage initializer.
        key = secrets.get("api_key", "")
        config_json = json.dumps({"auths": {NGC_REGISTRY: {"username": NGC_USER, "password": key,
                                                           "auth": _b64(f"{NGC_USER}:{key}")}}}, sort_keys=True)
        objects.append({
            "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
            "metadata": {"name": name + PULL_SUFFIX, "namespace": namespace, "labels": _labels(connection_name),
                         "annotations": {ANNOTATION_SECRET_VERSION: str(secret_version)}},
            "data": {".dockerconfigjson": _b64(config_json)},
        })
        return objects
    account: dict = {"apiVersion": "v1", "kind": "ServiceAccount",
                     "metadata": {"name": name, "namespace": namespace, "labels": _labels(connection_name)}}
    if kind == "oci":
        account["imagePullSecrets"] = [{"name": name}]
    else:
        account["secrets"] = [{"name": name}]
    objects.append(account)
    return objects


def predictor_fields(connection: dict | None) -> dict:
    """What an endpoint's predictor carries for the connection of the version it rolls out
    (the ``connection`` entry of the desired-spec snapshot): the ServiceAccount whose secret the
    storage initializer reads; for OCI, the pull secret (modelcar images are pulled with the
    pod's imagePullSecrets); for Hugging Face, ``HF_TOKEN`` from the Secret for runtimes that
    download from the Hub when they start."""
    if not connection or connection["kind"] == "ngc":  # a NIM's runtime names its secrets itself
        return {}
    name = connection["object_name"]
    if connection["kind"] == "oci":
        return {"serviceAccountName": name, "imagePullSecrets": [{"name": name}]}
    return {"serviceAccountName": name}


def model_env(connection: dict | None) -> list[dict]:
    if not connection or connection["kind"] != "hf":
        return []
    return [{"name": HF_TOKEN_KEY,
             "valueFrom": {"secretKeyRef": {"name": connection["object_name"], "key": HF_TOKEN_KEY}}}]


def release_problem(connection: dict | None, uri: str, capabilities: Capabilities | None) -> str | None:
    """Why the cluster's KServe release cannot use this connection for ``uri`` (None: it can)."""
    if not connection or capabilities is None:
        return None
    if connection["kind"] == "hf" and uri.startswith("hf://") and not capabilities.storage_initializer_reads_hf_token:
        return (f"KServe {capabilities.release_text} does not pass a Hugging Face token to the storage initializer "
                "(it reads HF_TOKEN from a ServiceAccount secret from 0.14): hf:// URIs with a token need KServe 0.14 or later.")
    if connection["kind"] == "oci" and capabilities.modelcar is False:
        return ("The cluster's storageInitializer.enableModelcar is false, so KServe cannot serve oci:// URIs; "
                "ask the platform team to enable modelcars.")
    return None


def snapshot(connection) -> dict | None:
    """The desired-spec entry for a model version's connection (a ``StorageConnection`` row or
    None): what rendering needs, never a secret. For Hugging Face connections the secret version is
    part of it, so a rotation that must restart the pods (the serving container reads the token at
    start) is a new generation whose pods carry the new version."""
    if connection is None:
        return None
    entry = {"id": connection.pk, "name": connection.name, "kind": connection.kind,
             "object_name": object_name(connection.name, platform=connection.project_id is None)}
    if connection.kind == "hf":
        entry["secret_version"] = connection.secret_version
    return entry


ANNOTATION_CREDENTIALS_VERSION = "inference-console.io/credentials-version"


def predictor_annotations(connection: dict | None) -> dict:
    """Pod annotations that change when the serving container must restart to read rotated
    credentials (only Hugging Face tokens: storage credentials are read once, at download)."""
    if not connection or connection.get("secret_version") is None:
        return {}
    return {ANNOTATION_CREDENTIALS_VERSION: f"{connection['name']}.{connection['secret_version']}"}
