"""Sign-in through an OpenID Connect provider, its re-check and RP-initiated sign-out.

The protocol is Authlib's (``authlib.integrations.django_client``): discovery, authorization
code with PKCE (S256), ``state`` and ``nonce`` kept in the session and used once, the ID token's
signature checked against the provider's JWKS (fetched again once when a token names a key it
does not hold: key rotation), issuer, audience and expiry checked with a bounded clock skew
(``OIDC_CLOCK_SKEW_SECONDS``). What the console adds: who the person is (``resolve_identity``),
their teams (``sync_groups``), the audit of every refusal, and the re-check at the provider at
least every ``OIDC_RECHECK_SECONDS`` — per browser session (``OIDCRecheckMiddleware``) and for
every identity holding a refresh token (``oidc_recheck_due``, a beat task), so a person the
provider no longer accepts loses their sessions and API tokens. A provider that cannot be
reached is not a refusal: the session stays, the failure is logged and counted.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

import requests
from authlib.integrations.base_client import MismatchingStateError, OAuthError
from authlib.integrations.django_client import OAuth
from django.conf import settings
from django.contrib import auth, messages
from django.contrib.auth.backends import ModelBackend
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from joserfc.errors import JoseError

from audit import services as audit
from console import crypto, metrics
from console.access.identity import (
    Claims,
    IdentityRefused,
    identity_access_ended,
    resolve_identity,
    sync_groups,
)
from console.access.models import ExternalIdentity, IdentitySource

logger = logging.getLogger(__name__)

SOURCE = IdentitySource.OIDC.value
BACKEND = "console.access.oidc.OIDCSessionBackend"
# Session keys.
IDENTITY_KEY = "oidc_identity_id"
ID_TOKEN_KEY = "oidc_id_token"  # noqa: S105 - a session key, not a secret
ACCESS_TOKEN_KEY = "oidc_access_token"  # noqa: S105 - a session key; the value is encrypted
CHECKED_KEY = "oidc_checked_at"
RETRY_UNREACHABLE_SECONDS = 60

OK, REFUSED, UNREACHABLE, SKIPPED = "ok", "refused", "unreachable", "skipped"


class SignInFailed(Exception):
    """A sign-in the console refuses: ``message`` for the sign-in page, ``reason`` for the trail."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.message = message
        self.reason = reason


def enabled() -> bool:
    return bool(settings.OIDC_DISCOVERY_URL and settings.OIDC_CLIENT_ID)


def provider_name() -> str:
    return settings.OIDC_PROVIDER_NAME


_clients: dict[tuple, object] = {}
_clients_lock = threading.Lock()


def client():
    """The Authlib client for the configured provider (one per configuration and process; it
    caches the discovery document and the JWKS)."""
    key = (settings.OIDC_DISCOVERY_URL, settings.OIDC_CLIENT_ID, settings.OIDC_CLIENT_SECRET,
           settings.OIDC_SCOPES, settings.OIDC_TIMEOUT_SECONDS)
    with _clients_lock:
        if key not in _clients:
            _clients[key] = OAuth().register(
                "oidc", client_id=settings.OIDC_CLIENT_ID, client_secret=settings.OIDC_CLIENT_SECRET or None,
                server_metadata_url=settings.OIDC_DISCOVERY_URL,
                client_kwargs={"scope": settings.OIDC_SCOPES, "code_challenge_method": "S256",
                               "default_timeout": settings.OIDC_TIMEOUT_SECONDS},
            )
        return _clients[key]


def callback_url() -> str:
    return settings.CONSOLE_BASE_URL + reverse("oidc-callback")


def login_url() -> str:
    return settings.CONSOLE_BASE_URL + reverse("login")


# --- sign-in ------------------------------------------------------------------------------------------

def begin_sign_in(request):
    """Redirect to the provider's authorization endpoint (state, nonce and PKCE verifier go
    into the session)."""
    try:
        return client().authorize_redirect(request, callback_url())
    except (requests.RequestException, ValueError, KeyError, RuntimeError) as exc:
        logger.warning("OIDC provider unreachable at sign-in: %s", exc)
        raise SignInFailed(f"{provider_name()} cannot be reached. Try again in a moment.",
                           "provider_unreachable") from exc


def _claim(claims: dict, name: str) -> str:
    value = claims.get(name)
    return value.strip() if isinstance(value, str) else ""


def _groups_in(claims: dict) -> list[str] | None:
    value = claims.get(settings.OIDC_GROUPS_CLAIM)
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [g for g in value if isinstance(g, str)]
    return []


def _groups(claims: dict, token: dict) -> list[str]:
    """The groups claim from the ID token, else from userinfo."""
    groups = _groups_in(claims)
    if groups is not None:
        return groups
    info = dict(client().userinfo(token=token))
    if info.get("sub") != claims.get("sub"):
        raise SignInFailed("The identity provider's answers do not agree.", "userinfo_subject_mismatch")
    return _groups_in(info) or []


def _claims_options() -> dict:
    """What the ID token must say: this provider's issuer, this console as audience, an
    expiry. (Authlib checks the audience only when told to; without it a token minted for
    another client of the same provider would pass as long as its ``azp`` named ours.)"""
    issuer = client().load_server_metadata().get("issuer")
    if not issuer:
        raise RuntimeError('the discovery document has no "issuer"')
    return {"iss": {"essential": True, "value": issuer}, "sub": {"essential": True},
            "aud": {"essential": True, "value": settings.OIDC_CLIENT_ID}, "exp": {"essential": True},
            "iat": {"essential": True}}


def _reason_for(exc: Exception) -> str:
    if isinstance(exc, MismatchingStateError):
        return "state_mismatch"
    if isinstance(exc, OAuthError):
        return f"provider_error:{exc.error}"
    if isinstance(exc, JoseError):
        claim = getattr(exc, "claim", None)
        return f"id_token_{exc.error}" + (f":{claim}" if claim else "")
    return "id_token_invalid"


def complete_sign_in(request):
    """Finish the sign-in at the callback: verify everything, then the person, then their
    groups. Returns the user (signed in); raises ``SignInFailed`` (already audited)."""
    try:
        token = client().authorize_access_token(request, leeway=settings.OIDC_CLOCK_SKEW_SECONDS,
                                                claims_options=_claims_options())
        claims = token.get("userinfo")
        if not claims:
            raise SignInFailed("The identity provider sent no ID token.", "no_id_token")
        claims = dict(claims)
        groups = _groups(claims, token)
        identity_claims = Claims(
            source=SOURCE, issuer=_claim(claims, "iss"), subject=_claim(claims, "sub"),
            username=_claim(claims, settings.OIDC_USERNAME_CLAIM), email=_claim(claims, "email"),
            first_name=_claim(claims, "given_name"), last_name=_claim(claims, "family_name"))
        user = resolve_identity(identity_claims)
    except SignInFailed as exc:
        _audit_failed(exc.reason)
        raise
    except IdentityRefused as exc:
        _audit_failed(exc.reason, username=identity_claims.username)
        raise SignInFailed(exc.message, exc.reason) from exc
    except (requests.RequestException, ValueError) as exc:
        logger.warning("OIDC sign-in failed talking to the provider: %s", exc)
        _audit_failed("provider_unreachable")
        raise SignInFailed(f"{provider_name()} cannot be reached. Try again in a moment.",
                           "provider_unreachable") from exc
    except (OAuthError, JoseError, RuntimeError) as exc:
        reason = _reason_for(exc)
        _audit_failed(reason)
        raise SignInFailed(f"Sign-in through {provider_name()} failed ({reason}). Start again.", reason) from exc
    except Exception as exc:
        # Whatever else a provider's odd answer provokes is a refused sign-in, never a 500.
        logger.exception("OIDC sign-in failed unexpectedly")
        _audit_failed("unexpected_error")
        raise SignInFailed(f"Sign-in through {provider_name()} failed. Start again.", "unexpected_error") from exc
    with transaction.atomic():
        identity = ExternalIdentity.objects.get(issuer=identity_claims.issuer, subject=identity_claims.subject)
        refresh = token.get("refresh_token") or ""
        identity.refresh_token_ciphertext = crypto.encrypt(refresh) if refresh else ""
        identity.save(update_fields=["refresh_token_ciphertext"])
        sync_groups(user=user, source=SOURCE, external_groups=groups, via="sign-in",
                    issuer=identity.issuer, subject=identity.subject)
    auth.login(request, user, backend=BACKEND)
    request.session[IDENTITY_KEY] = identity.pk
    request.session[ID_TOKEN_KEY] = token.get("id_token", "")
    access = token.get("access_token") or ""
    request.session[ACCESS_TOKEN_KEY] = crypto.encrypt(access) if access else ""
    request.session[CHECKED_KEY] = time.time()
    return user


def _audit_failed(reason: str, username: str = "") -> None:
    audit.record(action="login.failed", actor_name=(username or f"({SOURCE} sign-in)")[:150],
                 outcome=audit.FAILURE, target_type="user", target_repr=username,
                 details={"source": SOURCE, "reason": reason})


class OIDCSessionBackend(ModelBackend):
    """The backend recorded in the session of a person signed in through the provider: it
    checks no password (``authenticate`` never answers) and keeps the session of an active,
    non-service account even when ``LOCAL_PASSWORD_SIGN_IN=admins`` refuses their password."""

    def authenticate(self, request, **credentials):
        return None

    def user_can_authenticate(self, user) -> bool:
        return super().user_can_authenticate(user) and not getattr(user, "is_service_account", False)


# --- sign-out ---------------------------------------------------------------------------------------

def end_session_url(id_token: str) -> str | None:
    """The provider's end-session URL (RP-initiated logout) when it has one."""
    if not enabled() or not id_token:
        return None
    try:
        metadata = client().load_server_metadata()
        if not metadata.get("end_session_endpoint"):
            return None
        return client().create_logout_url(post_logout_redirect_uri=login_url(), id_token_hint=id_token,
                                          client_id=settings.OIDC_CLIENT_ID)["url"]
    except (requests.RequestException, ValueError, RuntimeError) as exc:
        logger.warning("OIDC provider unreachable at sign-out; the console session ended anyway: %s", exc)
        return None


# --- re-check ---------------------------------------------------------------------------------------

def _refused(identity: ExternalIdentity, reason: str) -> str:
    identity.refresh_token_ciphertext = ""
    identity.last_checked_at = timezone.now()
    identity.save(update_fields=["refresh_token_ciphertext", "last_checked_at"])
    identity_access_ended(user=identity.user, source=SOURCE, via="re-check", reason=reason)
    return REFUSED


def _check_at_provider(identity: ExternalIdentity, access_token: str) -> str:
    """One re-check of ``identity`` (row locked by the caller). Refresh token grant when one is
    stored, else userinfo with the session's access token."""
    refresh = crypto.decrypt(identity.refresh_token_ciphertext) if identity.refresh_token_ciphertext else ""
    if refresh:
        try:
            # No scope parameter: the refresh keeps what was granted (asking again for a scope
            # the provider dropped at sign-in, e.g. offline_access, is refused as invalid_scope).
            token = client().fetch_access_token(grant_type="refresh_token", refresh_token=refresh, scope=None)
        except OAuthError as exc:
            if exc.error in ("invalid_grant", "unauthorized_client"):
                return _refused(identity, f"refresh refused: {exc.error}")
            logger.warning("OIDC refresh for %s failed: %s", identity.user.username, exc)
            return UNREACHABLE
        if token.get("refresh_token"):
            # Kept even if what follows fails: a provider that rotates refresh tokens has
            # already spent the old one.
            identity.refresh_token_ciphertext = crypto.encrypt(token["refresh_token"])
            identity.save(update_fields=["refresh_token_ciphertext"])
        try:
            groups = None
            if token.get("id_token"):
                claims = dict(client().parse_id_token(token, nonce=None, leeway=settings.OIDC_CLOCK_SKEW_SECONDS,
                                                      claims_options=_claims_options()))
                if claims.get("sub") != identity.subject:
                    return _refused(identity, "refreshed ID token names another subject")
                groups = _groups_in(claims)
            if groups is None:
                info = dict(client().userinfo(token=token))
                groups = _groups_in(info) or []
        except (requests.RequestException, ValueError, RuntimeError, JoseError) as exc:
            logger.warning("OIDC re-check of %s: refreshed, but no groups: %s", identity.user.username, exc)
            return UNREACHABLE
    elif access_token:
        try:
            info = dict(client().userinfo(token={"access_token": access_token, "token_type": "Bearer"}))
        except requests.HTTPError as exc:
            if exc.response is not None and exc.response.status_code in (401, 403):
                return _refused(identity, f"userinfo refused ({exc.response.status_code})")
            raise
        if info.get("sub") != identity.subject:
            return _refused(identity, "userinfo names another subject")
        groups = _groups_in(info) or []
    else:
        return SKIPPED
    sync_groups(user=identity.user, source=SOURCE, external_groups=groups, via="re-check",
                issuer=identity.issuer, subject=identity.subject)
    return OK


def recheck_identity(identity_id: int, *, access_token: str = "", fresh_for: float = 0) -> str:
    """Ask the provider whether it still accepts the person: ``ok`` (groups synced),
    ``refused`` (sessions ended, API tokens revoked), ``unreachable`` (nothing changes) or
    ``skipped`` (checked less than ``fresh_for`` seconds ago, or nothing to check with)."""
    try:
        with transaction.atomic():
            # The lock keeps two re-checks of one person from spending the same refresh
            # token (a provider that rotates them treats the second use as theft).
            identity = (ExternalIdentity.objects.select_for_update().select_related("user")
                        .filter(pk=identity_id, source=SOURCE).first())
            if identity is None:
                return REFUSED
            if (fresh_for and identity.last_checked_at
                    and identity.last_checked_at > timezone.now() - timedelta(seconds=fresh_for)):
                return SKIPPED
            outcome = _check_at_provider(identity, access_token)
    except (requests.RequestException, ValueError, RuntimeError, JoseError, crypto.DecryptionError) as exc:
        logger.warning("OIDC re-check of identity %s could not reach a verdict: %s", identity_id, exc)
        outcome = UNREACHABLE
    if outcome != SKIPPED:
        metrics.IDENTITY_RECHECKS.labels(SOURCE, outcome).inc()
    return outcome


def oidc_recheck_due() -> dict[str, int]:
    """Periodic: re-check every OIDC identity holding a refresh token whose last check is old
    enough that the next run would be too late."""
    if not enabled():
        return {}
    interval = settings.OIDC_RECHECK_SECONDS
    due_before = timezone.now() - timedelta(seconds=interval * 2 / 3)
    ids = list(ExternalIdentity.objects.filter(source=SOURCE, user__is_active=True)
               .exclude(refresh_token_ciphertext="")
               .exclude(last_checked_at__gte=due_before).values_list("pk", flat=True))
    counts: dict[str, int] = {}
    for pk in ids:
        outcome = recheck_identity(pk, fresh_for=interval * 2 / 3)
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts


class OIDCRecheckMiddleware:
    """Re-checks a browser session signed in through the provider once its last check is
    ``OIDC_RECHECK_SECONDS`` old; a refused person's request goes on signed out."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        session = getattr(request, "session", None)
        if session is not None and enabled() and session.get(IDENTITY_KEY) is not None:
            checked = session.get(CHECKED_KEY, 0)
            if time.time() - checked >= settings.OIDC_RECHECK_SECONDS and request.user.is_authenticated:
                self._recheck(request, session)
        return self.get_response(request)

    def _recheck(self, request, session) -> None:
        access = session.get(ACCESS_TOKEN_KEY) or ""
        try:
            access = crypto.decrypt(access) if access else ""
        except crypto.DecryptionError:
            access = ""
        outcome = recheck_identity(session[IDENTITY_KEY], access_token=access,
                                   fresh_for=settings.OIDC_RECHECK_SECONDS)
        if outcome == REFUSED:
            auth.logout(request)
            messages.error(request, f"{provider_name()} no longer accepts your sign-in. Sign in again.")
        elif outcome == UNREACHABLE:
            session[CHECKED_KEY] = time.time() - settings.OIDC_RECHECK_SECONDS + RETRY_UNREACHABLE_SECONDS
        else:
            session[CHECKED_KEY] = time.time()
