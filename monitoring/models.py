"""Monitoring data: one record per logged inference, the rollups dashboards read instead of
records, live bin counts per reference bin, and drift results.

Records arrive through ``monitoring.consumers.record_inference`` (the audit app's ingest
pipeline pairs the payload logger's request and response events and dispatches them).
Everything else is derived and can be pruned on its own schedule (``monitoring.tasks``).
Access follows the endpoint: dashboards reach these tables only through selectors that first
resolve the endpoint through ``console.permissions``.
"""

from __future__ import annotations

from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from monitoring import drift, metrics


class MonitoringConfig(models.Model):
    """Per-endpoint monitoring settings. An endpoint without a row uses the defaults."""

    WINDOW_CHOICES = [(1, "1 hour"), (3, "3 hours"), (6, "6 hours"), (12, "12 hours"), (24, "24 hours")]

    endpoint = models.OneToOneField(
        "endpoints.Endpoint", on_delete=models.CASCADE, primary_key=True, related_name="monitoring_config"
    )
    psi_warning = models.FloatField(
        default=drift.DEFAULT_PSI_WARNING, validators=[MinValueValidator(0.0)],
        help_text="A feature whose PSI reaches this value is a warning.",
    )
    psi_alert = models.FloatField(
        default=drift.DEFAULT_PSI_ALERT, validators=[MinValueValidator(0.0)],
        help_text="A feature whose PSI reaches this value raises a drift alert.",
    )
    drift_window_hours = models.PositiveSmallIntegerField(
        choices=WINDOW_CHOICES, default=1, help_text="Length of the windows of live traffic compared with the reference."
    )
    # Sampling noise alone gives PSI ≈ (bins − 1) × (1/live rows + 1/reference rows): about 0.02
    # + 0.01 for 500 live rows against a 1,000-row reference in ten bins, well under the 0.1
    # warning, and an empty bin (floored at ε) is then practically impossible.
    min_window_rows = models.PositiveIntegerField(
        default=500, validators=[MinValueValidator(1)],
        help_text="Windows with fewer rows get no status: PSI of a few rows is mostly sampling noise.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(psi_alert__gt=F("psi_warning")), name="monitoring_alert_above_warning"),
        ]

    def __str__(self) -> str:
        return f"monitoring of endpoint {self.endpoint_id}"


class InferenceRecord(models.Model):
    """One logged inference: a request and (when the logger sent it) its response.

    Feature values are not kept, only their bins under the model version's reference profile
    (``feature_bins``: one list of bin indices per profile feature, in profile order, -1 for
    missing); the raw payloads belong to the audit trail and its per-project body setting.
    """

    class Role(models.TextChoices):
        PRIMARY = "primary", "Primary"
        CANARY = "canary", "Canary"
        OTHER = "other", "Other version"

    class Status(models.TextChoices):
        OK = "ok", "Answered"
        ERROR = "error", "No response (error or timeout)"
        UNPAIRED = "unpaired", "Request only (logger mode without responses)"

    endpoint = models.ForeignKey("endpoints.Endpoint", on_delete=models.CASCADE, related_name="+")
    model_version = models.ForeignKey(
        "endpoints.ModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    version_label = models.CharField(max_length=120, blank=True, help_text="The model-version annotation as logged.")
    role = models.CharField(max_length=8, choices=Role.choices, default=Role.OTHER)
    component = models.CharField(max_length=20, default="predictor")
    event_id = models.CharField(max_length=200)
    request_time = models.DateTimeField()
    response_time = models.DateTimeField(null=True, blank=True)
    latency_ms = models.FloatField(null=True, blank=True)
    status = models.CharField(max_length=8, choices=Status.choices)
    caller = models.CharField(max_length=150, blank=True)
    rows = models.PositiveIntegerField(default=0, help_text="Instances (rows) in the request.")
    feature_bins = models.JSONField(default=list, blank=True)
    prediction_bins = models.JSONField(default=list, blank=True)
    predictions = models.JSONField(default=list, blank=True)
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["endpoint", "component", "event_id"], name="record_unique_event"),
        ]
        indexes = [
            models.Index(fields=["endpoint", "request_time"], name="record_endpoint_time_idx"),
            models.Index(fields=["request_time"], name="record_time_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.event_id} ({self.status})"


class LatencyRollup(models.Model):
    """Requests, errors and a latency histogram of one endpoint and model version over one
    minute, quarter of an hour or hour. Written by atomic increments as records arrive; the
    histogram is one column per fixed bucket (``monitoring.metrics``), so rows of any range add
    up. The quarter-hour rows are the 24-hour dashboard's points: 96 rows per version instead
    of 1,440 minute rows (docs/performance.md)."""

    MINUTE = 60
    QUARTER = 900
    HOUR = 3600
    RESOLUTION_CHOICES = [(MINUTE, "minute"), (QUARTER, "quarter hour"), (HOUR, "hour")]

    endpoint = models.ForeignKey("endpoints.Endpoint", on_delete=models.CASCADE, related_name="+")
    # The ModelVersion's id, or 0 when the logged annotation named no known version (a plain
    # integer: unique keys with NULL never conflict, and increments need the conflict).
    version_key = models.PositiveBigIntegerField(default=0)
    resolution = models.PositiveIntegerField(choices=RESOLUTION_CHOICES)
    start = models.DateTimeField()
    requests = models.PositiveBigIntegerField(default=0)
    errors = models.PositiveBigIntegerField(default=0)
    unpaired = models.PositiveBigIntegerField(default=0)
    latency_count = models.PositiveBigIntegerField(default=0)
    latency_sum_ms = models.FloatField(default=0.0)
    prompt_tokens = models.PositiveBigIntegerField(default=0)
    completion_tokens = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["endpoint", "resolution", "start", "version_key"],
                                    name="rollup_unique_bucket"),
        ]
        indexes = [models.Index(fields=["resolution", "start"], name="rollup_resolution_start_idx")]

    def __str__(self) -> str:
        return f"{self.endpoint_id}@{self.start:%Y-%m-%d %H:%M} ({self.get_resolution_display()})"

    def histogram(self) -> list[int]:
        return [getattr(self, name) for name in metrics.BUCKET_FIELDS]


for _name in metrics.BUCKET_FIELDS:
    LatencyRollup.add_to_class(_name, models.PositiveBigIntegerField(default=0))


class BinCount(models.Model):
    """How many live rows of one endpoint and model version fell into one reference bin of one
    feature (or of the prediction) in one hour. Drift is computed from these counts."""

    endpoint = models.ForeignKey("endpoints.Endpoint", on_delete=models.CASCADE, related_name="+")
    model_version = models.ForeignKey("endpoints.ModelVersion", on_delete=models.CASCADE, related_name="+")
    hour = models.DateTimeField()
    is_prediction = models.BooleanField(default=False)
    feature = models.CharField(max_length=200)
    bin = models.SmallIntegerField(help_text="Index of the reference bin; -1 counts missing values.")
    count = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["endpoint", "model_version", "hour", "is_prediction", "feature", "bin"],
                                    name="bincount_unique_bin"),
        ]
        indexes = [models.Index(fields=["hour"], name="bincount_hour_idx")]

    def __str__(self) -> str:
        return f"{self.feature}[{self.bin}] = {self.count}"


class DriftBacklog(models.Model):
    """An hour of an endpoint and model version whose bin counts changed since drift was last
    computed for it. Ingest marks it (an upsert that refreshes ``marked_at``); the drift task
    recomputes the windows holding marked hours and removes marks not refreshed meanwhile, so
    late and back-filled events are never left out of stored results."""

    endpoint = models.ForeignKey("endpoints.Endpoint", on_delete=models.CASCADE, related_name="+")
    model_version = models.ForeignKey("endpoints.ModelVersion", on_delete=models.CASCADE, related_name="+")
    hour = models.DateTimeField()
    marked_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["endpoint", "model_version", "hour"], name="driftbacklog_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.endpoint_id}/{self.model_version_id} {self.hour:%Y-%m-%d %H:00}"


class DriftWindow(models.Model):
    """The drift verdict of one endpoint and model version over one window of traffic."""

    class Status(models.TextChoices):
        OK = drift.OK, "OK"
        WARNING = drift.WARNING, "Warning"
        ALERT = drift.ALERT, "Alert"
        INSUFFICIENT = drift.INSUFFICIENT, "Not enough data"

    endpoint = models.ForeignKey("endpoints.Endpoint", on_delete=models.CASCADE, related_name="+")
    model_version = models.ForeignKey("endpoints.ModelVersion", on_delete=models.CASCADE, related_name="+")
    start = models.DateTimeField()
    end = models.DateTimeField()
    rows = models.PositiveBigIntegerField(default=0)
    status = models.CharField(max_length=12, choices=Status.choices)
    max_psi = models.FloatField(null=True, blank=True)
    top_feature = models.CharField(max_length=200, blank=True)
    psi_warning = models.FloatField()
    psi_alert = models.FloatField()
    computed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["endpoint", "model_version", "start", "end"], name="driftwindow_unique"),
        ]
        indexes = [models.Index(fields=["endpoint", "end"], name="driftwindow_endpoint_end_idx")]

    def __str__(self) -> str:
        return f"{self.endpoint_id} {self.start:%Y-%m-%d %H:%M}: {self.status}"


class FeatureDrift(models.Model):
    """Drift of one feature (or of the prediction) in one window."""

    window = models.ForeignKey(DriftWindow, on_delete=models.CASCADE, related_name="features")
    feature = models.CharField(max_length=200)
    is_prediction = models.BooleanField(default=False)
    numeric = models.BooleanField(default=True)
    psi = models.FloatField()
    js = models.FloatField()
    ks = models.FloatField(null=True, blank=True)
    rows = models.PositiveBigIntegerField(default=0)
    status = models.CharField(max_length=12, choices=DriftWindow.Status.choices)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["window", "is_prediction", "feature"], name="featuredrift_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.feature}: PSI {self.psi:.3f}"
