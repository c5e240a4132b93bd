"""Serializers of the registry and platform-admin API (clusters, projects, models, versions,
runtimes, hardware profiles).

They parse and shape data only: every domain rule is checked by ``endpoints.services``, so the
API answers with the same field messages as the forms. Writable fields are declared explicitly
(no validators generated from the models, whose messages would differ from the services').
Fields naming a protected object (a model's project) are restricted to what the requesting user
may see, through the permission chokepoint.
"""

from __future__ import annotations

import json

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from console.permissions import visible
from console.redaction import redact_ingest_keys
from endpoints import gateway
from endpoints.forms.registry import REFERENCE_FILE_LIMIT, cluster_connection_errors, format_megabytes
from endpoints.gateway import validate_gateway_address
from endpoints.models import (
    Cluster,
    HardwareProfile,
    ModelVersion,
    Project,
    RegisteredModel,
    ServingRuntime,
)
from endpoints.spec import ingest_url

KSERVE_PROTOCOLS = ("v1", "v2", "grpc-v1", "grpc-v2")


@extend_schema_field({"type": "array", "items": {"type": "object", "additionalProperties": True}})
class JSONListField(serializers.Field):
    """A JSON list, sent as a list (JSON bodies) or as a JSON string (multipart forms)."""

    def __init__(self, *, example: str = "[]", **kwargs):
        self.example = example
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if isinstance(data, str | bytes):
            text = data.decode() if isinstance(data, bytes) else data
            if not text.strip():
                return []
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                raise serializers.ValidationError(
                    f"This is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno}). "
                    f"Example: {self.example}") from exc
        if not isinstance(data, list):
            raise serializers.ValidationError(f"Enter a list, for example {self.example}")
        return data

    def to_representation(self, value):
        return value


@extend_schema_field({"type": "object", "additionalProperties": {"type": "string"}})
class JSONObjectField(serializers.Field):
    """A JSON object, sent as an object or as a JSON string."""

    def __init__(self, *, example: str = "{}", **kwargs):
        self.example = example
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if isinstance(data, str):
            if not data.strip():
                return {}
            try:
                data = json.loads(data)
            except json.JSONDecodeError as exc:
                raise serializers.ValidationError(
                    f"This is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno}). "
                    f"Example: {self.example}") from exc
        if not isinstance(data, dict):
            raise serializers.ValidationError(f"Enter an object, for example {self.example}")
        return data

    def to_representation(self, value):
        return value


# --- clusters --------------------------------------------------------------------------------------

class ClusterSerializer(serializers.ModelSerializer):
    """A cluster. ``api_token`` is write-only: never returned; ``has_token`` says whether one is
    stored. On update, leaving ``api_token`` out keeps the stored token and ``""`` removes it."""

    name = serializers.CharField(max_length=63, help_text="Cannot change once created.")
    description = serializers.CharField(max_length=200, required=False, allow_blank=True)
    kind = serializers.ChoiceField(choices=Cluster.Kind.choices, required=False)
    connection = serializers.ChoiceField(choices=Cluster.Connection.choices, required=False)
    kubeconfig_path = serializers.CharField(max_length=500, required=False, allow_blank=True)
    kubeconfig_context = serializers.CharField(max_length=200, required=False, allow_blank=True)
    api_url = serializers.CharField(max_length=200, required=False, allow_blank=True)
    api_token = serializers.CharField(max_length=2000, required=False, allow_blank=True, write_only=True,
                                      trim_whitespace=True, style={"input_type": "password"})
    has_token = serializers.SerializerMethodField()
    ingress_domain = serializers.CharField(max_length=253, required=False)
    gateway_address = serializers.CharField(max_length=300, required=False, allow_blank=True,
                                            validators=[validate_gateway_address], help_text=gateway.HELP)
    enabled = serializers.BooleanField(required=False)
    project_count = serializers.IntegerField(read_only=True, default=0)

    class Meta:
        model = Cluster
        fields = ["id", "name", "description", "kind", "connection", "kubeconfig_path", "kubeconfig_context",
                  "api_url", "api_token", "has_token", "ingress_domain", "gateway_address", "enabled", "project_count", "created_at"]
        read_only_fields = ["id", "created_at"]
        validators: list = []

    def get_has_token(self, cluster) -> bool:
        return bool(cluster.api_token_ciphertext)

    def validate(self, attrs):
        current = self.instance
        connection = attrs.get("connection", current.connection if current else Cluster.Connection.KUBECONFIG)
        api_url = attrs.get("api_url", current.api_url if current else "")
        errors = cluster_connection_errors(connection=connection, api_url=api_url)
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


# --- hardware profiles -------------------------------------------------------------------------------

class HardwareProfileSerializer(serializers.ModelSerializer):
    """An admin-defined accelerator (or CPU-only) choice with placement and bounds."""

    name = serializers.CharField(max_length=63, help_text="Cannot change once created.")
    display_name = serializers.CharField(max_length=100)
    description = serializers.CharField(max_length=300, required=False, allow_blank=True)
    accelerator_resource = serializers.CharField(max_length=100, required=False, allow_blank=True)
    accelerator_product = serializers.CharField(max_length=100, required=False, allow_blank=True)
    node_selector = JSONObjectField(required=False, example='{"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}')
    tolerations = JSONListField(required=False,
                                example='[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]')
    default_cpu = serializers.CharField(max_length=20, required=False)
    default_memory = serializers.CharField(max_length=20, required=False)
    defaults_as_limits = serializers.BooleanField(
        required=False, help_text="Also apply the defaults as limits where an endpoint sets none.")
    max_cpu = serializers.CharField(max_length=20, required=False)
    max_memory = serializers.CharField(max_length=20, required=False)
    max_accelerators_per_replica = serializers.IntegerField(min_value=0, required=False)
    capacity = serializers.IntegerField(min_value=0, required=False)
    enabled = serializers.BooleanField(required=False)

    class Meta:
        model = HardwareProfile
        fields = ["id", "name", "display_name", "description", "accelerator_resource", "accelerator_product",
                  "node_selector", "tolerations", "default_cpu", "default_memory", "defaults_as_limits", "max_cpu",
                  "max_memory", "max_accelerators_per_replica", "capacity", "enabled"]
        read_only_fields = ["id"]
        validators: list = []


# --- runtimes -----------------------------------------------------------------------------------------

class ServingRuntimeSerializer(serializers.ModelSerializer):
    """A runtime catalog entry. Built-in entries mirror KServe's defaults: only ``disabled`` and
    ``description`` may change."""

    name = serializers.CharField(max_length=63, help_text="Cannot change once created.")
    display_name = serializers.CharField(max_length=100, required=False, allow_blank=True)
    description = serializers.CharField(max_length=300, required=False, allow_blank=True)
    supported_formats = JSONListField(required=False,
                                      example='[{"name": "sklearn", "version": "1", "autoSelect": true}]')
    protocols = serializers.ListField(child=serializers.ChoiceField(choices=KSERVE_PROTOCOLS), required=False)
    openai_compatible = serializers.BooleanField(required=False)
    openai_route_prefix = serializers.CharField(max_length=40, required=False, allow_blank=True)
    container_image = serializers.CharField(max_length=300, required=False, allow_blank=True)
    container_args = serializers.ListField(child=serializers.CharField(allow_blank=True), required=False)
    disabled = serializers.BooleanField(required=False)

    class Meta:
        model = ServingRuntime
        fields = ["id", "name", "display_name", "description", "built_in", "supported_formats", "protocols",
                  "openai_compatible", "openai_route_prefix", "multi_model", "container_image", "container_args",
                  "disabled", "created_at"]
        read_only_fields = ["id", "built_in", "multi_model", "created_at"]
        validators: list = []


# --- projects -----------------------------------------------------------------------------------------

class ProjectQuotaSerializer(serializers.Serializer):
    """An accelerator quota: at most ``max_accelerators`` of a hardware profile for the project
    (``null`` removes the quota when setting one)."""

    hardware_profile = serializers.PrimaryKeyRelatedField(queryset=HardwareProfile.objects.all())
    hardware_profile_name = serializers.CharField(source="hardware_profile.name", read_only=True)
    max_accelerators = serializers.IntegerField(min_value=0, allow_null=True)


class ProjectSerializer(serializers.ModelSerializer):
    """A project: one namespace on one cluster. The ingest key is never returned; the payload
    logger URL shows only its last 4 characters."""

    name = serializers.CharField(max_length=63)
    display_name = serializers.CharField(max_length=100, required=False, allow_blank=True)
    description = serializers.CharField(required=False, allow_blank=True)
    cluster = serializers.PrimaryKeyRelatedField(queryset=Cluster.objects.filter(enabled=True))
    cluster_name = serializers.CharField(source="cluster.name", read_only=True)
    namespace = serializers.CharField(max_length=63, required=False, allow_blank=True,
                                      help_text="Defaults to the project's name.")
    quotas = ProjectQuotaSerializer(many=True, required=False)
    payload_logger_url = serializers.SerializerMethodField()

    class Meta:
        model = Project
        fields = ["id", "name", "display_name", "description", "cluster", "cluster_name", "namespace", "quotas",
                  "payload_logger_url", "created_at"]
        read_only_fields = ["id", "created_at"]
        validators: list = []

    def get_payload_logger_url(self, project) -> str:
        return redact_ingest_keys(ingest_url(project))


# --- registry -----------------------------------------------------------------------------------------

class RegisteredModelSerializer(serializers.ModelSerializer):
    """A registered model. ``project`` accepts only projects the caller can see; registering
    needs the deploy permission there."""

    project = serializers.PrimaryKeyRelatedField(queryset=Project.objects.none())
    project_name = serializers.CharField(source="project.name", read_only=True)
    name = serializers.CharField(max_length=63)
    task = serializers.ChoiceField(choices=RegisteredModel.Task.choices)
    description = serializers.CharField(required=False, allow_blank=True)
    owner = serializers.SlugRelatedField(slug_field="username", read_only=True)
    version_count = serializers.IntegerField(read_only=True, default=0)
    latest_version = serializers.IntegerField(read_only=True, allow_null=True, default=None)

    class Meta:
        model = RegisteredModel
        fields = ["id", "name", "project", "project_name", "task", "description", "owner", "version_count",
                  "latest_version", "created_at"]
        read_only_fields = ["id", "created_at"]
        validators: list = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        request = self.context.get("request")
        if request is not None:
            self.fields["project"].queryset = visible(Project.objects.all(), request.user, "view")


class DeploymentSerializer(serializers.Serializer):
    """An endpoint serving a version, as primary or as canary."""

    id = serializers.IntegerField()
    project = serializers.CharField()
    name = serializers.CharField()
    role = serializers.ChoiceField(choices=["primary", "canary"])


def _deployments(version) -> list[dict]:
    rows = [{"id": e.pk, "project": e.project.name, "name": e.name, "role": "primary"}
            for e in getattr(version, "visible_endpoints", [])]
    rows += [{"id": e.pk, "project": e.project.name, "name": e.name, "role": "canary"}
             for e in getattr(version, "visible_canary_endpoints", [])]
    return rows


class ReferenceSummarySerializer(serializers.Serializer):
    rows = serializers.IntegerField()
    features = serializers.IntegerField()
    has_prediction = serializers.BooleanField()


class ModelVersionSerializer(serializers.ModelSerializer):
    """A model version with its aliases, a summary of its reference profile and the endpoints
    (visible to the caller) that serve it."""

    model_name = serializers.CharField(source="model.name", read_only=True)
    connection_name = serializers.CharField(source="connection.name", read_only=True, default=None, allow_null=True)
    aliases = serializers.SerializerMethodField()
    reference = serializers.SerializerMethodField()
    deployments = serializers.SerializerMethodField()
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = ModelVersion
        fields = ["id", "model", "model_name", "version", "storage_uri", "connection", "connection_name",
                  "model_format", "format_version",
                  "input_signature", "prediction_column", "reference_filename", "reference", "aliases",
                  "deployments", "source_run_uri", "description", "created_by", "created_at", "archived_at"]
        read_only_fields = fields

    def get_aliases(self, version) -> list[str]:
        return [alias.name for alias in version.aliases.all()]

    @extend_schema_field(ReferenceSummarySerializer(allow_null=True))
    def get_reference(self, version):
        profile = version.reference_profile
        if not profile:
            return None
        return {"rows": profile.get("rows", 0), "features": len(profile.get("features", [])),
                "has_prediction": bool(profile.get("prediction"))}

    @extend_schema_field(DeploymentSerializer(many=True))
    def get_deployments(self, version):
        return _deployments(version)


class ModelVersionDetailSerializer(ModelVersionSerializer):
    """A model version with its full reference profile (bin edges and proportions per feature)."""

    reference_profile = serializers.JSONField(read_only=True)

    class Meta(ModelVersionSerializer.Meta):
        fields = [*ModelVersionSerializer.Meta.fields, "reference_profile"]
        read_only_fields = fields


class ModelVersionCreateSerializer(serializers.Serializer):
    """Register the next version of a model. Send multipart/form-data to upload a reference
    sample (CSV or Parquet, up to 50 MB); ``input_signature`` may then be a JSON string."""

    storage_uri = serializers.CharField(max_length=1000)
    model_format = serializers.CharField(max_length=40)
    format_version = serializers.CharField(max_length=20, required=False, allow_blank=True, default="")
    input_signature = JSONListField(required=False, example='[{"name": "amount", "type": "numeric"}]')
    prediction_column = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    reference_file = serializers.FileField(required=False, allow_null=True, use_url=False)
    source_run_uri = serializers.CharField(max_length=1000, required=False, allow_blank=True, default="")
    description = serializers.CharField(required=False, allow_blank=True, default="")
    aliases = serializers.ListField(child=serializers.CharField(max_length=40), required=False, default=list)
    connection = serializers.IntegerField(
        required=False, allow_null=True, default=None, min_value=1,
        help_text="Id of a storage connection of the project (or a platform-wide one it opted into); the console "
                  "checks with its credentials that the artifact exists before registering.")
    skip_storage_check = serializers.BooleanField(
        required=False, default=False,
        help_text="Register even if the console cannot reach the storage (the storage's own refusals still refuse).")

    def validate_reference_file(self, upload):
        if upload is not None and upload.size > REFERENCE_FILE_LIMIT:
            raise serializers.ValidationError(
                f"The file is {format_megabytes(upload.size)}; reference samples are limited to 50 MB. "
                "Upload a random sample of the rows instead.")
        return upload


class AliasSerializer(serializers.Serializer):
    """Point alias ``name`` at version number ``version`` of the model."""

    name = serializers.CharField(max_length=40)
    version = serializers.IntegerField(min_value=1)


class AliasResultSerializer(serializers.Serializer):
    name = serializers.CharField()
    version = serializers.IntegerField()

