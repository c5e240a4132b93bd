"""Domain model of self-service deployment: where endpoints run (clusters, projects), what
they serve (registered models and their versions, runtimes, hardware profiles), what users
asked for (endpoints and their immutable revisions) and what the cluster reports back
(endpoint status)."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from guardian.models import GroupObjectPermissionBase, UserObjectPermissionBase

from console import crypto
from endpoints import gateway
from endpoints.capabilities import Capabilities
from endpoints.gateway import validate_gateway_address


def new_ingest_key() -> str:
    return secrets.token_urlsafe(24)


class Cluster(models.Model):
    """A Kubernetes cluster with KServe, or the built-in sandbox (a simulated cluster)."""

    class Kind(models.TextChoices):
        KUBERNETES = "kubernetes", "Kubernetes"
        SANDBOX = "sandbox", "Sandbox (simulated)"

    class Connection(models.TextChoices):
        KUBECONFIG = "kubeconfig", "Kubeconfig file"
        IN_CLUSTER = "in_cluster", "In-cluster service account"
        URL = "url", "API server URL and token"

    name = models.SlugField(max_length=63, unique=True)
    description = models.CharField(max_length=200, blank=True)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.KUBERNETES)
    connection = models.CharField(max_length=16, choices=Connection.choices, default=Connection.KUBECONFIG)
    kubeconfig_path = models.CharField(
        max_length=500, blank=True, help_text="Path of a kubeconfig file readable by the console (e.g. a mounted Secret)."
    )
    kubeconfig_context = models.CharField(max_length=200, blank=True)
    api_url = models.URLField(blank=True, help_text="API server URL (sandbox or token connections).")
    # The API token, encrypted at rest (console/crypto.py; read through ``api_token``). Write-only:
    # forms and serializers never render it back.
    api_token_ciphertext = models.TextField(blank=True, editable=False)
    ingress_domain = models.CharField(max_length=253, default="example.com")
    # Where callers outside the cluster reach the endpoints (the ingress gateway), sending the
    # InferenceService's host in the Host header; "How to call it" and "Try it" use it.
    gateway_address = models.CharField(max_length=300, blank=True, validators=[validate_gateway_address],
                                       help_text=gateway.HELP)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def gateway_url(self) -> str:
        """``scheme://host[:port]`` of the ingress gateway, or "" when none is set."""
        return gateway.base_url(self.gateway_address)

    @property
    def is_sandbox(self) -> bool:
        return self.kind == self.Kind.SANDBOX

    @property
    def api_token(self) -> str:
        """The API server token in clear (for the cluster client only)."""
        return crypto.decrypt(self.api_token_ciphertext) if self.api_token_ciphertext else ""

    @api_token.setter
    def api_token(self, value: str) -> None:
        self.api_token_ciphertext = crypto.encrypt(value) if value else ""

    def client(self):
        """A ``ClusterClient`` for this cluster's credentials; ``ClusterError`` when they cannot
        be used (a kubeconfig that is missing, unreadable, not YAML or without the context; no
        in-cluster credentials), like any other failure to reach the cluster, so every caller
        that handles an unreachable cluster handles these too."""
        from endpoints.cluster import ClusterClient, ClusterError

        try:
            if self.connection == self.Connection.IN_CLUSTER:
                return ClusterClient.in_cluster()
            if self.connection == self.Connection.KUBECONFIG:
                return ClusterClient.from_kubeconfig(self.kubeconfig_path, context=self.kubeconfig_context or None)
            return ClusterClient.for_url(self.api_url, token=self.api_token or None)
        except ClusterError:
            raise
        except Exception as exc:  # kubernetes' ConfigException, OSError, yaml errors, TypeError on odd YAML
            raise ClusterError(message=f"the connection settings cannot be used: {exc}",
                               reason="InvalidConnection") from exc


class ClusterCapabilities(models.Model):
    """The latest reading of what a cluster can do: ``endpoints.capabilities.Capabilities`` as
    JSON, with when it was read (``endpoints.services.capabilities.cluster_discover``)."""

    cluster = models.OneToOneField(Cluster, on_delete=models.CASCADE, related_name="capabilities_reading")
    data = models.JSONField(default=dict)
    read_at = models.DateTimeField()
    usable = models.BooleanField(default=False, help_text="Reachable, authenticated and KServe installed.")

    class Meta:
        verbose_name_plural = "cluster capabilities"

    def __str__(self) -> str:
        return f"capabilities of {self.cluster_id} read {self.read_at:%Y-%m-%d %H:%M}"

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities.from_json(self.data)


class HardwareProfile(models.Model):
    """An admin-defined choice of accelerator (or CPU only) with its placement and bounds."""

    name = models.SlugField(max_length=63, unique=True)
    display_name = models.CharField(max_length=100)
    description = models.CharField(max_length=300, blank=True)
    accelerator_resource = models.CharField(
        max_length=100, blank=True, help_text="Extended resource name, e.g. nvidia.com/gpu. Empty for CPU only."
    )
    accelerator_product = models.CharField(
        max_length=100, blank=True, help_text="Product label value, e.g. NVIDIA-A100-SXM4-80GB."
    )
    node_selector = models.JSONField(default=dict, blank=True)
    tolerations = models.JSONField(default=list, blank=True)
    # Applied as the CPU and memory requests of an endpoint that leaves them empty (when it is
    # created or next changed), and as its limits too where ``defaults_as_limits`` is set.
    default_cpu = models.CharField(max_length=20, default="1")
    default_memory = models.CharField(max_length=20, default="2Gi")
    defaults_as_limits = models.BooleanField(
        default=False, help_text="Also apply the defaults as CPU and memory limits where an endpoint sets none.")
    max_cpu = models.CharField(max_length=20, default="16")
    max_memory = models.CharField(max_length=20, default="64Gi")
    max_accelerators_per_replica = models.PositiveIntegerField(default=0)
    capacity = models.PositiveIntegerField(default=0, help_text="Accelerators of this kind available in total.")
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.display_name or self.name

    @property
    def has_accelerator(self) -> bool:
        return bool(self.accelerator_resource)


class Project(models.Model):
    """A tenant: one namespace on one cluster. Grants on a project cover everything in it."""

    name = models.SlugField(max_length=63, unique=True)
    display_name = models.CharField(max_length=100, blank=True)
    description = models.TextField(blank=True)
    cluster = models.ForeignKey(Cluster, on_delete=models.PROTECT, related_name="projects")
    namespace = models.CharField(max_length=63)
    # Carried in the payload logger URL (the logger cannot authenticate); rotatable.
    ingest_key = models.CharField(max_length=64, default=new_ingest_key, unique=True)
    keep_payload_bodies = models.BooleanField(default=False)
    # The console has applied storage-connection objects in the namespace (Secrets, ServiceAccounts):
    # the periodic pass lists them only where this is set or a connection is in use, so a fleet
    # without connections still costs one list call per namespace.
    has_connection_objects = models.BooleanField(default=False, editable=False)
    payload_body_limit = models.PositiveIntegerField(default=64 * 1024)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["cluster", "namespace"], name="project_unique_namespace_per_cluster")
        ]
        permissions = [
            ("deploy_project", "Create and change endpoints in the project"),
            ("infer_project", "Call the project's endpoints"),
            ("manage_project", "Manage the project's grants and settings"),
        ]

    def __str__(self) -> str:
        return self.display_name or self.name


class ProjectQuota(models.Model):
    """How many accelerators of one hardware profile a project may request in total."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="quotas")
    hardware_profile = models.ForeignKey(HardwareProfile, on_delete=models.CASCADE, related_name="quotas")
    max_accelerators = models.PositiveIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "hardware_profile"], name="quota_unique_profile_per_project")
        ]

    def __str__(self) -> str:
        return f"{self.project}: {self.max_accelerators} × {self.hardware_profile}"


class ServingRuntime(models.Model):
    """A catalog entry mirroring a KServe (Cluster)ServingRuntime.

    Built-in entries describe KServe's default ClusterServingRuntimes (endpoints/catalog.py).
    Custom ones are added by admins; the console then applies the ServingRuntime object in
    each project's namespace that uses it. Discovered ones (``installed_on`` set) were read
    from a cluster where someone else installed them (kubectl, a vendor): the console offers
    them on that cluster but never installs or changes them.
    """

    name = models.SlugField(max_length=63, unique=True)
    display_name = models.CharField(max_length=100, blank=True)
    description = models.CharField(max_length=300, blank=True)
    built_in = models.BooleanField(default=False)
    # [{"name": "sklearn", "version": "1", "autoSelect": true, "priority": 1}, ...]
    supported_formats = models.JSONField(default=list)
    # ["v1", "v2"]; empty means the runtime accepts any protocol (as KServe treats it)
    protocols = models.JSONField(default=list, blank=True)
    openai_compatible = models.BooleanField(default=False)
    openai_route_prefix = models.CharField(max_length=40, blank=True)
    multi_model = models.BooleanField(default=False)
    disabled = models.BooleanField(default=False)
    container_image = models.CharField(max_length=300, blank=True)
    container_args = models.JSONField(default=list, blank=True)
    installed_on = models.ForeignKey(
        Cluster, null=True, blank=True, on_delete=models.SET_NULL, related_name="discovered_runtimes",
        help_text="Read from this cluster (installed there by someone else); the console never installs it.")
    installed_namespace = models.CharField(
        max_length=63, blank=True, help_text="For a discovered namespace ServingRuntime: its namespace.")
    # A NIM runtime (docs/nim.md): {"entry": <catalog entry>, "connection_id": <NGC connection>,
    # "cache": {"name", "size", "storage_class", "create"}}; the console renders the runtime from it.
    nim = models.JSONField(null=True, blank=True, editable=False)
    # A NIM runtime an Owner installed for one project (docs/nim.md): only that project's endpoints
    # use it; null for platform-wide runtimes.
    project = models.ForeignKey(Project, null=True, blank=True, on_delete=models.CASCADE,
                                related_name="own_runtimes", editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def discovered(self) -> bool:
        return self.installed_on_id is not None

    @property
    def console_installs(self) -> bool:
        """A custom runtime the console applies as a ServingRuntime in each project namespace."""
        return not self.built_in and not self.discovered


class NimCatalogEntry(models.Model):
    """A NIM an admin added to the catalog (by hand, or imported from a ClusterServingRuntime
    whose format is ``nvidia-nim-*``); the entries the console ships are data in
    ``endpoints/nim_catalog.json``. One row per (key, version): a new version is a new row, never
    an edit, so what a runtime was installed from stays known (docs/nim.md)."""

    class Source(models.TextChoices):
        CUSTOM = "custom", "Added by an admin"
        IMPORTED = "imported", "Imported from a cluster"

    key = models.CharField(max_length=40)
    version = models.CharField(max_length=32)
    data = models.JSONField()
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.CUSTOM)
    imported_from = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")

    class Meta:
        ordering = ["key", "version"]
        constraints = [models.UniqueConstraint(fields=["key", "version"], name="nim_entry_key_version")]

    def __str__(self) -> str:
        return f"{self.key} {self.version}"


class StorageConnection(models.Model):
    """Credentials for private model storage: an S3/GCS/Azure bucket, a Hugging Face token, an OCI
    registry's pull credentials or HTTPS headers. Owned by a project, or platform-wide (no project)
    and then usable by the projects that opt in (``ConnectionOptIn``).

    The secret values are write-only: encrypted at rest (``secret_ciphertext``, console/crypto.py),
    read back only to write the cluster Secret and to run the storage preflight; never rendered
    in a page, API answer, plan, diff, audit detail or log line. ``secret_version`` counts
    rotations. On the cluster each connection becomes a Secret and a ServiceAccount of the same
    name in every namespace whose endpoints use it (endpoints/connections.py, docs/storage.md).
    """

    class Kind(models.TextChoices):
        S3 = "s3", "S3 or S3-compatible"
        GCS = "gcs", "Google Cloud Storage"
        AZURE = "azure", "Azure Blob Storage"
        HUGGINGFACE = "hf", "Hugging Face token"
        OCI = "oci", "OCI registry"
        HTTPS = "https", "HTTPS with headers"
        NGC = "ngc", "NVIDIA NGC API key"

    name = models.SlugField(max_length=40, help_text="Lowercase letters, digits and hyphens; names the Secret on the cluster.")
    display_name = models.CharField(max_length=100, blank=True)
    description = models.CharField(max_length=300, blank=True)
    kind = models.CharField(max_length=8, choices=Kind.choices)
    project = models.ForeignKey(
        Project, null=True, blank=True, on_delete=models.PROTECT, related_name="connections",
        help_text="Empty: a platform-wide connection that projects opt into.")
    # Non-secret settings per kind (endpoint, region, registry, ...): endpoints/connections.py.
    config = models.JSONField(default=dict, blank=True)
    secret_ciphertext = models.TextField(blank=True, editable=False)
    # Which secret fields are set (names only), so pages can say "set" without decrypting.
    secret_fields = models.JSONField(default=list, blank=True, editable=False)
    secret_version = models.PositiveIntegerField(default=1, editable=False)
    secret_rotated_at = models.DateTimeField(null=True, blank=True, editable=False)
    opted_in_projects = models.ManyToManyField(
        Project, through="ConnectionOptIn", related_name="shared_connections", blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="connection_unique_name_per_project"),
            models.UniqueConstraint(fields=["name"], condition=models.Q(project__isnull=True),
                                    name="connection_unique_platform_name"),
        ]

    def __str__(self) -> str:
        return self.display_name or self.name

    @property
    def is_platform(self) -> bool:
        return self.project_id is None


class ConnectionOptIn(models.Model):
    """A project's Owner opted the project into a platform-wide connection."""

    connection = models.ForeignKey(StorageConnection, on_delete=models.CASCADE, related_name="opt_ins")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="connection_opt_ins")
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        constraints = [models.UniqueConstraint(fields=["connection", "project"], name="connection_opt_in_once")]

    def __str__(self) -> str:
        return f"{self.project} uses {self.connection}"


class RegisteredModel(models.Model):
    """A model a team registers once and versions over time."""

    class Task(models.TextChoices):
        CLASSIFICATION = "classification", "Classification"
        REGRESSION = "regression", "Regression"
        LLM_CHAT = "llm-chat", "LLM chat"
        LLM_COMPLETION = "llm-completion", "LLM completion"
        EMBEDDING = "embedding", "Embedding"
        OTHER = "other", "Other"

    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="models")
    name = models.SlugField(max_length=63)
    task = models.CharField(max_length=20, choices=Task.choices, default=Task.CLASSIFICATION)
    description = models.TextField(blank=True)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["project__name", "name"]
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="model_unique_name_per_project")]
        permissions = [
            ("deploy_registeredmodel", "Deploy versions of the model"),
            ("manage_registeredmodel", "Manage the model's grants"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_llm(self) -> bool:
        return self.task in {self.Task.LLM_CHAT, self.Task.LLM_COMPLETION, self.Task.EMBEDDING}


class ModelVersion(models.Model):
    """One immutable version of a registered model: where its artifact lives, its format and
    signature, and the reference profile drift is measured against."""

    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    storage_uri = models.CharField(max_length=1000)
    connection = models.ForeignKey(
        StorageConnection, null=True, blank=True, on_delete=models.PROTECT, related_name="versions",
        help_text="Credentials the storage initializer uses to download the artifact (empty: public storage).")
    model_format = models.CharField(max_length=40)
    format_version = models.CharField(max_length=20, blank=True)
    # [{"name": "sepal_length", "type": "numeric"}, {"name": "region", "type": "categorical"}]
    input_signature = models.JSONField(default=list, blank=True)
    prediction_column = models.CharField(max_length=100, blank=True)
    reference_profile = models.JSONField(null=True, blank=True)
    reference_filename = models.CharField(max_length=255, blank=True)
    reference_rows = models.PositiveIntegerField(default=0)
    source_run_uri = models.CharField(max_length=1000, blank=True)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Archived: kept (endpoints' revisions and monitoring refer to it) but no longer chosen for an
    # endpoint; endpoints already on it keep it (endpoints.services.lifecycle).
    archived_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["model_id", "-version"]
        constraints = [models.UniqueConstraint(fields=["model", "version"], name="version_unique_per_model")]

    def __str__(self) -> str:
        return f"{self.model.name} v{self.version}" + (" (archived)" if self.archived_at else "")


class ModelAlias(models.Model):
    """A movable name for one version of a model (champion, challenger, ...)."""

    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="aliases")
    name = models.SlugField(max_length=40)
    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="aliases")

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["model", "name"], name="alias_unique_per_model")]

    def __str__(self) -> str:
        return f"{self.model.name}@{self.name}"


class Endpoint(models.Model):
    """What a user asked for: one KServe InferenceService. The database is the source of
    truth; workers converge the cluster to it. ``generation`` is bumped on every desired
    change and each generation has an immutable ``Revision``."""

    class Protocol(models.TextChoices):
        V1 = "v1", "V1 (TensorFlow-Serving style)"
        V2 = "v2", "Open Inference Protocol (v2)"
        OPENAI = "openai", "OpenAI-compatible"

    class DeploymentMode(models.TextChoices):
        KNATIVE = "Knative", "Knative (scale-to-zero, canary)"
        STANDARD = "Standard", "Standard (Deployment + HPA)"

    class ScaleMetric(models.TextChoices):
        CONCURRENCY = "concurrency", "Concurrency"
        RPS = "rps", "Requests per second"
        CPU = "cpu", "CPU utilisation"
        MEMORY = "memory", "Memory utilisation"

    class LoggingMode(models.TextChoices):
        OFF = "off", "Off"
        ALL = "all", "Requests and responses"
        REQUEST = "request", "Requests only"
        RESPONSE = "response", "Responses only"

    class State(models.TextChoices):
        ACTIVE = "active", "Active"
        STOPPED = "stopped", "Stopped"
        DELETING = "deleting", "Deleting"

    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="endpoints")
    name = models.CharField(max_length=45)
    description = models.CharField(max_length=300, blank=True)
    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="endpoints")
    runtime = models.ForeignKey(
        ServingRuntime, null=True, blank=True, on_delete=models.PROTECT, related_name="endpoints",
        help_text="Empty: KServe picks a runtime by its auto-selection rules.",
    )
    protocol = models.CharField(max_length=10, choices=Protocol.choices, default=Protocol.V1)
    deployment_mode = models.CharField(max_length=10, choices=DeploymentMode.choices, default=DeploymentMode.KNATIVE)
    min_replicas = models.PositiveIntegerField(default=1)
    max_replicas = models.PositiveIntegerField(default=1)
    scale_metric = models.CharField(max_length=12, choices=ScaleMetric.choices, blank=True)
    scale_target = models.PositiveIntegerField(null=True, blank=True)
    container_concurrency = models.PositiveIntegerField(null=True, blank=True)
    timeout_seconds = models.PositiveIntegerField(null=True, blank=True)
    hardware_profile = models.ForeignKey(
        HardwareProfile, null=True, blank=True, on_delete=models.PROTECT, related_name="endpoints"
    )
    accelerator_count = models.PositiveIntegerField(default=0)
    cpu_request = models.CharField(max_length=20, blank=True)
    cpu_limit = models.CharField(max_length=20, blank=True)
    memory_request = models.CharField(max_length=20, blank=True)
    memory_limit = models.CharField(max_length=20, blank=True)
    env = models.JSONField(default=list, blank=True)
    args = models.JSONField(default=list, blank=True)
    canary_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="canary_endpoints"
    )
    canary_traffic_percent = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(0), MaxValueValidator(100)]
    )
    logging_mode = models.CharField(max_length=10, choices=LoggingMode.choices, default=LoggingMode.ALL)
    generation = models.PositiveIntegerField(default=1)
    state = models.CharField(max_length=10, choices=State.choices, default=State.ACTIVE)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["project__name", "name"]
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="endpoint_unique_name_per_project")]
        permissions = [
            ("deploy_endpoint", "Change, stop and roll back the endpoint"),
            ("infer_endpoint", "Call the endpoint"),
            ("manage_endpoint", "Manage the endpoint's grants"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def namespace(self) -> str:
        return self.project.namespace

    @property
    def scaled_to_zero(self) -> bool:
        """Ready with no pod running (minReplicas 0, no traffic): shown beside the phase."""
        from endpoints.status import scaled_to_zero

        try:
            status = self.status
        except EndpointStatus.DoesNotExist:
            return False
        return scaled_to_zero(phase=status.phase, min_replicas=self.min_replicas, model_status=status.model_status)


class EndpointStatus(models.Model):
    """What the cluster last reported for an endpoint, written only by workers (a separate
    row, so a worker's status write never races a user's edit of the desired state)."""

    class Phase(models.TextChoices):
        PENDING = "Pending", "Pending"
        DEPLOYING = "Deploying", "Deploying"
        READY = "Ready", "Ready"
        DEGRADED = "Degraded", "Degraded"
        FAILED = "Failed", "Failed"
        STOPPED = "Stopped", "Stopped"
        UNKNOWN = "Unknown", "Unknown"

    endpoint = models.OneToOneField(Endpoint, on_delete=models.CASCADE, related_name="status", primary_key=True)
    phase = models.CharField(max_length=10, choices=Phase.choices, default=Phase.PENDING)
    ready = models.BooleanField(default=False)
    url = models.CharField(max_length=500, blank=True)
    address_url = models.CharField(max_length=500, blank=True)
    conditions = models.JSONField(default=list, blank=True)
    traffic = models.JSONField(default=list, blank=True)
    model_status = models.JSONField(default=dict, blank=True)
    observed_runtime = models.CharField(max_length=100, blank=True)
    applied_generation = models.PositiveIntegerField(default=0)
    applied_spec_hash = models.CharField(max_length=64, blank=True)
    last_synced_at = models.DateTimeField(null=True, blank=True)
    last_reconcile_at = models.DateTimeField(null=True, blank=True)
    last_reconcile_result = models.CharField(max_length=20, blank=True)
    last_error = models.TextField(blank=True)
    # Claim of the generation a worker is applying (a conditional UPDATE: two deliveries of
    # the reconcile task never apply the same generation at once, also on SQLite).
    reconcile_claimed_generation = models.PositiveIntegerField(default=0)
    reconcile_claimed_at = models.DateTimeField(null=True, blank=True)
    reconcile_claimed_by = models.CharField(max_length=64, blank=True)
    drift_corrections = models.PositiveIntegerField(default=0)
    # "Why is it not ready", most useful first (endpoints/status.py), from the last status sync.
    explanation = models.JSONField(default=list, blank=True)

    def __str__(self) -> str:
        return f"{self.endpoint_id}: {self.phase}"


class Revision(models.Model):
    """Immutable history of an endpoint: the desired spec and the rendered manifest of one
    generation. Rollback creates a new generation from an old revision's spec."""

    class Outcome(models.TextChoices):
        PENDING = "pending", "Pending"
        APPLIED = "applied", "Applied"
        FAILED = "failed", "Failed"
        SUPERSEDED = "superseded", "Superseded"

    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="revisions")
    generation = models.PositiveIntegerField()
    spec = models.JSONField()
    manifest = models.JSONField()
    change_summary = models.CharField(max_length=300, blank=True)
    actor_name = models.CharField(max_length=150, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    outcome = models.CharField(max_length=12, choices=Outcome.choices, default=Outcome.PENDING)
    message = models.TextField(blank=True)

    class Meta:
        ordering = ["endpoint_id", "-generation"]
        constraints = [
            models.UniqueConstraint(fields=["endpoint", "generation"], name="revision_unique_generation")
        ]

    def __str__(self) -> str:
        return f"{self.endpoint.name} generation {self.generation}"


class ReconcileAlert(models.Model):
    """Something the reconciler refused to do on its own, or could not do, and a person must
    look at: a pass that would have deleted more managed objects than the safety cap allows, a
    cluster none of whose namespaces could be listed, a periodic pass that failed on the cluster.

    Lifecycle (``docs/signals.md``): *open* when raised; *acknowledged* once a platform admin
    says someone is on it (who and when are kept); *resolved* when a later pass finds the cause
    gone (``resolved_by`` empty) or an admin resolves it by hand. A problem met again after it
    was resolved is a new alert. Notifications go out when an alert opens and when it resolves."""

    class Kind(models.TextChoices):
        DELETION_CAP = "deletion_cap", "Deletion cap reached"
        CLUSTER_UNREACHABLE = "cluster_unreachable", "Cluster unreachable"
        # A periodic pass failed on this cluster with an error of its own (a kubeconfig that no
        # longer parses, a bug met by this cluster's data): the pass went on with the others.
        RECONCILE_FAILED = "reconcile_failed", "Reconcile pass failed"
        CAPABILITIES_FAILED = "capabilities_failed", "Capability reading failed"

    class State(models.TextChoices):
        OPEN = "open", "Open"
        ACKNOWLEDGED = "acknowledged", "Acknowledged"
        RESOLVED = "resolved", "Resolved"

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="alerts")
    kind = models.CharField(max_length=24, choices=Kind.choices)
    state = models.CharField(max_length=16, choices=State.choices, default=State.OPEN, db_index=True)
    message = models.TextField()
    details = models.JSONField(default=dict, blank=True)
    first_seen_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField(auto_now=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                        related_name="+")
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="+")

    class Meta:
        ordering = ["-last_seen_at"]

    def __str__(self) -> str:
        return f"{self.cluster}: {self.get_kind_display()}"


# --- notifications ---------------------------------------------------------------------------


class NotificationChannel(models.Model):
    """Where notifications go: e-mail addresses (Django's mail backend) or a webhook URL (JSON,
    signed with HMAC-SHA256 over the timestamp and the body). Configured by platform admins; a
    channel for every project receives every notification, any other one only those of the
    projects whose Owners subscribed it (``NotificationSubscription``)."""

    class Kind(models.TextChoices):
        EMAIL = "email", "E-mail"
        WEBHOOK = "webhook", "Webhook"

    name = models.SlugField(max_length=63, unique=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    # E-mail: comma-separated addresses. Webhook: the URL.
    target = models.TextField()
    # Webhook signing secret, encrypted at rest (console/crypto.py); never shown after creation.
    secret_ciphertext = models.TextField(blank=True, editable=False)
    all_projects = models.BooleanField(
        default=False, help_text="Receive every notification (platform alerts and every project's).")
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class NotificationSubscription(models.Model):
    """A project's Owner sends the project's notifications to a channel."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="notification_subscriptions")
    channel = models.ForeignKey(NotificationChannel, on_delete=models.CASCADE, related_name="subscriptions")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["channel__name"]
        constraints = [models.UniqueConstraint(fields=["project", "channel"], name="notification_sub_unique")]

    def __str__(self) -> str:
        return f"{self.project} → {self.channel}"


class Notification(models.Model):
    """One change worth telling people about (an alert opened or resolved, an endpoint failed,
    a drift alert, a grant about to expire). ``key`` names the change itself — the alert and its
    new state, the endpoint and the failed generation — and is unique, so a change evaluated
    on every pass is notified once."""

    class Event(models.TextChoices):
        RECONCILE_ALERT = "reconcile_alert", "Reconciler alert"
        ENDPOINT_FAILED = "endpoint_failed", "Endpoint failed"
        DRIFT_ALERT = "drift_alert", "Drift alert"
        GRANT_EXPIRING = "grant_expiring", "Grant about to expire"
        ROLLOUT = "rollout", "Rollout promoted or rolled back"

    key = models.CharField(max_length=200, unique=True)
    event = models.CharField(max_length=32, choices=Event.choices)
    state = models.CharField(max_length=32, blank=True)
    project = models.ForeignKey(Project, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    subject = models.CharField(max_length=300)
    body = models.TextField()
    payload = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return self.subject


class NotificationDelivery(models.Model):
    """The delivery log: one row per notification and channel, with every attempt's outcome."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"

    notification = models.ForeignKey(Notification, on_delete=models.CASCADE, related_name="deliveries")
    channel = models.ForeignKey(NotificationChannel, on_delete=models.CASCADE, related_name="deliveries")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    response_status = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [models.UniqueConstraint(fields=["notification", "channel"], name="notification_delivery_once")]

    def __str__(self) -> str:
        return f"{self.notification} → {self.channel}: {self.status}"


# --- guardian direct-FK object permission tables -------------------------------------------
# Each row may expire: console.permissions filters on expires_at at query time, so access
# ends the second a grant expires.


class ProjectUserObjectPermission(UserObjectPermissionBase):
    content_object = models.ForeignKey(Project, on_delete=models.CASCADE)
    expires_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta(UserObjectPermissionBase.Meta):
        indexes = [models.Index(fields=["user", "permission"], name="proj_uperm_user_perm_idx")]


class ProjectGroupObjectPermission(GroupObjectPermissionBase):
    content_object = models.ForeignKey(Project, on_delete=models.CASCADE)
    expires_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta(GroupObjectPermissionBase.Meta):
        indexes = [models.Index(fields=["group", "permission"], name="proj_gperm_group_perm_idx")]


class RegisteredModelUserObjectPermission(UserObjectPermissionBase):
    content_object = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE)
    expires_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta(UserObjectPermissionBase.Meta):
        indexes = [models.Index(fields=["user", "permission"], name="model_uperm_user_perm_idx")]


class RegisteredModelGroupObjectPermission(GroupObjectPermissionBase):
    content_object = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE)
    expires_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta(GroupObjectPermissionBase.Meta):
        indexes = [models.Index(fields=["group", "permission"], name="model_gperm_group_perm_idx")]


class EndpointUserObjectPermission(UserObjectPermissionBase):
    content_object = models.ForeignKey(Endpoint, on_delete=models.CASCADE)
    expires_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta(UserObjectPermissionBase.Meta):
        indexes = [models.Index(fields=["user", "permission"], name="ep_uperm_user_perm_idx")]


class EndpointGroupObjectPermission(GroupObjectPermissionBase):
    content_object = models.ForeignKey(Endpoint, on_delete=models.CASCADE)
    expires_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta(GroupObjectPermissionBase.Meta):
        indexes = [models.Index(fields=["group", "permission"], name="ep_gperm_group_perm_idx")]


# --- progressive delivery (automated canary rollouts) ------------------------------------------

class RolloutPolicy(models.Model):
    """How an automated canary rollout proceeds: the traffic steps, what each step must show
    before the next (time, requests, and gates comparing the canary with the primary over the
    step's window) and what to do on failure and on success. One row per project (its default)
    or per endpoint (its own); neither: the built-in defaults (``endpoints.rollout_policy``).
    The rules that refuse nonsense live in ``endpoints.rollout_policy.validate``."""

    class OnFailure(models.TextChoices):
        ROLLBACK = "rollback", "Roll back to 0% and keep the canary for inspection"
        REMOVE = "remove", "Roll back and remove the canary"

    class OnSuccess(models.TextChoices):
        PROMOTE = "promote", "Promote the canary"
        HOLD = "hold", "Hold at the last step for a person to promote"

    class OnTimeout(models.TextChoices):
        FAIL = "fail", "Treat as a failure (the failure action)"
        PAUSE = "pause", "Pause for a person to decide"

    class Baseline(models.TextChoices):
        PRIMARY = "primary", "The primary's predictions over the same window"
        REFERENCE = "reference", "The canary version's reference profile"

    project = models.OneToOneField(Project, null=True, blank=True, on_delete=models.CASCADE,
                                   related_name="rollout_policy")
    endpoint = models.OneToOneField("Endpoint", null=True, blank=True, on_delete=models.CASCADE,
                                    related_name="rollout_policy")
    steps = models.JSONField(default=list, help_text="Canary traffic percentages, increasing (e.g. 10, 25, 50, 100).")
    min_step_minutes = models.PositiveIntegerField(default=5)
    min_step_requests = models.PositiveIntegerField(default=200)
    max_error_rate_increase = models.FloatField(
        null=True, blank=True, help_text="Percentage points the canary's error rate may exceed the primary's.")
    max_p95_ratio = models.FloatField(null=True, blank=True, help_text="Canary p95 ÷ primary p95 at most.")
    max_p99_ratio = models.FloatField(null=True, blank=True, help_text="Canary p99 ÷ primary p99 at most.")
    max_prediction_psi = models.FloatField(null=True, blank=True,
                                           help_text="PSI of the canary's predictions against the baseline at most.")
    max_prediction_js = models.FloatField(null=True, blank=True,
                                          help_text="Jensen–Shannon distance of the canary's predictions at most.")
    prediction_baseline = models.CharField(max_length=10, choices=Baseline.choices, default=Baseline.PRIMARY)
    fail_on_feature_drift_alert = models.BooleanField(default=True)
    max_wait_minutes = models.PositiveIntegerField(default=60)
    on_failure = models.CharField(max_length=10, choices=OnFailure.choices, default=OnFailure.ROLLBACK)
    on_success = models.CharField(max_length=10, choices=OnSuccess.choices, default=OnSuccess.PROMOTE)
    on_timeout = models.CharField(max_length=10, choices=OnTimeout.choices, default=OnTimeout.FAIL)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=(models.Q(project__isnull=False, endpoint__isnull=True)
                           | models.Q(project__isnull=True, endpoint__isnull=False)),
                name="rolloutpolicy_project_xor_endpoint"),
        ]

    def __str__(self) -> str:
        return f"rollout policy of {self.endpoint or self.project}"


class Rollout(models.Model):
    """One automated canary rollout of an endpoint: the policy it runs with (a snapshot taken
    at the start), the step it is at and since when, and how it ended. Decisions (steps,
    promotion, rollback, a person's pause or abort) are ``RolloutDecision`` rows; each one
    that changes traffic is applied as a new generation of the endpoint."""

    class State(models.TextChoices):
        RUNNING = "running", "Running"
        PAUSED = "paused", "Paused"
        PROMOTED = "promoted", "Promoted"
        ROLLED_BACK = "rolled_back", "Rolled back"
        ABORTED = "aborted", "Aborted"
        CANCELLED = "cancelled", "Cancelled"

    ACTIVE_STATES = (State.RUNNING, State.PAUSED)

    endpoint = models.ForeignKey("Endpoint", on_delete=models.CASCADE, related_name="rollouts")
    primary_version = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.SET_NULL,
                                        related_name="+")
    canary_version = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.SET_NULL,
                                       related_name="+")
    primary_label = models.CharField(max_length=200)
    canary_label = models.CharField(max_length=200)
    policy = models.JSONField(default=dict)
    state = models.CharField(max_length=12, choices=State.choices, default=State.RUNNING, db_index=True)
    step_index = models.PositiveIntegerField(default=0)
    step_started_at = models.DateTimeField()
    paused_reason = models.CharField(max_length=300, blank=True)
    last_evaluation = models.JSONField(default=dict, blank=True)
    started_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    started_by_name = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            # One rollout at a time per endpoint (running or paused).
            models.UniqueConstraint(fields=["endpoint"], condition=models.Q(state__in=["running", "paused"]),
                                    name="rollout_one_active_per_endpoint"),
        ]

    def __str__(self) -> str:
        return f"rollout of {self.canary_label} on {self.endpoint_id}"

    @property
    def steps(self) -> list[int]:
        return list(self.policy.get("steps") or [])

    @property
    def current_percent(self) -> int | None:
        steps = self.steps
        return steps[self.step_index] if self.step_index < len(steps) else None

    @property
    def is_active(self) -> bool:
        return self.state in self.ACTIVE_STATES


class RolloutDecision(models.Model):
    """One decision of a rollout and who or what made it, with the gate values that decided it.
    A decision that changes traffic is written first (``applied_at`` empty) and applied in its
    own transaction; a worker lost between the two leaves it pending, and the next evaluation
    applies it instead of deciding again (never skipped, never repeated)."""

    class Kind(models.TextChoices):
        START = "start", "Started"
        ADVANCE = "advance", "Next step"
        PROMOTE = "promote", "Promoted"
        ROLLBACK = "rollback", "Rolled back"
        REMOVE = "remove", "Rolled back and removed the canary"
        PAUSE = "pause", "Paused"
        RESUME = "resume", "Resumed"
        ABORT = "abort", "Aborted"
        SKIP = "skip", "Skipped to promotion"
        HOLD = "hold", "Holding for a person"
        CANCEL = "cancel", "Cancelled"

    rollout = models.ForeignKey(Rollout, on_delete=models.CASCADE, related_name="decisions")
    sequence = models.PositiveIntegerField()
    kind = models.CharField(max_length=10, choices=Kind.choices)
    step_index = models.PositiveIntegerField(help_text="The step the rollout was at when this was decided.")
    traffic_percent = models.PositiveIntegerField(null=True, blank=True,
                                                  help_text="Canary traffic once applied (None: no canary).")
    gates = models.JSONField(default=list, blank=True)
    reason = models.CharField(max_length=500, blank=True)
    window_start = models.DateTimeField(null=True, blank=True)
    window_end = models.DateTimeField(null=True, blank=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="+")
    actor_name = models.CharField(max_length=150)
    generation = models.PositiveIntegerField(null=True, blank=True)
    decided_at = models.DateTimeField()
    applied_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["rollout_id", "sequence"]
        constraints = [
            models.UniqueConstraint(fields=["rollout", "sequence"], name="rolloutdecision_unique_sequence"),
            models.UniqueConstraint(fields=["rollout"], condition=models.Q(applied_at__isnull=True),
                                    name="rolloutdecision_one_pending"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} (step {self.step_index + 1})"
