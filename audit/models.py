"""The append-only audit trail."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from audit import digests


class AppendOnlyError(Exception):
    """Raised when code tries to change or remove an audit event."""


class AuditEventQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AppendOnlyError("audit events are append-only: update refused")

    def delete(self):
        raise AppendOnlyError("audit events are append-only: delete refused (retention uses audit.db.bypass)")

    _raw_delete = delete


class AuditEvent(models.Model):
    """One thing that happened: a console action, a Kubernetes API call, an authorization
    decision or an inference request.

    Actor and project are plain ids plus copied names, never foreign keys: deleting a user or
    a project leaves the trail untouched. Rows are never updated or deleted (the model, the
    queryset and database triggers all refuse; see ``audit.db``). ``digest`` is the SHA-256
    of the event's canonical form (``audit.digests``), recomputed by verification.
    """

    class Source(models.TextChoices):
        CONSOLE = "console", "Console"
        KUBERNETES = "kubernetes", "Kubernetes API"
        AUTHZ = "authz", "Inference authorization"
        INFERENCE = "inference", "Inference I/O"

    class Outcome(models.TextChoices):
        SUCCESS = "success", "Success"
        FAILURE = "failure", "Failure"
        DENIED = "denied", "Denied"
        ERROR = "error", "Error"

    occurred_at = models.DateTimeField(db_index=True)
    received_at = models.DateTimeField(default=timezone.now)
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.CONSOLE)
    actor_id = models.CharField(max_length=64, blank=True)
    actor_name = models.CharField(max_length=256, blank=True)
    action = models.CharField(max_length=64, db_index=True)
    target_type = models.CharField(max_length=64, blank=True)
    target_id = models.CharField(max_length=255, blank=True)
    target_repr = models.CharField(max_length=512, blank=True)
    project_id = models.BigIntegerField(null=True, blank=True)
    project_name = models.CharField(max_length=128, blank=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.SUCCESS)
    source_ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    details = models.JSONField(default=dict, blank=True)
    external_id = models.CharField(
        max_length=200, blank=True, help_text="Id in the source system, for de-duplicating re-deliveries."
    )
    digest = models.CharField(max_length=64, editable=False)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-occurred_at", "-id"]
        indexes = [
            models.Index(fields=["target_type", "target_id"], name="audit_target_idx"),
            models.Index(fields=["project_id", "occurred_at"], name="audit_project_time_idx"),
            models.Index(fields=["actor_id", "occurred_at"], name="audit_actor_time_idx"),
            models.Index(fields=["source", "occurred_at"], name="audit_source_time_idx"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["source", "external_id"],
                condition=~models.Q(external_id=""),
                name="audit_unique_external_id",
            )
        ]

    def __str__(self) -> str:
        return f"{self.occurred_at:%Y-%m-%d %H:%M:%S} {self.actor_name or '-'} {self.action} {self.target_repr}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise AppendOnlyError("audit events are append-only: update refused")
        self.digest = self.compute_digest()
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError("audit events are append-only: delete refused")

    def compute_digest(self) -> str:
        return digests.event_digest(self)


class AuditSeal(models.Model):
    """Tamper evidence for a group of audit events (``audit.sealing``).

    A seal covers explicit id ranges (``ranges``), not "everything up to id N": transactions
    commit out of id order, so an event with a lower id may appear after a higher one was
    sealed; a later seal then covers it. ``events_digest`` is the SHA-256 over the covered
    events' ``id:digest`` lines in id order, ``fingerprints`` the first 16 hex digits of each
    event's digest (so verification can name the exact event that changed), ``previous_hash``
    chains the seals, and ``signature`` is the HMAC of ``seal_hash`` with the key ``key_id``,
    a key kept outside the database. ``floor``: every id at or below it is either sealed or a
    permanent gap. Seals are never updated or deleted, not even by retention.
    """

    sequence = models.PositiveBigIntegerField(unique=True)
    created_at = models.DateTimeField()
    key_id = models.CharField(max_length=64)
    ranges = models.JSONField(help_text="Covered event ids as inclusive [first, last] pairs.")
    first_event_id = models.BigIntegerField(db_index=True)
    last_event_id = models.BigIntegerField(db_index=True)
    event_count = models.PositiveIntegerField()
    min_occurred_at = models.DateTimeField()
    max_occurred_at = models.DateTimeField()
    events_digest = models.CharField(max_length=64)
    fingerprints = models.TextField()
    floor = models.BigIntegerField()
    previous_hash = models.CharField(max_length=64, blank=True)
    seal_hash = models.CharField(max_length=64)
    signature = models.CharField(max_length=64)

    class Meta:
        ordering = ["sequence"]

    def __str__(self) -> str:
        return f"seal {self.sequence} ({self.event_count} events)"


class AuditSealArchive(models.Model):
    """A sealed group of events written to the Iceberg archive (one snapshot per seal), and
    when retention pruned them from the database. Verification reads a pruned seal's events
    back from the archive."""

    seal = models.OneToOneField(AuditSeal, on_delete=models.PROTECT, related_name="archive")
    table = models.CharField(max_length=200)
    snapshot_id = models.BigIntegerField()
    rows = models.PositiveIntegerField()
    archived_at = models.DateTimeField()
    pruned_at = models.DateTimeField(null=True, blank=True, db_index=True)

    def __str__(self) -> str:
        return f"archive of seal {self.seal_id}"


class IngestBatch(models.Model):
    """One delivery to an ingest receiver, stored before the receiver answers 202 so nothing
    accepted is ever lost. A task parses it; a failed batch keeps its error and is retried
    (by the sweep, or by hand). The raw body is cleared once processed unless the project
    keeps payload bodies."""

    class Kind(models.TextChoices):
        KUBERNETES = "kubernetes", "Kubernetes audit"
        KSERVE = "kserve", "KServe payload logger"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DONE = "done", "Processed"
        FAILED = "failed", "Failed"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    received_at = models.DateTimeField(default=timezone.now, db_index=True)
    project_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    project_name = models.CharField(max_length=128, blank=True)
    cluster_name = models.CharField(max_length=128, blank=True)
    submitted_by_id = models.CharField(max_length=64, blank=True)
    submitted_by_name = models.CharField(max_length=256, blank=True)
    source_ip = models.GenericIPAddressField(null=True, blank=True)
    content_type = models.CharField(max_length=200, blank=True)
    headers = models.JSONField(default=dict, blank=True, help_text="CloudEvents attributes of a binary-mode event.")
    body = models.BinaryField(null=True, blank=True)
    body_size = models.PositiveBigIntegerField(default=0)
    body_sha256 = models.CharField(max_length=64)
    item_count = models.PositiveIntegerField(default=0)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    created_count = models.PositiveIntegerField(default=0)
    duplicate_count = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-received_at", "-id"]
        indexes = [models.Index(fields=["status", "received_at"], name="audit_batch_status_idx")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} batch {self.pk}"


class InferenceEventPart(models.Model):
    """One KServe payload-logger event (a request or a response) waiting for its partner, and
    afterwards the de-duplication record of it: re-delivered events with the same
    (project, ce-id, ce-type) are ignored. The body is dropped once the pair is dispatched."""

    class Type(models.TextChoices):
        REQUEST = "request", "Request"
        RESPONSE = "response", "Response"

    project_id = models.BigIntegerField()
    event_id = models.CharField(max_length=200)
    event_type = models.CharField(max_length=10, choices=Type.choices)
    time = models.DateTimeField()
    received_at = models.DateTimeField(default=timezone.now)
    inference_service = models.CharField(max_length=253, blank=True)
    namespace = models.CharField(max_length=63, blank=True)
    component = models.CharField(max_length=32, blank=True)
    content_type = models.CharField(max_length=200, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    annotations = models.JSONField(default=dict, blank=True)
    body = models.BinaryField(null=True, blank=True)
    body_size = models.PositiveBigIntegerField(default=0)
    batch = models.ForeignKey(IngestBatch, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    dispatched_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project_id", "event_id", "event_type"], name="audit_part_unique_event")
        ]
        indexes = [
            models.Index(fields=["dispatched_at", "event_type", "received_at"], name="audit_part_pending_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_id}"


class IngestBufferEntry(models.Model):
    """One payload-logger delivery as the receiver accepted it: the durable buffer between the
    receiver and the ingest workers (``audit.buffer``). The receiver writes the row in one
    statement and answers 202 once it is committed; a worker takes rows in id order, hundreds
    per transaction, processes them and deletes them in the same transaction, so a crash on
    either side leaves the row to be taken again. Processing is idempotent by CloudEvents id,
    so taking a row twice adds nothing."""

    project_id = models.BigIntegerField()
    received_at = models.DateTimeField(default=timezone.now)
    content_type = models.CharField(max_length=200, blank=True)
    headers = models.JSONField(default=dict, blank=True, help_text="CloudEvents attributes of a binary-mode event.")
    body = models.BinaryField()

    def __str__(self) -> str:
        return f"buffered delivery {self.pk}"


class IngestRefusal(models.Model):
    """Payload-logger deliveries the receiver refused with 503 because the buffer was full,
    counted per project, InferenceService and hour. KServe's agent never retries, so each
    refusal is an inference call missing from monitoring and the I/O audit."""

    project_id = models.BigIntegerField()
    inference_service = models.CharField(max_length=253, blank=True)
    hour = models.DateTimeField()
    count = models.PositiveBigIntegerField(default=0)
    last_refused_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project_id", "inference_service", "hour"], name="audit_refusal_unique_hour")
        ]
        indexes = [models.Index(fields=["hour"], name="audit_refusal_hour_idx")]

    def __str__(self) -> str:
        return f"{self.count} refused for {self.inference_service} at {self.hour:%Y-%m-%d %H:00}"


class VerificationRun(models.Model):
    """A verification started from the integrity page and run by a worker (large trails): its
    progress while it runs and its summary afterwards. The run itself is audited as
    ``audit.verify`` when it ends, like every verification."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    actor_id = models.CharField(max_length=64, blank=True)
    actor_name = models.CharField(max_length=256, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    seals_total = models.PositiveIntegerField(default=0)
    seals_done = models.PositiveIntegerField(default=0)
    summary = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"verification {self.pk} ({self.status})"

    @property
    def percent(self) -> int:
        return int(100 * self.seals_done / self.seals_total) if self.seals_total else 0
