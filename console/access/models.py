"""Access control's records: grants (who holds which role on which project, model or
endpoint), API tokens and the access version that invalidates cached decisions.

The tables were created by the ``console`` app in round 1 as ``console_grant``,
``console_apitoken`` and ``console_accessversion``; migration ``access.0002`` renames them
in place (data, ids and permissions kept) or creates them on a new database.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone

TOKEN_MARK = "icn_"  # noqa: S105 - the marker API tokens start with, not a secret


class RevocableExpiring:
    """For rows that end when revoked or at ``expires_at`` (grants, API tokens)."""

    revoked_at: object  # fields of the model using it
    expires_at: object

    def state(self, now=None) -> str:
        """"revoked", "expired" or "active" at ``now`` (default: the present)."""
        now = now or timezone.now()
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"


class Grant(RevocableExpiring, models.Model):
    """A role given to one principal (a user or a group) on one object (a project, a registered
    model or an endpoint): the record the access pages show and the audit trail refers to.

    Enforcement reads guardian's direct-FK permission tables, which ``console.access.grants`` keeps
    in step with the live grants in the same transaction (a permission row's ``expires_at``
    is the latest expiry among the live grants that give it). Grants are never deleted:
    revoking sets ``revoked_at``, expiry is a timestamp, and both end access at once.
    """

    class Role(models.TextChoices):
        VIEWER = "viewer", "Viewer"
        DEPLOYER = "deployer", "Deployer"
        OWNER = "owner", "Owner"
        CALLER = "caller", "Caller"

    user = models.ForeignKey(
        "console.User", null=True, blank=True, on_delete=models.CASCADE, related_name="grants"
    )
    group = models.ForeignKey(
        "auth.Group", null=True, blank=True, on_delete=models.CASCADE, related_name="grants"
    )
    role = models.CharField(max_length=16, choices=Role.choices)
    project = models.ForeignKey(
        "endpoints.Project", null=True, blank=True, on_delete=models.CASCADE, related_name="grants"
    )
    registered_model = models.ForeignKey(
        "endpoints.RegisteredModel", null=True, blank=True, on_delete=models.CASCADE, related_name="grants"
    )
    endpoint = models.ForeignKey(
        "endpoints.Endpoint", null=True, blank=True, on_delete=models.CASCADE, related_name="grants"
    )
    reason = models.CharField(max_length=300, blank=True)
    granted_by = models.ForeignKey(
        "console.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    granted_by_name = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True, db_index=True)
    revoked_at = models.DateTimeField(null=True, blank=True, db_index=True)
    revoked_by = models.ForeignKey(
        "console.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    revoked_by_name = models.CharField(max_length=150, blank=True)
    revoke_reason = models.CharField(max_length=300, blank=True)
    # Set by the cleanup task once it has removed the expired permission rows and audited
    # the expiry (access itself already ended at ``expires_at``).
    expiry_recorded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                name="grant_exactly_one_principal",
                condition=(
                    models.Q(user__isnull=False, group__isnull=True)
                    | models.Q(user__isnull=True, group__isnull=False)
                ),
            ),
            models.CheckConstraint(
                name="grant_exactly_one_object",
                condition=(
                    models.Q(project__isnull=False, registered_model__isnull=True, endpoint__isnull=True)
                    | models.Q(project__isnull=True, registered_model__isnull=False, endpoint__isnull=True)
                    | models.Q(project__isnull=True, registered_model__isnull=True, endpoint__isnull=False)
                ),
            ),
        ]
        indexes = [
            models.Index(fields=["user", "revoked_at"], name="grant_user_live_idx"),
            models.Index(fields=["group", "revoked_at"], name="grant_group_live_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.get_role_display()} on {self.object_label} to {self.principal_label}"

    @property
    def principal(self):
        return self.user if self.user_id else self.group

    @property
    def principal_label(self) -> str:
        if self.user_id:
            return f"user {self.user.username}"
        return f"team {self.group.name}"

    @property
    def target(self):
        """The project, registered model or endpoint the grant is on."""
        return self.project or self.registered_model or self.endpoint

    @property
    def object_kind(self) -> str:
        if self.project_id:
            return "project"
        if self.registered_model_id:
            return "model"
        return "endpoint"

    @property
    def object_label(self) -> str:
        target = self.target
        if self.endpoint_id:
            return f"endpoint {target.project.name}/{target.name}"
        if self.registered_model_id:
            return f"model {target.project.name}/{target.name}"
        return f"project {target.name}"


class ApiToken(RevocableExpiring, models.Model):
    """A bearer token for the API, the ingest receivers or inference calls.

    The plaintext is shown once, at creation; only a SHA-256 of it is stored (the secret is
    256 random bits, so a fast hash is enough: there is nothing to brute-force). ``prefix`` is
    the visible, indexed part used to find the row before the constant-time comparison.
    ``scopes`` limits what the token can do on top of its user's own permissions.
    """

    SCOPES = ("read", "deploy", "infer", "ingest")
    SCOPE_CHOICES = [
        ("read", "read — GET the API"),
        ("deploy", "deploy — change endpoints and the model registry"),
        ("infer", "infer — call endpoints you may call"),
        ("ingest", "ingest — post logs to the ingest receivers"),
    ]

    user = models.ForeignKey("console.User", on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True)
    secret_hash = models.CharField(max_length=64)
    scopes = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        "console.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.display_prefix}…)"

    @property
    def display_prefix(self) -> str:
        return f"{TOKEN_MARK}{self.prefix}"

    def has_scope(self, scope: str) -> bool:
        return scope in (self.scopes or [])

    def is_usable(self, now=None) -> bool:
        return self.state(now) == "active"


class AccessVersion(models.Model):
    """A single counter bumped in the same transaction as every change that can alter an
    access decision (grants, tokens, users, team membership). Cached authorization decisions
    carry the version they were computed under, so every web process drops them at once.
    Used when the cache is per-process (LocMem); with a shared cache (Redis) the counter lives
    in the cache as well."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    version = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"access version {self.version}"


class IdentitySource(models.TextChoices):
    """Where an external identity comes from."""

    OIDC = "oidc", "OpenID Connect"
    LDAP = "ldap", "LDAP / Active Directory"
    HEADER = "header", "Trusted gateway header"


class ExternalIdentity(models.Model):
    """A person's account at an identity provider, linked to one console user.

    Linked by (issuer, subject) — the OIDC issuer and ``sub``, the LDAP server and the entry's
    DN, or the gateway and the header's user name — never by user name alone, so a renamed or
    re-created account at the provider cannot take over someone else's console account.
    """

    user = models.ForeignKey("console.User", on_delete=models.CASCADE, related_name="external_identities")
    source = models.CharField(max_length=16, choices=IdentitySource.choices)
    issuer = models.CharField(max_length=300)
    subject = models.CharField(max_length=300)
    # The groups the provider reported at the last sign-in, re-check or sync (for the user's page).
    groups = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    linked_by_name = models.CharField(max_length=150, blank=True)
    last_sign_in_at = models.DateTimeField(null=True, blank=True)
    last_checked_at = models.DateTimeField(null=True, blank=True)
    # OIDC: the newest refresh token, encrypted (console.crypto), for the periodic re-check at
    # the provider; empty when the provider issued none or refused it.
    refresh_token_ciphertext = models.TextField(blank=True, default="")

    class Meta:
        verbose_name_plural = "external identities"
        constraints = [
            models.UniqueConstraint(fields=["issuer", "subject"], name="access_identity_issuer_subject"),
        ]

    def __str__(self) -> str:
        return f"{self.get_source_display()} {self.subject} at {self.issuer}"


class GroupMapping(models.Model):
    """An identity-provider group that puts its members in a console team or global role.

    ``external_group`` is compared exactly as the provider sends it (an OIDC ``groups`` value,
    an LDAP group DN — compared case-insensitively, as directories do — or a gateway header
    value)."""

    source = models.CharField(max_length=16, choices=IdentitySource.choices)
    external_group = models.CharField(max_length=300)
    group = models.ForeignKey("auth.Group", on_delete=models.CASCADE, related_name="identity_mappings",
                              help_text="The console team or global role members of the group join.")
    created_at = models.DateTimeField(auto_now_add=True)
    created_by_name = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ["source", "external_group", "group__name"]
        constraints = [
            models.UniqueConstraint(fields=["source", "external_group", "group"], name="access_group_mapping_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.get_source_display()} group {self.external_group} → {self.group.name}"


class SyncedMembership(models.Model):
    """A team or global-role membership given by a group mapping: the sync removes only the
    memberships it gave, never one an admin gave by hand."""

    user = models.ForeignKey("console.User", on_delete=models.CASCADE, related_name="synced_memberships")
    group = models.ForeignKey("auth.Group", on_delete=models.CASCADE, related_name="synced_memberships")
    source = models.CharField(max_length=16, choices=IdentitySource.choices)
    external_groups = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "group", "source"], name="access_synced_membership_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.group} via {self.source}"


class StagedAllow(models.Model):
    """One allowed inference check, committed before the check was answered (so an allow is
    never lost to a crash of the process that answered it). Drained into ``infer.allow`` audit
    events (one per principal, endpoint, minute and drain pass, with the count) and deleted in
    the same transaction (``console/access/authz/allows.py``). Plain ids and names, no foreign
    keys: the row must outlive a deleted user or endpoint, as the event will."""

    id = models.BigAutoField(primary_key=True)
    decided_at = models.DateTimeField()
    user_id = models.IntegerField()
    principal = models.CharField(max_length=150)
    endpoint_id = models.IntegerField()
    endpoint_repr = models.CharField(max_length=512)
    project_id = models.IntegerField(null=True)
    project_name = models.CharField(max_length=200)
    token_prefix = models.CharField(max_length=32)
    method = models.CharField(max_length=16)

    class Meta:
        default_permissions = ()

    def __str__(self) -> str:
        return f"allow {self.principal} → {self.endpoint_repr} at {self.decided_at:%Y-%m-%d %H:%M:%S}"


class AllowJournalProgress(models.Model):
    """How far one authorizer process's allow journal (``console/access/authz/journal.py``) has
    been shipped into ``StagedAllow``: the byte offset moves in the same transaction as the rows
    it covers, so a journal taken over after its process died is shipped from exactly there —
    no allow lost, none staged twice. The row goes when the journal file goes."""

    name = models.CharField(max_length=200, unique=True)
    shipped_bytes = models.BigIntegerField(default=0)
    shipped_rows = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField()

    class Meta:
        default_permissions = ()

    def __str__(self) -> str:
        return f"journal {self.name}: {self.shipped_rows} allows shipped ({self.shipped_bytes} bytes)"
