"""Serializers of the endpoint API.

Write serializers only parse: every rule lives in the services (``endpoints.validation``), so
the API answers with the same messages as the wizard. Related fields are restricted through
the permission chokepoint to what the requesting user may use: naming an object they cannot
see (or deploy) is a 400 on that field.
"""

from __future__ import annotations

from dataclasses import asdict

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from console.redaction import redact_ingest_keys
from endpoints import selectors
from endpoints.models import (
    Endpoint,
    EndpointStatus,
    HardwareProfile,
    ModelVersion,
    Project,
    Revision,
    ServingRuntime,
)


class UsableRelatedField(serializers.PrimaryKeyRelatedField):
    """A primary key among the objects the user may use (the queryset is set per request)."""

    default_error_messages = {
        "does_not_exist": 'No object with id "{pk_value}" that you may use here.',
        "incorrect_type": "Give the object's id (an integer), not {data_type}.",
    }


@extend_schema_field({
    "type": "array",
    "items": {"type": "object", "properties": {"name": {"type": "string"}, "value": {"type": "string"}},
              "required": ["name"]},
    "description": "Environment variables of the model server container.",
})
class EnvField(serializers.JSONField):
    pass


@extend_schema_field({"type": "array", "items": {"type": "string"},
                      "description": "Extra model-server arguments, appended after the runtime's."})
class ArgsField(serializers.JSONField):
    pass


class EndpointStatusSerializer(serializers.ModelSerializer):
    """What the cluster last reported (written only by workers)."""

    class Meta:
        model = EndpointStatus
        fields = ["phase", "ready", "url", "address_url", "conditions", "traffic", "model_status",
                  "observed_runtime", "applied_generation", "last_synced_at", "last_reconcile_at",
                  "last_reconcile_result", "last_error"]
        read_only_fields = fields


class EndpointSerializer(serializers.ModelSerializer):
    """An endpoint: desired state, generation and observed status."""

    project_name = serializers.CharField(source="project.name", read_only=True)
    namespace = serializers.CharField(source="project.namespace", read_only=True)
    model_name = serializers.CharField(source="model_version.model.name", read_only=True)
    model_version_number = serializers.IntegerField(source="model_version.version", read_only=True)
    runtime_name = serializers.CharField(source="runtime.name", read_only=True, allow_null=True, default=None)
    hardware_profile_name = serializers.CharField(source="hardware_profile.name", read_only=True, allow_null=True,
                                                  default=None)
    canary_version_number = serializers.IntegerField(source="canary_version.version", read_only=True,
                                                     allow_null=True, default=None)
    env = EnvField(read_only=True)
    args = ArgsField(read_only=True)
    status = EndpointStatusSerializer(read_only=True, allow_null=True)

    class Meta:
        model = Endpoint
        fields = [
            "id", "project", "project_name", "namespace", "name", "description", "model_version", "model_name",
            "model_version_number", "runtime", "runtime_name", "protocol", "deployment_mode", "min_replicas",
            "max_replicas", "scale_metric", "scale_target", "container_concurrency", "timeout_seconds",
            "hardware_profile", "hardware_profile_name", "accelerator_count", "cpu_request", "cpu_limit",
            "memory_request", "memory_limit", "env", "args", "canary_version", "canary_version_number",
            "canary_traffic_percent", "logging_mode", "generation", "state", "created_at", "updated_at", "status",
        ]
        read_only_fields = fields


class _EndpointFieldsSerializer(serializers.Serializer):
    """The configurable fields, shared by create, update and plan requests. Choice-like
    fields are plain strings on purpose: the services explain what is wrong with a value."""

    description = serializers.CharField(required=False, allow_blank=True, max_length=300)
    model_version = UsableRelatedField(queryset=ModelVersion.objects.none(), required=False)
    runtime = UsableRelatedField(queryset=ServingRuntime.objects.none(), required=False, allow_null=True,
                                 help_text="Null: KServe auto-selects a runtime.")
    protocol = serializers.CharField(required=False, help_text="v1, v2 or openai (LLM runtimes only).")
    deployment_mode = serializers.CharField(required=False, help_text="Knative or Standard; fixed after the "
                                                                      "first apply.")
    min_replicas = serializers.IntegerField(required=False, help_text="0 (scale-to-zero) only in Knative mode.")
    max_replicas = serializers.IntegerField(required=False)
    scale_metric = serializers.CharField(required=False, allow_blank=True,
                                         help_text="concurrency or rps (Knative), cpu or memory (Standard).")
    scale_target = serializers.IntegerField(required=False, allow_null=True)
    container_concurrency = serializers.IntegerField(required=False, allow_null=True)
    timeout_seconds = serializers.IntegerField(required=False, allow_null=True)
    hardware_profile = UsableRelatedField(queryset=HardwareProfile.objects.none(), required=False, allow_null=True)
    accelerator_count = serializers.IntegerField(required=False)
    cpu_request = serializers.CharField(required=False, allow_blank=True)
    cpu_limit = serializers.CharField(required=False, allow_blank=True)
    memory_request = serializers.CharField(required=False, allow_blank=True)
    memory_limit = serializers.CharField(required=False, allow_blank=True)
    env = EnvField(required=False)
    args = ArgsField(required=False)
    canary_version = UsableRelatedField(queryset=ModelVersion.objects.none(), required=False, allow_null=True)
    canary_traffic_percent = serializers.IntegerField(required=False, allow_null=True)
    logging_mode = serializers.CharField(required=False, help_text="off, all, request or response.")

    def __init__(self, *args, endpoint: Endpoint | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.endpoint = endpoint
        request = self.context.get("request")
        user = getattr(request, "user", None)
        versions = selectors.version_choices_for(user=user)
        self.fields["model_version"].queryset = versions
        self.fields["canary_version"].queryset = versions
        self.fields["runtime"].queryset = selectors.runtime_choices(endpoint)
        self.fields["hardware_profile"].queryset = selectors.hardware_choices(endpoint)
        if "project" in self.fields:
            self.fields["project"].queryset = selectors.project_list_visible_to(user=user, action="deploy")

    def validate(self, attrs):
        # A profile with an accelerator chosen without a count requests its minimum, 1 per
        # replica (an explicit 0 is refused by the rules); CPU and memory defaults are the
        # service's (``apply_profile_defaults``).
        profile = attrs.get("hardware_profile")
        if (profile is not None and profile.accelerator_resource and "accelerator_count" not in attrs
                and (self.endpoint is None or not self.endpoint.accelerator_count)):
            attrs["accelerator_count"] = 1
        return attrs


class EndpointCreateSerializer(_EndpointFieldsSerializer):
    """A new endpoint; omitted fields take the endpoint defaults."""

    project = UsableRelatedField(queryset=Project.objects.none(),
                                 help_text="A project you may deploy to.")
    name = serializers.CharField(help_text="DNS-1035 label, at most 45 characters (name + namespace ≤ 50).")
    model_version = UsableRelatedField(queryset=ModelVersion.objects.none())


class EndpointUpdateSerializer(_EndpointFieldsSerializer):
    """The fields to change (PATCH semantics: omitted fields keep their value)."""


class RollbackSerializer(serializers.Serializer):
    generation = serializers.IntegerField(min_value=1, help_text="The revision's generation to restore.")


class RevisionSerializer(serializers.ModelSerializer):
    """One immutable generation of an endpoint."""

    class Meta:
        model = Revision
        fields = ["id", "generation", "change_summary", "actor_name", "created_at", "outcome", "message", "spec",
                  "manifest"]
        read_only_fields = fields

    def to_representation(self, instance):
        data = super().to_representation(instance)
        data["spec"] = redact_ingest_keys(data["spec"])
        data["manifest"] = redact_ingest_keys(data["manifest"])
        return data


class FieldChangeSerializer(serializers.Serializer):
    path = serializers.CharField()
    old = serializers.JSONField(allow_null=True)
    new = serializers.JSONField(allow_null=True)


class CauseSerializer(serializers.Serializer):
    field = serializers.CharField(allow_blank=True)
    message = serializers.CharField()


class DryRunSerializer(serializers.Serializer):
    ok = serializers.BooleanField(allow_null=True, help_text="null: not checked or cluster unreachable.")
    message = serializers.CharField(allow_blank=True)
    causes = CauseSerializer(many=True)


class LiveSerializer(serializers.Serializer):
    checked = serializers.BooleanField()
    exists = serializers.BooleanField(allow_null=True)
    error = serializers.CharField(allow_blank=True)
    diff = serializers.CharField(allow_blank=True, help_text="Unified diff of live (owned fields) → desired.")


class RestartSerializer(serializers.Serializer):
    required = serializers.BooleanField()
    reasons = serializers.ListField(child=serializers.CharField())


class AcceleratorImpactSerializer(serializers.Serializer):
    profile = serializers.CharField()
    resource = serializers.CharField()
    per_replica = serializers.IntegerField()
    at_max = serializers.IntegerField()
    surge = serializers.IntegerField()
    peak = serializers.IntegerField()
    capacity = serializers.IntegerField()
    used_elsewhere = serializers.IntegerField()
    shortfall = serializers.IntegerField()
    quota = serializers.IntegerField(allow_null=True)
    quota_used_elsewhere = serializers.IntegerField()


class TrafficSerializer(serializers.Serializer):
    before = serializers.IntegerField()
    after = serializers.IntegerField()
    promoted = serializers.BooleanField()
    description = serializers.CharField()


class StorageCheckSerializer(serializers.Serializer):
    """The storage preflight of one version: checked with its connection's credentials."""

    uri = serializers.CharField()
    connection = serializers.CharField(allow_blank=True)
    state = serializers.ChoiceField(choices=["ok", "missing_container", "missing_object", "denied", "unreachable",
                                             "invalid", "not_checked"])
    message = serializers.CharField()
    blocking = serializers.BooleanField()


class PlanSerializer(serializers.Serializer):
    """What a change would do; nothing is stored."""

    endpoint_name = serializers.CharField()
    namespace = serializers.CharField()
    generation = serializers.IntegerField(help_text="The generation the change would create.")
    is_new = serializers.BooleanField()
    has_changes = serializers.BooleanField()
    field_changes = FieldChangeSerializer(many=True)
    manifest = serializers.JSONField()
    manifest_yaml = serializers.CharField()
    live = LiveSerializer()
    dry_run = DryRunSerializer()
    restart = RestartSerializer()
    accelerators = AcceleratorImpactSerializer(allow_null=True)
    traffic = TrafficSerializer(allow_null=True)
    warnings = serializers.ListField(child=serializers.CharField())
    storage = StorageCheckSerializer(many=True)
    storage_blocked = serializers.BooleanField(help_text="The storage said an artifact cannot be downloaded.")
    connection_objects = serializers.ListField(child=serializers.CharField())


def plan_data(plan, *, cluster_note: str = "") -> dict:
    """A ``endpoints.plan.Plan`` as the API returns it."""
    return {
        "endpoint_name": plan.endpoint_name,
        "namespace": plan.namespace,
        "generation": plan.generation,
        "is_new": plan.is_new,
        "has_changes": plan.has_changes,
        # An empty old snapshot shows up as a change at path "" (spec.field_changes); skip it.
        "field_changes": [{"path": p, "old": old, "new": new} for p, old, new in plan.field_changes if p],
        "manifest": plan.manifest,
        "manifest_yaml": plan.manifest_yaml,
        "storage": [{"uri": r.uri, "connection": r.connection_name, "state": r.check.state,
                     "message": r.check.message, "blocking": r.blocking} for r in plan.storage],
        "storage_blocked": plan.storage_blocked,
        "connection_objects": list(plan.connection_objects),
        "live": {"checked": plan.live_exists is not None or bool(plan.live_error), "exists": plan.live_exists,
                 "error": plan.live_error, "diff": plan.manifest_diff},
        "dry_run": {"ok": plan.dry_run_ok, "message": plan.dry_run_message or cluster_note,
                    "causes": [{"field": c.get("field", ""), "message": c.get("message", "")}
                               for c in plan.dry_run_causes]},
        "restart": {"required": plan.restart, "reasons": list(plan.restart_reasons)},
        "accelerators": asdict(plan.accelerators) if plan.accelerators else None,
        "traffic": plan.traffic,
        "warnings": list(plan.warnings),
    }
