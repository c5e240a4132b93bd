"""Serializers of the storage-connection API.

``secrets`` is write-only: no answer carries a secret value, only ``secret_fields`` (the names of
the secret fields that are set), ``secret_version`` and ``secret_rotated_at``. The settings
(``config``) are not secret. Domain rules (names, required settings and secrets per kind, URLs)
are the services' (``endpoints.services.connections``), so the API answers with the form's
messages.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from console.permissions import restrict
from endpoints.api.registry_serializers import JSONObjectField
from endpoints.models import Project, StorageConnection


@extend_schema_field({"type": "object", "additionalProperties": {"type": "string"}, "writeOnly": True})
class SecretValuesField(serializers.DictField):
    """Secret values by field name (write-only; blank values keep the stored ones on update)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("child", serializers.CharField(allow_blank=True, trim_whitespace=False, max_length=20000))
        kwargs.setdefault("write_only", True)
        kwargs.setdefault("required", False)
        super().__init__(**kwargs)


class StorageConnectionSerializer(serializers.ModelSerializer):
    """A storage connection. ``project`` null: platform-wide (created by platform admins; projects
    opt in). ``secrets`` is write-only and never returned."""

    name = serializers.CharField(max_length=40, help_text="Cannot change once created.")
    kind = serializers.ChoiceField(choices=StorageConnection.Kind.choices, help_text="Cannot change once created.")
    project = serializers.PrimaryKeyRelatedField(queryset=Project.objects.none(), allow_null=True,
                                                 help_text="The owning project (one you manage); null for a "
                                                           "platform-wide connection (platform admins). Cannot change "
                                                           "once created.")
    project_name = serializers.CharField(source="project.name", read_only=True, default=None)
    scope = serializers.SerializerMethodField()
    display_name = serializers.CharField(max_length=100, required=False, allow_blank=True)
    description = serializers.CharField(max_length=300, required=False, allow_blank=True)
    config = JSONObjectField(required=False, example='{"endpoint_url": "https://minio.internal:9000", '
                                                     '"region": "us-east-1"}')
    secrets = SecretValuesField(help_text="Secret values by field name, e.g. {\"access_key_id\": \"…\", "
                                          "\"secret_access_key\": \"…\"}. Write-only.")
    secret_fields = serializers.ListField(child=serializers.CharField(), read_only=True)
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = StorageConnection
        fields = ["id", "name", "display_name", "description", "kind", "project", "project_name", "scope", "config",
                  "secrets", "secret_fields", "secret_version", "secret_rotated_at", "created_by", "created_at",
                  "updated_at"]
        read_only_fields = ["id", "secret_fields", "secret_version", "secret_rotated_at", "created_by", "created_at",
                            "updated_at"]
        validators: list = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        request = self.context.get("request")
        if request is not None:
            # A project the caller cannot see does not exist.
            self.fields["project"].queryset = restrict(Project.objects.all(), request.user, "view")

    def get_scope(self, connection) -> str:
        return "platform" if connection.project_id is None else "project"


class SecretsSerializer(serializers.Serializer):
    """New secret values (at least one; blank values keep the stored ones)."""

    secrets = SecretValuesField(required=True)


class CheckRequestSerializer(serializers.Serializer):
    uri = serializers.CharField(max_length=1000)


class CheckResultSerializer(serializers.Serializer):
    state = serializers.ChoiceField(choices=["ok", "missing_container", "missing_object", "denied", "unreachable",
                                             "invalid", "not_checked", "error"])
    message = serializers.CharField()
    detail = serializers.DictField()
    uri = serializers.CharField()
    connection = serializers.CharField()


class OptInRequestSerializer(serializers.Serializer):
    project = serializers.PrimaryKeyRelatedField(queryset=Project.objects.none())

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        request = self.context.get("request")
        if request is not None:
            self.fields["project"].queryset = restrict(Project.objects.all(), request.user, "view")


class UsageEndpointSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="pk")
    project = serializers.CharField(source="project.name")
    name = serializers.CharField()


class UsageVersionSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="pk")
    project = serializers.CharField(source="model.project.name")
    model = serializers.IntegerField(source="model_id")
    model_name = serializers.CharField(source="model.name")
    version = serializers.IntegerField()
    storage_uri = serializers.CharField()


class UsageOptInSerializer(serializers.Serializer):
    project = serializers.IntegerField(source="project_id")
    project_name = serializers.CharField(source="project.name")
    created_by = serializers.CharField(source="created_by.username", default=None, allow_null=True)
    created_at = serializers.DateTimeField()


class UsageSerializer(serializers.Serializer):
    """What uses a connection, as far as the caller can see."""

    endpoints = UsageEndpointSerializer(many=True)
    versions = UsageVersionSerializer(many=True)
    opt_ins = UsageOptInSerializer(many=True)
