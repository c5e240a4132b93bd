"""The framework's models: the user (people and service accounts) and the background processes'
heartbeats.

``AUTH_USER_MODEL`` stays ``console.User``: Django cannot move it on a live database. Everything
else about access (grants, API tokens, teams' roles) lives in the access app, which points at it.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractUser
from django.db import models


class User(AbstractUser):
    """A person who signs in to the console, or a service account used by automation.

    Service accounts authenticate only with API tokens: the login form and every password
    backend refuse them (see ``console.auth.ConsoleModelBackend``).
    """

    is_service_account = models.BooleanField(
        default=False,
        help_text="Automation identity: authenticates with API tokens only, never interactively.",
    )
    description = models.CharField(max_length=200, blank=True)

    class Meta(AbstractUser.Meta):
        swappable = "AUTH_USER_MODEL"
        permissions = [
            ("administer_platform", "Administer the platform: users, teams, clusters, runtimes"),
            ("ingest_logs", "Post Kubernetes audit and inference logs to the ingest receivers"),
        ]

    def __str__(self) -> str:
        return self.username

    @property
    def display_name(self) -> str:
        return self.get_full_name() or self.username


class EncryptionCheck(models.Model):
    """One value encrypted with the key in use when the console first started: decrypting it at
    start-up proves the configured keys can read the stored secrets (``console.crypto``)."""

    token = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "encryption check value"

    def __str__(self) -> str:
        return f"encryption check value of {self.created_at:%Y-%m-%d}"


class IdempotencyKey(models.Model):
    """One ``Idempotency-Key`` a user sent with a write to the API, and the answer it got
    (``console/api/idempotency.py``). ``status_code`` is null while the first request is still
    being answered. Kept ``IDEMPOTENCY_KEY_TTL_SECONDS`` (24 h), then pruned."""

    user = models.ForeignKey("console.User", on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    # sha256 of method, path, query string and body: the same key with another request is refused.
    fingerprint = models.CharField(max_length=64)
    method = models.CharField(max_length=7)
    path = models.CharField(max_length=2048)
    status_code = models.PositiveSmallIntegerField(null=True)
    content_type = models.CharField(max_length=255, blank=True)
    body = models.BinaryField(default=bytes)
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "key"], name="console_idempotency_user_key")]

    def __str__(self) -> str:
        return f"{self.method} {self.path} ({self.key})"


class Heartbeat(models.Model):
    """The last sign of life of a Celery worker (a heartbeat task its pool ran) or of beat (a
    task it scheduled), by host: ``/readyz``, the admin overview and ``/metrics`` report its age
    (``console/heartbeats.py``). Written at most every few seconds per process; never audited
    (it is the system's own bookkeeping, not a change anyone made)."""

    class Component(models.TextChoices):
        WORKER = "worker", "Celery worker"
        BEAT = "beat", "Celery beat"

    component = models.CharField(max_length=16, choices=Component.choices)
    name = models.CharField(max_length=200, help_text="The worker's node name, or beat's host and process id.")
    last_seen_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["component", "name"], name="heartbeat_once_per_process")]
        ordering = ["component", "-last_seen_at"]

    def __str__(self) -> str:
        return f"{self.component} {self.name} at {self.last_seen_at:%H:%M:%S}"
