"""Serializers of the monitoring API: plain aggregates (the figures stay a UI concern)."""

from __future__ import annotations

from rest_framework import serializers

from monitoring.models import MonitoringConfig


class LatencyPointSerializer(serializers.Serializer):
    time = serializers.DateTimeField(help_text="Start of the step (UTC).")
    requests = serializers.IntegerField()
    errors = serializers.IntegerField(help_text="Requests that got no response (the model did not answer HTTP 200).")
    p50_ms = serializers.FloatField(allow_null=True)
    p95_ms = serializers.FloatField(allow_null=True)
    p99_ms = serializers.FloatField(allow_null=True)


class LatencyTotalsSerializer(serializers.Serializer):
    requests = serializers.IntegerField()
    errors = serializers.IntegerField()
    error_rate_percent = serializers.FloatField(allow_null=True)
    requests_per_second = serializers.FloatField()
    p50_ms = serializers.FloatField(allow_null=True)
    p95_ms = serializers.FloatField(allow_null=True)
    p99_ms = serializers.FloatField(allow_null=True)
    mean_ms = serializers.FloatField(allow_null=True)
    prompt_tokens = serializers.IntegerField(help_text="OpenAI-compatible endpoints: prompt tokens in the range.")
    completion_tokens = serializers.IntegerField(help_text="OpenAI-compatible endpoints: completion tokens.")


class VersionLatencySerializer(serializers.Serializer):
    model_version = serializers.IntegerField(allow_null=True, help_text="ModelVersion id (null: unknown version).")
    role = serializers.ChoiceField(choices=["primary", "canary", "other", "unknown"])
    label = serializers.CharField()
    totals = LatencyTotalsSerializer()
    series = LatencyPointSerializer(many=True)


class ColdStartSerializer(serializers.Serializer):
    time = serializers.DateTimeField(help_text="When the first request after the scale from zero was answered.")
    revision = serializers.CharField(help_text="The revision that scaled from zero.")
    seconds = serializers.FloatField(allow_null=True, help_text="How long that request waited for it.")
    message = serializers.CharField(help_text="The ColdStart event's message.")


class LatencySerializer(serializers.Serializer):
    endpoint = serializers.IntegerField()
    range = serializers.CharField()
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    step_seconds = serializers.IntegerField()
    logger_note = serializers.CharField(allow_null=True,
                                        help_text="Why the endpoint's logger mode cannot feed latency (null if it can).")
    versions = VersionLatencySerializer(many=True)
    cold_starts = ColdStartSerializer(many=True, help_text=(
        "Scales from zero in the range (ColdStart events of the InferenceService; only for an endpoint with "
        "minReplicas 0). Their wait is not in the logged latencies."))
    cold_start_error = serializers.CharField(help_text="Why cold starts could not be read (empty if they could).")


class FeatureDriftSerializer(serializers.Serializer):
    feature = serializers.CharField()
    is_prediction = serializers.BooleanField()
    psi = serializers.FloatField()
    js = serializers.FloatField(help_text="Jensen–Shannon distance, base 2 (0..1).")
    ks = serializers.FloatField(allow_null=True, help_text="KS statistic at the bin cuts (numeric features).")
    rows = serializers.IntegerField()
    status = serializers.CharField()


class DriftWindowSerializer(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    rows = serializers.IntegerField()
    status = serializers.ChoiceField(choices=["ok", "warning", "alert", "insufficient"])
    max_psi = serializers.FloatField(allow_null=True)
    top_feature = serializers.CharField()
    features = FeatureDriftSerializer(many=True)


class MonitoringConfigSerializer(serializers.ModelSerializer):
    class Meta:
        model = MonitoringConfig
        fields = ["psi_warning", "psi_alert", "drift_window_hours", "min_window_rows"]


class DriftSerializer(serializers.Serializer):
    endpoint = serializers.IntegerField()
    model_version = serializers.IntegerField()
    role = serializers.CharField()
    range = serializers.CharField()
    config = MonitoringConfigSerializer()
    latest = DriftWindowSerializer(allow_null=True)
    windows = DriftWindowSerializer(many=True)
