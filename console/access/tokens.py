"""The console's API tokens: creation (the plaintext is returned once), revocation and bearer
authentication.

A token reads ``icn_<prefix>_<secret>``: ``prefix`` (8 characters, stored and shown) finds
the row, the whole string is compared by its SHA-256 in constant time. Never DRF's
``authtoken``, which stores tokens in plaintext.

Who may create a token: any active person for themselves, or a platform admin for a service
account (automation and inference callers). A token never mints tokens (the API refuses
token-authenticated writes to the token routes). Every token event is audited; revoking a
token, like any change that can alter an access decision, drops cached authorization
decisions at once (``console.access.authz.invalidate_decisions``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.core import signing
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from audit import services as audit
from console.access.authz.cache import invalidate_decisions
from console.access.models import TOKEN_MARK, ApiToken
from console.models import User
from console.permissions import is_platform_admin

PREFIX_LENGTH = 8
# last_used_at is refreshed at most this often per token (a conditional UPDATE), so a busy
# token costs no write per request.
LAST_USED_RESOLUTION = timedelta(seconds=60)
_PREFIX_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


def hash_token(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def _new_prefix() -> str:
    return "".join(secrets.choice(_PREFIX_ALPHABET) for _ in range(PREFIX_LENGTH))


def parse_token(plaintext: str) -> str | None:
    """The prefix of a well-formed token, else None."""
    if not plaintext.startswith(TOKEN_MARK) or len(plaintext) > 200:
        return None
    rest = plaintext[len(TOKEN_MARK):]
    prefix, sep, secret = rest.partition("_")
    if not sep or len(prefix) != PREFIX_LENGTH or len(secret) < 20:
        return None
    if any(ch not in _PREFIX_ALPHABET for ch in prefix):
        return None
    return prefix


def bearer_value(authorization_header: str | None) -> str | None:
    """The credential of an ``Authorization: Bearer <token>`` header, else None."""
    if not authorization_header:
        return None
    scheme, _, value = authorization_header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    value = value.strip()
    return value or None


def _check_scopes(scopes) -> list[str]:
    scopes = sorted(set(scopes or []))
    if not scopes:
        raise ValidationError({"scopes": ["Choose at least one scope."]})
    unknown = [s for s in scopes if s not in ApiToken.SCOPES]
    if unknown:
        raise ValidationError({"scopes": [f"Unknown scope: {', '.join(unknown)}."]})
    return scopes


@transaction.atomic
def token_create(*, actor, user: User, name: str, scopes, expires_at=None) -> tuple[ApiToken, str]:
    """Create a token for ``user`` and return it with its plaintext (shown once, never stored).

    ``actor`` creates for themselves, or, as a platform admin, for a service account.
    """
    if actor is None or not actor.is_authenticated or not actor.is_active:
        raise PermissionDenied("Sign in to create a token.")
    if actor.pk != user.pk and not (is_platform_admin(actor) and user.is_service_account):
        raise PermissionDenied("You may create tokens for yourself, and platform admins for service accounts.")
    if not user.is_active:
        raise ValidationError({"user": ["The account is deactivated."]})
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": ["Give the token a name (what uses it)."]})
    if len(name) > 100:
        raise ValidationError({"name": ["At most 100 characters."]})
    scopes = _check_scopes(scopes)
    if expires_at is not None and expires_at <= timezone.now():
        raise ValidationError({"expires_at": ["The expiry must be in the future."]})
    prefix = _new_prefix()
    while ApiToken.objects.filter(prefix=prefix).exists():  # pragma: no cover - 36**8 prefixes
        prefix = _new_prefix()
    plaintext = f"{TOKEN_MARK}{prefix}_{secrets.token_urlsafe(32)}"
    token = ApiToken.objects.create(
        user=user, name=name, prefix=prefix, secret_hash=hash_token(plaintext), scopes=scopes,
        expires_at=expires_at, created_by=actor,
    )
    audit.record(
        action="token.create", actor=actor, target=token, target_repr=f"{token.display_prefix}… ({name})",
        details={"user": user.username, "user_id": user.pk, "service_account": user.is_service_account,
                 "name": name, "prefix": token.display_prefix, "scopes": scopes,
                 "expires_at": expires_at.isoformat() if expires_at else None},
    )
    return token, plaintext


@transaction.atomic
def token_revoke(*, actor, token: ApiToken) -> ApiToken:
    """Revoke a token now (its holder, or a platform admin). Revoking twice changes nothing."""
    if actor is None or not actor.is_authenticated:
        raise PermissionDenied
    if actor.pk != token.user_id and not is_platform_admin(actor):
        raise PermissionDenied("Only the token's holder or a platform admin may revoke it.")
    token = ApiToken.objects.select_for_update().select_related("user").get(pk=token.pk)
    if token.revoked_at is not None:
        return token
    token.revoked_at = timezone.now()
    token.save(update_fields=["revoked_at"])
    _audit_revoke(actor=actor, token=token, reason="")
    _invalidate()
    return token


def tokens_revoke_all_for(*, actor, user: User, reason: str) -> int:
    """Revoke every live token of ``user`` (deactivation); call inside the caller's
    transaction. Each revocation is audited."""
    now = timezone.now()
    count = 0
    for token in ApiToken.objects.select_for_update().filter(user=user, revoked_at__isnull=True):
        token.revoked_at = now
        token.save(update_fields=["revoked_at"])
        _audit_revoke(actor=actor, token=token, reason=reason)
        count += 1
    if count:
        _invalidate()
    return count


def _audit_revoke(*, actor, token: ApiToken, reason: str) -> None:
    audit.record(
        action="token.revoke", actor=actor, actor_name=None if actor is not None else "system",
        target=token, target_repr=f"{token.display_prefix}… ({token.name})",
        details={"user": token.user.username, "user_id": token.user_id, "prefix": token.display_prefix,
                 "reason": reason},
    )


def _invalidate() -> None:
    invalidate_decisions()


def authenticate_bearer(authorization_header: str | None) -> tuple[User, ApiToken] | None:
    """The user and token behind an ``Authorization: Bearer`` header; None when the header is
    missing or malformed, or the token unknown, expired or revoked, or its user inactive."""
    plaintext = bearer_value(authorization_header)
    if plaintext is None:
        return None
    return authenticate_token(plaintext)


def authenticate_token(plaintext: str) -> tuple[User, ApiToken] | None:
    prefix = parse_token(plaintext)
    if prefix is None:
        return None
    token = ApiToken.objects.select_related("user").filter(prefix=prefix).first()
    if token is None or not hmac.compare_digest(token.secret_hash, hash_token(plaintext)):
        return None
    now = timezone.now()
    if not token.is_usable(now) or not token.user.is_active:
        return None
    touch(token, now)
    return token.user, token


def touch(token: ApiToken, now=None) -> None:
    """Record that ``token`` was used, at most once per LAST_USED_RESOLUTION."""
    now = now or timezone.now()
    if token.last_used_at is not None and now - token.last_used_at < LAST_USED_RESOLUTION:
        return

    ApiToken.objects.filter(
        Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - LAST_USED_RESOLUTION), pk=token.pk
    ).update(last_used_at=now)
    token.last_used_at = now


# --- endpoint credentials ("Try it") ---------------------------------------------------------------
#
# The console calls an endpoint through the gateway on a signed-in user's behalf with a
# credential minted for that one request: the user, the one endpoint and an expiry, signed with
# the console's SECRET_KEY (HMAC-SHA256). Nothing is stored, so nothing can leak from the
# database; it cannot be revoked either, hence the short life. The ext_authz check accepts it
# like an infer-scoped API token of that user (``authenticate_inference``), for that endpoint
# only; the REST API never does (``authenticate_bearer`` reads API tokens only).

ENDPOINT_CREDENTIAL_MARK = "ict_"
ENDPOINT_CREDENTIAL_SECONDS = 60
_CREDENTIAL_SALT = "console.access.tokens.endpoint-credential"


@dataclass(frozen=True)
class EndpointCredential:
    """What a verified endpoint credential says: whose it is, for which endpoint, until when.
    Answers the few questions the ext_authz decision asks of an ``ApiToken``."""

    user_id: int
    endpoint_id: int
    expires_at: datetime
    nonce: str

    @property
    def display_prefix(self) -> str:
        return f"{ENDPOINT_CREDENTIAL_MARK}{self.nonce}"

    def has_scope(self, scope: str) -> bool:
        return scope == "infer"


def _credential_signer() -> signing.Signer:
    return signing.Signer(salt=_CREDENTIAL_SALT, sep=".", algorithm="sha256")


def endpoint_credential_mint(*, user: User, endpoint, seconds: int = ENDPOINT_CREDENTIAL_SECONDS) -> tuple[str, EndpointCredential]:
    """A credential for ``user`` to call ``endpoint`` in the next ``seconds`` (at most 5
    minutes), with what it says. The plaintext goes into one request's Authorization header
    and nowhere else."""
    if user is None or not user.is_authenticated or not user.is_active:
        raise PermissionDenied("Sign in to call an endpoint.")
    seconds = max(1, min(int(seconds), 300))
    expires = int(time.time()) + seconds
    nonce = secrets.token_hex(6)
    payload = json.dumps({"u": user.pk, "e": endpoint.pk, "x": expires, "n": nonce}, separators=(",", ":"))
    encoded = base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")
    plaintext = ENDPOINT_CREDENTIAL_MARK + _credential_signer().sign(encoded)
    return plaintext, EndpointCredential(user.pk, endpoint.pk, datetime.fromtimestamp(expires, tz=UTC), nonce)


def is_endpoint_credential(plaintext: str) -> bool:
    """Whether ``plaintext`` has the form of an endpoint credential (not whether it is valid)."""
    return plaintext.startswith(ENDPOINT_CREDENTIAL_MARK) and len(plaintext) <= 400


def authenticate_endpoint_credential(plaintext: str, now: datetime | None = None) -> tuple[User, EndpointCredential] | None:
    """The user and credential behind a valid, unexpired endpoint credential of an active user;
    None for anything else (a forged or altered signature, another key, expired)."""
    if not is_endpoint_credential(plaintext):
        return None
    try:
        encoded = _credential_signer().unsign(plaintext[len(ENDPOINT_CREDENTIAL_MARK):])
        payload = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
        user_id, endpoint_id, expires, nonce = (int(payload["u"]), int(payload["e"]), int(payload["x"]),
                                                str(payload["n"]))
    except (signing.BadSignature, ValueError, KeyError, TypeError):
        return None
    now = now or timezone.now()
    if expires <= now.timestamp():
        return None
    user = User.objects.filter(pk=user_id, is_active=True).first()
    if user is None:
        return None
    return user, EndpointCredential(user_id, endpoint_id, datetime.fromtimestamp(expires, tz=UTC), nonce)


def authenticate_inference(plaintext: str) -> tuple[User, ApiToken | EndpointCredential] | None:
    """What the ext_authz check authenticates: an API token, or an endpoint credential."""
    if is_endpoint_credential(plaintext):
        return authenticate_endpoint_credential(plaintext)
    return authenticate_token(plaintext)


def credential_allows_endpoint(token, endpoint_id: int) -> bool:
    """An endpoint credential is good for its own endpoint only; an API token for any the
    user may call."""
    return not isinstance(token, EndpointCredential) or token.endpoint_id == endpoint_id
