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
    target_id = models.CharField(max_length=64, blank=True)
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

    def canonical(self) -> dict:
        return digests.canonical_event(self)

    def compute_digest(self) -> str:
        return digests.event_digest(self)
