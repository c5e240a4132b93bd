"""Sign-in by a trusted header from a gateway (oauth2-proxy, Apache Knox) — opt-in.

The gateway authenticates people and passes the user name (and optionally e-mail and groups)
in request headers. Anyone can send such a header, so it is believed only when the TCP peer
— ``REMOTE_ADDR``, never ``X-Forwarded-For``, which the client writes — is on
``TRUSTED_HEADER_PROXIES``. From any other address a request carrying the user header is
refused (403) and audited as ``identity.header_refused``; the audit is written once per peer
address per minute (through the cache), so a flood cannot fill the trail.

From an allow-listed peer the person goes through the identity core like every sign-in mode:
``resolve_identity`` (issuer ``TRUSTED_HEADER_ISSUER``, subject the header's user) and
``sync_groups`` with the groups header. The console session is bound to that header user:
when the header names someone else, or stops naming anyone, the old session ends; a gateway
session used from a peer that is not the gateway ends too.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import time

from django.conf import settings
from django.contrib.auth import get_user_model, login, logout
from django.core.cache import cache
from django.http import HttpResponseForbidden

from audit import services as audit
from console.access import identity
from console.access.models import IdentitySource

SOURCE = IdentitySource.HEADER.value
BACKEND = "console.access.gateway.TrustedHeaderBackend"
# The session remembers whom the gateway vouched for and which groups it sent.
SESSION_IDENTITY = "_gateway_identity"
SESSION_GROUPS = "_gateway_groups"
REFUSAL_AUDIT_WINDOW = 60  # seconds: at most one refusal event per peer address in each


def _meta_key(header: str) -> str:
    return "HTTP_" + header.upper().replace("-", "_")


@functools.lru_cache(maxsize=8)
def _networks(proxies: tuple[str, ...]):
    return tuple(ipaddress.ip_network(p, strict=False) for p in proxies)


def peer_is_trusted(peer: str) -> bool:
    """Whether the TCP peer address is one of TRUSTED_HEADER_PROXIES (addresses or networks)."""
    try:
        address = ipaddress.ip_address((peer or "").strip())
    except ValueError:
        return False
    if address.version == 6 and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in _networks(tuple(settings.TRUSTED_HEADER_PROXIES)))


def _header(request, name: str) -> str | None:
    if not name:
        return None
    value = request.META.get(_meta_key(name))
    return None if value is None else value.strip()


def _groups(request) -> list[str]:
    value = _header(request, settings.TRUSTED_HEADER_GROUPS) or ""
    return sorted({g.strip() for g in value.split(",") if g.strip()})


def _audit_refused(request, peer: str, header_user: str) -> None:
    window = int(time.time() // REFUSAL_AUDIT_WINDOW)
    # cache.add is atomic (Redis, LocMem): the first refusal from this peer in the window wins.
    # Without Redis the cache is per process, so each web process writes its own one a minute.
    if not cache.add(f"gateway-refused:{peer}:{window}", 1, REFUSAL_AUDIT_WINDOW * 2):
        return
    audit.record(
        action="identity.header_refused", actor_name=f"untrusted peer {peer}"[:150], outcome=audit.DENIED,
        target_type="user", target_repr=header_user[:150], source_ip=peer or None,
        details={"peer": peer, "header": settings.TRUSTED_HEADER_USER, "user": header_user[:150],
                 "path": request.path[:300], "audited_once_per_seconds": REFUSAL_AUDIT_WINDOW},
    )


def _forbidden(message: str) -> HttpResponseForbidden:
    return HttpResponseForbidden(message + "\n", content_type="text/plain; charset=utf-8")


class TrustedHeaderMiddleware:
    """Signs people in from the gateway's header (after Django's authentication middleware).
    Does nothing unless TRUSTED_HEADER_ENABLED is on."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if settings.TRUSTED_HEADER_ENABLED:
            refused = self._apply(request)
            if refused is not None:
                return refused
        return self.get_response(request)

    def _apply(self, request):
        peer = request.META.get("REMOTE_ADDR", "")
        header_user = _header(request, settings.TRUSTED_HEADER_USER)
        bound = request.session.get(SESSION_IDENTITY)
        if not peer_is_trusted(peer):
            if header_user is not None:
                _audit_refused(request, peer, header_user)
                return _forbidden(
                    f"Refused: the {settings.TRUSTED_HEADER_USER} header is accepted only from the console's "
                    f"gateway, and this request came from {peer or 'an unknown address'}. "
                    "Sign in through the gateway."
                )
            if bound is not None:
                # A gateway session presented around the gateway: it ends here.
                logout(request)
            return None
        if not header_user:
            if bound is not None:
                logout(request)  # the gateway no longer vouches for anyone
            return None
        issuer = settings.TRUSTED_HEADER_ISSUER
        key = f"{issuer}\n{header_user}"
        groups = _groups(request)
        digest = hashlib.sha256("\n".join(groups).encode()).hexdigest()
        if bound == key and request.user.is_authenticated:
            if request.session.get(SESSION_GROUPS) != digest:
                identity.sync_groups(user=request.user, source=SOURCE, external_groups=groups, via="re-check",
                                     issuer=issuer, subject=header_user)
                request.session[SESSION_GROUPS] = digest
            return None
        if request.user.is_authenticated:
            logout(request)  # the header names someone else: the old session ends
        claims = identity.Claims(source=SOURCE, issuer=issuer, subject=header_user, username=header_user,
                                 email=_header(request, settings.TRUSTED_HEADER_EMAIL) or "")
        try:
            user = identity.resolve_identity(claims)
        except identity.IdentityRefused as exc:
            return _forbidden(f"Refused: {exc.message}")
        identity.sync_groups(user=user, source=SOURCE, external_groups=groups, via="sign-in",
                             issuer=issuer, subject=header_user)
        login(request, user, backend=BACKEND)
        request.session[SESSION_IDENTITY] = key
        request.session[SESSION_GROUPS] = digest
        return None


class TrustedHeaderBackend:
    """Answers for sessions the gateway header opened (installed when TRUSTED_HEADER_ENABLED is
    on; turning the mode off ends them). It authenticates no credentials."""

    def authenticate(self, request, **credentials):
        return None

    def get_user(self, user_id):
        user = get_user_model().objects.filter(pk=user_id).first()
        if user is None or not user.is_active or user.is_service_account:
            return None
        return user
