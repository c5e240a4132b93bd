"""KServe's storage credential builder, as one release has it (``pkg/credentials``, read at the
release tags; nothing is copied, the rules are restated here).

When KServe's pod mutator injects the ``storage-initializer`` init container it asks the
``CredentialBuilder`` for that container's environment and secret volumes:

1. the predictor's ServiceAccount (``spec.predictor.serviceAccountName``, default ``default``) in
   the InferenceService's namespace; a missing ServiceAccount is logged and means *no*
   credentials (the download then runs anonymously);
2. an SA annotated ``eks.amazonaws.com/role-arn`` (IRSA) gets the S3 settings of its own
   annotations and the ``credentials.s3`` config;
3. when the ``credentials`` config names a ``storageSecretNameAnnotation`` and the
   InferenceService carries that annotation, only the secret it names is used; otherwise every
   secret the SA lists under ``secrets:`` (not ``imagePullSecrets``), in order;
4. each secret is recognised by its keys, first match wins: the S3 secret-key name
   (``credentials.s3.s3SecretAccessKeyName``, default ``awsSecretAccessKey``) → S3 keys as
   ``secretKeyRef`` plus the S3 settings (endpoint, https, verify SSL, anonymous, region,
   virtual bucket, accelerate, CA bundle) from the secret's annotations (and, 0.16 on, its data)
   or the config, merged over what is there; the GCS file name → the secret mounted at
   ``/var/secrets/`` and ``GOOGLE_APPLICATION_CREDENTIALS``; ``AZ_CLIENT_ID``,
   ``AZURE_CLIENT_ID``, (0.16 on) ``AZURE_ACCESS_TOKEN`` → the Azure keys; ``AZURE_STORAGE_ACCESS_KEY``
   → that key alone; ``https-host`` → ``<host>-headers`` from the ``headers`` key;
   ``HDFS_NAMENODE`` → the secret mounted at ``/var/secrets/kserve-hdfscreds``; (0.14 on)
   ``HF_TOKEN``; anything else is skipped;
5. a secret that cannot be read fails the whole pod admission: the error is Kubernetes'
   (``secrets "x" not found``) and the pod is refused, so no pod exists at all.

Not modelled: ``model.storage`` (the ``storage-config`` secret path), the CA-bundle ConfigMap
mount, the confidential-serving variables. What differs between releases is in
``profile.ReleaseFacts`` (the properties under "storage initializer's credentials"); the table
is in docs/fake-apiserver.md.

``build`` returns the container's environment as the pod spec would hold it (values and
``secretKeyRef``s); ``resolve`` then does what the kubelet does when it starts the container:
it reads the referenced keys (a missing one is ``CreateContainerConfigError``) and writes the
secret volumes to files, so the sandbox can run KServe's real storage initializer with them.
Plain Python, no project imports (the sandbox rule).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .profile import ReleaseFacts

GROUP = "serving.kserve.io"
CREDENTIALS_CONFIG_KEY = "credentials"
IRSA_ANNOTATION = "eks.amazonaws.com/role-arn"
POD_MUTATOR_WEBHOOK = "inferenceservice.kserve-webhook-server.pod-mutator"

# S3 (pkg/credentials/s3)
AWS_ACCESS_KEY_ID = "AWS_ACCESS_KEY_ID"
AWS_SECRET_ACCESS_KEY = "AWS_SECRET_ACCESS_KEY"  # noqa: S105 - a variable/key name
DEFAULT_S3_ACCESS_KEY_ID_NAME = "awsAccessKeyID"
DEFAULT_S3_SECRET_ACCESS_KEY_NAME = "awsSecretAccessKey"  # noqa: S105 - a variable/key name
S3_ENDPOINT = "S3_ENDPOINT"
AWS_ENDPOINT_URL = "AWS_ENDPOINT_URL"
S3_USE_HTTPS = "S3_USE_HTTPS"
# (annotation suffix, variable, credentials.s3 config key), in the order KServe appends them.
S3_SETTINGS = (
    ("s3-verifyssl", "S3_VERIFY_SSL", "s3VerifySSL"),
    ("s3-useanoncredential", "awsAnonymousCredential", "s3UseAnonymousCredential"),
    ("s3-region", "AWS_DEFAULT_REGION", "s3Region"),
    ("s3-usevirtualbucket", "S3_USER_VIRTUAL_BUCKET", "s3UseVirtualBucket"),
    ("s3-useaccelerate", "S3_USE_ACCELERATE", "s3UseAccelerate"),
    ("s3-cabundle", "AWS_CA_BUNDLE", "s3CABundle"),
    ("s3-cabundle-configmap", "AWS_CA_BUNDLE_CONFIGMAP", "s3CABundleConfigMap"),
)
S3_ENDPOINT_ANNOTATION = f"{GROUP}/s3-endpoint"
S3_USE_HTTPS_ANNOTATION = f"{GROUP}/s3-usehttps"

# GCS (pkg/credentials/gcs)
DEFAULT_GCS_CREDENTIAL_FILE = "gcloud-application-credentials.json"
GCS_VOLUME = "user-gcp-sa"
GCS_MOUNT_PATH = "/var/secrets/"
GOOGLE_APPLICATION_CREDENTIALS = "GOOGLE_APPLICATION_CREDENTIALS"

# Azure (pkg/credentials/azure): new name -> legacy name
AZURE_LEGACY = {"AZURE_SUBSCRIPTION_ID": "AZ_SUBSCRIPTION_ID", "AZURE_TENANT_ID": "AZ_TENANT_ID",
                "AZURE_CLIENT_ID": "AZ_CLIENT_ID", "AZURE_CLIENT_SECRET": "AZ_CLIENT_SECRET"}
AZURE_STORAGE_ACCESS_KEY = "AZURE_STORAGE_ACCESS_KEY"
AZURE_ACCESS_TOKEN = "AZURE_ACCESS_TOKEN"  # noqa: S105 - a variable/key name
AZURE_TOKEN_KEYS = ("AZURE_ACCESS_TOKEN", "AZURE_ACCESS_EXPIRES_ON_SECONDS", "AZURE_ACCOUNT_NAME", "AZURE_SERVICE_URL")

# HTTP(S), HDFS, Hugging Face
HTTPS_HOST = "https-host"
HTTPS_HEADERS = "headers"
HDFS_NAMENODE = "HDFS_NAMENODE"
HDFS_VOLUME = "hdfs-secrets"
HDFS_MOUNT_PATH = "/var/secrets/kserve-hdfscreds"
HF_TOKEN = "HF_TOKEN"  # noqa: S105 - a variable/key name
HF_DOWNLOAD_DEFAULTS = (("HF_HUB_ENABLE_HF_TRANSFER", "1"), ("HF_XET_HIGH_PERFORMANCE", "1"),
                        ("HF_XET_NUM_CONCURRENT_RANGE_GETS", "8"))


class CredentialError(Exception):
    """The builder failed, so KServe's pod mutator refuses the pod. ``str()`` is KServe's error
    (``secrets "x" not found``); ``denial`` is what the API server answers the ReplicaSet."""

    @property
    def denial(self) -> str:
        return f'admission webhook "{POD_MUTATOR_WEBHOOK}" denied the request: {self}'


class ContainerConfigError(Exception):
    """The kubelet cannot start the container: a referenced secret or key is missing
    (``CreateContainerConfigError``; the message is the kubelet's)."""


@dataclass(frozen=True)
class EnvVar:
    """One container variable: a ``value`` or a ``secretKeyRef`` (``secret``/``key``)."""

    name: str
    value: str | None = None
    secret: str | None = None
    key: str | None = None

    def manifest(self) -> dict:
        if self.secret is not None:
            return {"name": self.name, "valueFrom": {"secretKeyRef": {"name": self.secret, "key": self.key}}}
        return {"name": self.name, "value": self.value or ""}


@dataclass(frozen=True)
class SecretMount:
    """A secret volume mounted into the storage initializer (read-only)."""

    volume: str
    secret: str
    mount_path: str


@dataclass(frozen=True)
class CredentialConfig:
    """The ``credentials`` section of ``inferenceservice-config``."""

    s3: dict = field(default_factory=dict)
    gcs: dict = field(default_factory=dict)
    storage_secret_name_annotation: str = ""

    @classmethod
    def from_configmap(cls, configmap: dict | None) -> CredentialConfig:
        """Parse it as KServe does; a section it cannot parse is a ``CredentialError`` (KServe
        panics building the CredentialBuilder, so no pod gets through the mutator)."""
        raw = ((configmap or {}).get("data") or {}).get(CREDENTIALS_CONFIG_KEY)
        if raw is None:
            return cls()
        try:
            value = json.loads(raw)
        except ValueError as exc:
            raise CredentialError(f"unable to parse credential config json: {exc}") from None
        if not isinstance(value, dict):
            raise CredentialError("unable to parse credential config json: json: cannot unmarshal "
                                  f"{type(value).__name__} into Go value of type credentials.CredentialConfig")
        sections = {}
        for section in ("s3", "gcs"):
            part = value.get(section) or {}
            if not isinstance(part, dict) or not all(isinstance(v, str) for v in part.values()):
                raise CredentialError(f"unable to parse credential config json: json: cannot unmarshal "
                                      f"into Go struct field CredentialConfig.{section}")
            sections[section] = part
        annotation = value.get("storageSecretNameAnnotation") or ""
        return cls(s3=sections["s3"], gcs=sections["gcs"], storage_secret_name_annotation=str(annotation))


@dataclass
class StorageCredentials:
    """The storage initializer's credentials as the pod mutator writes them into the pod."""

    service_account: str
    env: list[EnvVar] = field(default_factory=list)
    mounts: list[SecretMount] = field(default_factory=list)
    # Pod volumes by name (AppendVolumeIfNotExists: the first secret of a name wins).
    volumes: dict[str, str] = field(default_factory=dict)
    # What KServe's CredentialBuilder logged, for the sandbox's own log.
    log: list[str] = field(default_factory=list)

    def env_manifest(self) -> list[dict]:
        return [e.manifest() for e in self.env]

    def volume_mounts(self) -> list[dict]:
        return [{"name": m.volume, "mountPath": m.mount_path, "readOnly": True} for m in self.mounts]

    def pod_volumes(self) -> list[dict]:
        return [{"name": name, "secret": {"secretName": secret}} for name, secret in self.volumes.items()]

    def plain(self, name: str) -> str | None:
        """The last plain ``value`` of variable ``name`` (the kubelet lets the last one win)."""
        found = None
        for var in self.env:
            if var.name == name and var.secret is None:
                found = var.value
        return found


def secret_data(secret: dict) -> dict[str, str]:
    """A Secret's ``data`` decoded (``stringData`` is already merged into ``data`` by the store)."""
    out = {}
    for key, value in (secret.get("data") or {}).items():
        try:
            out[key] = base64.b64decode(value or "").decode("utf-8", errors="replace")
        except (binascii.Error, ValueError):
            out[key] = ""
    for key, value in (secret.get("stringData") or {}).items():
        out[key] = str(value)
    return out


def _not_found(kind: str, name: str) -> CredentialError:
    return CredentialError(f'{kind} "{name}" not found')


class CredentialBuilder:
    """One release's ``CredentialBuilder`` over lookups of the namespace's objects."""

    def __init__(self, facts: ReleaseFacts, config: CredentialConfig):
        self.facts = facts
        self.config = config

    # --- CreateSecretVolumeAndEnv -----------------------------------------------------------
    def build(self, *, namespace: str, annotations: dict | None, service_account_name: str | None,
              get_service_account: Callable[[str], dict | None],
              get_secret: Callable[[str], dict | None]) -> StorageCredentials:
        name = service_account_name or "default"
        out = StorageCredentials(service_account=name)
        account = get_service_account(name)
        if account is None:
            out.log.append(f'Failed to find service account {namespace}/{name}: serviceaccounts "{name}" not found')
            return self._finish(out)
        sa_annotations = (account.get("metadata") or {}).get("annotations") or {}
        if IRSA_ANNOTATION in sa_annotations:
            out.log.append(f"AWS IAM Role annotation found, setting service account envs for s3 ({name})")
            out.env.extend(self._s3_settings(sa_annotations, None))
        annotation = self.config.storage_secret_name_annotation
        if annotation and annotation in (annotations or {}):
            self._mount_secret((annotations or {})[annotation], out, get_secret)
            return self._finish(out)
        for ref in account.get("secrets") or []:
            if isinstance(ref, dict) and ref.get("name"):
                self._mount_secret(ref["name"], out, get_secret)
        return self._finish(out)

    def _finish(self, out: StorageCredentials) -> StorageCredentials:
        if self.facts.injects_hf_download_defaults:
            present = {e.name for e in out.env}
            out.env.extend(EnvVar(n, v) for n, v in HF_DOWNLOAD_DEFAULTS if n not in present)
        return out

    # --- mountSecretCredential --------------------------------------------------------------
    def _mount_secret(self, name: str, out: StorageCredentials, get_secret) -> None:
        secret = get_secret(name)
        if secret is None:
            raise _not_found("secrets", name)
        out.log.append(f"found secret {name}")
        data = secret_data(secret)
        annotations = (secret.get("metadata") or {}).get("annotations") or {}
        s3_secret_key = self.config.s3.get("s3SecretAccessKeyName") or DEFAULT_S3_SECRET_ACCESS_KEY_NAME
        s3_key_id = self.config.s3.get("s3AccessKeyIDName") or DEFAULT_S3_ACCESS_KEY_ID_NAME
        gcs_file = self.config.gcs.get("gcsCredentialFileName") or DEFAULT_GCS_CREDENTIAL_FILE
        if s3_secret_key in data:
            out.log.append(f"Setting secret envs for s3 ({name})")
            envs = [EnvVar(AWS_ACCESS_KEY_ID, secret=name, key=s3_key_id),
                    EnvVar(AWS_SECRET_ACCESS_KEY, secret=name, key=s3_secret_key),
                    *self._s3_settings(annotations, data)]
            out.env = merge_envs(out.env, envs)
        elif gcs_file in data:
            out.log.append(f"Setting secret volume for gcs ({name})")
            out.volumes.setdefault(GCS_VOLUME, name)
            out.mounts.append(SecretMount(GCS_VOLUME, out.volumes[GCS_VOLUME], GCS_MOUNT_PATH))
            out.env.append(EnvVar(GOOGLE_APPLICATION_CREDENTIALS, GCS_MOUNT_PATH + gcs_file))
        elif AZURE_LEGACY["AZURE_CLIENT_ID"] in data or "AZURE_CLIENT_ID" in data or (
                self.facts.azure_access_token and AZURE_ACCESS_TOKEN in data):
            out.log.append(f"Setting secret envs for azure ({name})")
            out.env.extend(self._azure(name, data))
        elif AZURE_STORAGE_ACCESS_KEY in data:
            out.log.append(f"Setting secret envs with azure storage access key for azure ({name})")
            out.env.append(EnvVar(AZURE_STORAGE_ACCESS_KEY, secret=name, key=AZURE_STORAGE_ACCESS_KEY))
        elif HTTPS_HOST in data:
            out.log.append(f"Setting secret volume from uri ({name})")
            if HTTPS_HEADERS in data:
                out.env.append(EnvVar(data[HTTPS_HOST] + "-" + HTTPS_HEADERS, data[HTTPS_HEADERS]))
        elif HDFS_NAMENODE in data:
            out.log.append(f"Setting secret for hdfs ({name})")
            out.volumes.setdefault(HDFS_VOLUME, name)
            out.mounts.append(SecretMount(HDFS_VOLUME, out.volumes[HDFS_VOLUME], HDFS_MOUNT_PATH))
        elif self.facts.hf_token_secret and HF_TOKEN in data:
            out.log.append(f"Setting secret envs for huggingface ({name})")
            if self.facts.hf_token_as_literal:
                out.env.append(EnvVar(HF_TOKEN, data[HF_TOKEN]))
            else:
                out.env.append(EnvVar(HF_TOKEN, secret=name, key=HF_TOKEN))
            if self.facts.hf_secret_enables_transfer:
                out.env.append(EnvVar("HF_HUB_ENABLE_HF_TRANSFER", "1"))
        else:
            out.log.append(f"Skipping unsupported secret {name}")

    def _azure(self, name: str, data: dict[str, str]) -> list[EnvVar]:
        keys = list(AZURE_LEGACY)
        if self.facts.azure_storage_key_with_client_keys:
            keys.append(AZURE_STORAGE_ACCESS_KEY)
        if self.facts.azure_access_token:
            keys.extend(AZURE_TOKEN_KEYS)
            optional = {k for k in keys if k != "AZURE_TENANT_ID"}
        elif self.facts.azure_storage_key_with_client_keys:
            optional = {"AZURE_CLIENT_SECRET", AZURE_STORAGE_ACCESS_KEY}
        else:
            optional = {"AZURE_CLIENT_SECRET"}
        envs = []
        for key in keys:
            data_key = AZURE_LEGACY[key] if AZURE_LEGACY.get(key) in data else key
            if data_key in data or data_key not in optional:
                envs.append(EnvVar(key, secret=name, key=data_key))
        return envs

    # --- BuildS3EnvVars ---------------------------------------------------------------------
    def _s3_settings(self, annotations: dict, data: dict[str, str] | None) -> list[EnvVar]:
        config = self.config.s3
        facts = self.facts
        envs: list[EnvVar] = []

        def pick(suffix: str, variable: str, config_key: str) -> str:
            annotation = f"{GROUP}/{suffix}"
            if annotation in annotations:
                return annotations[annotation]
            if facts.s3_settings_from_secret_data and data is not None and variable in data:
                return data[variable]
            return config.get(config_key, "")

        if not facts.s3_settings_from_secret_data:
            # 0.13-0.15: the annotated endpoint with its own s3-usehttps, else the config's pair.
            if S3_ENDPOINT_ANNOTATION in annotations:
                endpoint = annotations[S3_ENDPOINT_ANNOTATION]
                url = "https://" + endpoint
                if S3_USE_HTTPS_ANNOTATION in annotations:
                    use_https = annotations[S3_USE_HTTPS_ANNOTATION]
                    if use_https == "0":
                        url = "http://" + endpoint
                    envs.append(EnvVar(S3_USE_HTTPS, use_https))
                envs += [EnvVar(S3_ENDPOINT, endpoint), EnvVar(AWS_ENDPOINT_URL, url)]
            elif config.get("s3Endpoint"):
                endpoint = config["s3Endpoint"]
                url = "https://" + endpoint
                if config.get("s3UseHttps") == "0":
                    url = "http://" + endpoint
                    envs.append(EnvVar(S3_USE_HTTPS, "0"))
                envs += [EnvVar(S3_ENDPOINT, endpoint), EnvVar(AWS_ENDPOINT_URL, url)]
        elif not facts.s3_endpoint_scheme_prefix:
            # 0.16: S3_USE_HTTPS stands alone; the URL scheme follows it.
            use_https = pick("s3-usehttps", S3_USE_HTTPS, "s3UseHttps")
            if use_https:
                envs.append(EnvVar(S3_USE_HTTPS, use_https))
            endpoint = pick("s3-endpoint", S3_ENDPOINT, "s3Endpoint")
            if endpoint:
                url = ("http://" if use_https == "0" else "https://") + endpoint
                envs += [EnvVar(S3_ENDPOINT, endpoint), EnvVar(AWS_ENDPOINT_URL, url)]
        else:
            # 0.17 on: a scheme on the endpoint decides; https is the default.
            endpoint = pick("s3-endpoint", S3_ENDPOINT, "s3Endpoint").strip()
            if endpoint:
                lowered = endpoint.lower()
                if lowered.startswith("https://"):
                    use_https, host, url = "1", endpoint[8:], endpoint
                elif lowered.startswith("http://"):
                    use_https, host, url = "0", endpoint[7:], endpoint
                else:
                    use_https = pick("s3-usehttps", S3_USE_HTTPS, "s3UseHttps")
                    host = endpoint
                    url = ("http://" if use_https == "0" else "https://") + endpoint
                if use_https:
                    envs.append(EnvVar(S3_USE_HTTPS, use_https))
                envs += [EnvVar(S3_ENDPOINT, host), EnvVar(AWS_ENDPOINT_URL, url)]
        for suffix, variable, config_key in S3_SETTINGS:
            value = pick(suffix, variable, config_key)
            if value:
                envs.append(EnvVar(variable, value))
        return envs


def merge_envs(base: list[EnvVar], overrides: list[EnvVar]) -> list[EnvVar]:
    """KServe's ``utils.MergeEnvs``: a variable already present takes the override's *value*
    (its ``secretKeyRef``, if any, stays as it was); new ones are appended."""
    merged = list(base)
    extra = []
    for override in overrides:
        for index, existing in enumerate(merged):
            if existing.name == override.name:
                merged[index] = EnvVar(existing.name, override.value or "", existing.secret, existing.key)
                break
        else:
            extra.append(override)
    return merged + extra


# --- the kubelet's side -----------------------------------------------------------------------
def resolve(credentials: StorageCredentials, *, namespace: str, get_secret: Callable[[str], dict | None],
            mount_root: Path) -> dict[str, str]:
    """The environment the container starts with: ``secretKeyRef``s read now (the kubelet reads
    them at every container start), secret volumes written under ``mount_root`` and the
    variables that point into a mount path rewritten to the files. ``ContainerConfigError`` in
    the kubelet's words when a secret or key is missing."""
    env: dict[str, str] = {}
    cache: dict[str, dict[str, str] | None] = {}

    def data_of(name: str) -> dict[str, str] | None:
        if name not in cache:
            secret = get_secret(name)
            cache[name] = secret_data(secret) if secret is not None else None
        return cache[name]

    for var in credentials.env:
        if var.secret is None:
            env[var.name] = var.value or ""
            continue
        data = data_of(var.secret)
        if data is None:
            raise ContainerConfigError(f'secret "{var.secret}" not found')
        if var.key not in data:
            raise ContainerConfigError(f"couldn't find key {var.key} in Secret {namespace}/{var.secret}")
        env[var.name] = data[var.key]
    for mount in credentials.mounts:
        secret_name = credentials.volumes.get(mount.volume, mount.secret)
        data = data_of(secret_name)
        if data is None:
            raise ContainerConfigError(f'secret "{secret_name}" not found')
        local = mount_root / mount.volume
        local.mkdir(parents=True, exist_ok=True)
        for key, value in data.items():
            path = local / key
            path.write_text(value)
            os.chmod(path, 0o600)
        prefix = mount.mount_path.rstrip("/") + "/"
        for name, value in env.items():
            if value.startswith(prefix):
                env[name] = str(local / value[len(prefix):])
    return env
