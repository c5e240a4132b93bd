"""Serializers of the audit API (read-only: the trail is written by services only)."""

from __future__ import annotations

from rest_framework import serializers

from audit.models import AuditEvent, AuditSeal, IngestBatch


class AuditEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEvent
        fields = [
            "id", "occurred_at", "received_at", "source", "actor_id", "actor_name", "action", "target_type",
            "target_id", "target_repr", "project_id", "project_name", "outcome", "source_ip", "user_agent",
            "request_id", "details", "external_id", "digest",
        ]
        read_only_fields = fields


class AuditSealSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditSeal
        fields = [
            "sequence", "created_at", "key_id", "ranges", "first_event_id", "last_event_id", "event_count",
            "min_occurred_at", "max_occurred_at", "events_digest", "floor", "previous_hash", "seal_hash", "signature",
        ]
        read_only_fields = fields


class IngestBatchSerializer(serializers.ModelSerializer):
    class Meta:
        model = IngestBatch
        fields = [
            "id", "kind", "status", "received_at", "project_id", "project_name", "cluster_name", "submitted_by_name",
            "source_ip", "content_type", "body_size", "body_sha256", "item_count", "attempts", "next_attempt_at",
            "error", "processed_at", "created_count", "duplicate_count",
        ]
        read_only_fields = fields


class ProblemSerializer(serializers.Serializer):
    kind = serializers.CharField()
    message = serializers.CharField()
    event_id = serializers.IntegerField(allow_null=True)
    seal = serializers.IntegerField(allow_null=True)


class VerificationSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    seals = serializers.IntegerField()
    events = serializers.IntegerField()
    archived_events = serializers.IntegerField()
    unsealed = serializers.IntegerField()
    problem_count = serializers.IntegerField()
    first_problem = ProblemSerializer(allow_null=True)
    problems = ProblemSerializer(many=True)
