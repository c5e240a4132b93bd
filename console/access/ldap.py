"""Sign-in against an LDAP directory or Active Directory, and the periodic pass that keeps
LDAP-linked people in step with the directory.

django-auth-ldap binds, searches and reads group membership; it never creates users or
touches groups here. After a successful bind everything goes through the identity core
(``console.access.identity``), like every other sign-in mode:

- the person is the entry's DN (``subject``, in django-auth-ldap's normal form: lower case) at
  ``LDAP_ISSUER`` (the server URI unless set) — ``resolve_identity`` finds or creates the user;
- their groups are the DNs of the directory groups they belong to — ``sync_groups`` mirrors the
  mapped ones into teams and global roles.

``ldap_sync`` (Celery beat every ``LDAP_SYNC_SECONDS``, and ``manage.py ldap_sync``) reads every
LDAP-linked person again with the service account: a removed or locked entry ends the person's
sessions and API tokens; otherwise their mapped memberships follow the directory's groups.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import ldap
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django_auth_ldap.backend import LDAPBackend
from django_auth_ldap.config import (
    GroupOfNamesType,
    GroupOfUniqueNamesType,
    LDAPSearch,
    LDAPSettings,
    NestedActiveDirectoryGroupType,
    NestedGroupOfNamesType,
    PosixGroupType,
)

from console.access import identity
from console.access.models import ApiToken, ExternalIdentity, IdentitySource
from console.access.services import live_sessions_of

logger = logging.getLogger(__name__)

SOURCE = IdentitySource.LDAP.value

# Group types by LDAP_GROUP_TYPE, with the object class a group search looks for.
_GROUP_TYPES = {
    "groupofnames": (GroupOfNamesType, "(objectClass=groupOfNames)"),
    "groupofuniquenames": (GroupOfUniqueNamesType, "(objectClass=groupOfUniqueNames)"),
    "posixgroup": (PosixGroupType, "(objectClass=posixGroup)"),
    "nestedgroupofnames": (NestedGroupOfNamesType, "(objectClass=groupOfNames)"),
    # Nested groups through the member attribute (AD's own group objects).
    "activedirectory": (NestedActiveDirectoryGroupType, "(objectClass=group)"),
}

# How a directory says an account may not sign in: OpenLDAP's password policy overlay
# (ppolicy) sets pwdAccountLockedTime on a locked account; Active Directory sets the
# ACCOUNTDISABLE bit of userAccountControl on a disabled one.
PPOLICY_LOCKED = "pwdAccountLockedTime"
AD_CONTROL = "userAccountControl"
AD_ACCOUNT_DISABLED = 0x2

# Errors that mean "the directory cannot be asked now", not "the directory says no".
UNREACHABLE = (ldap.SERVER_DOWN, ldap.TIMEOUT, ldap.CONNECT_ERROR, ldap.UNAVAILABLE, ldap.BUSY)


def enabled() -> bool:
    return bool(settings.LDAP_SERVER_URI)


def _user_attributes() -> list[str]:
    # "*" is every user attribute; ppolicy's lock is operational and must be asked for by name.
    return ["*", PPOLICY_LOCKED]


def directory_settings() -> dict:
    """django-auth-ldap's configuration, built from the console's ``LDAP_*`` settings."""
    timeout = settings.LDAP_TIMEOUT_SECONDS
    options = {ldap.OPT_NETWORK_TIMEOUT: timeout, ldap.OPT_TIMEOUT: timeout,
               # AD answers searches at the domain root with referrals the bind cannot follow.
               ldap.OPT_REFERRALS: 0}
    if settings.LDAP_CA_FILE:
        options[ldap.OPT_X_TLS_CACERTFILE] = settings.LDAP_CA_FILE
        options[ldap.OPT_X_TLS_REQUIRE_CERT] = ldap.OPT_X_TLS_DEMAND
        # Last: a new TLS context makes the options above apply to this connection.
        options[ldap.OPT_X_TLS_NEWCTX] = 0
    group_type, group_filter = _GROUP_TYPES[settings.LDAP_GROUP_TYPE]
    template = settings.LDAP_USER_DN_TEMPLATE or None
    return {
        "SERVER_URI": settings.LDAP_SERVER_URI,
        "BIND_DN": settings.LDAP_BIND_DN,
        "BIND_PASSWORD": settings.LDAP_BIND_PASSWORD,
        "START_TLS": settings.LDAP_START_TLS,
        "CONNECTION_OPTIONS": options,
        "USER_DN_TEMPLATE": template,
        "USER_SEARCH": None if template else LDAPSearch(
            settings.LDAP_USER_SEARCH_BASE, ldap.SCOPE_SUBTREE, settings.LDAP_USER_SEARCH_FILTER,
            attrlist=_user_attributes()),
        "USER_ATTRLIST": _user_attributes(),
        "GROUP_SEARCH": LDAPSearch(settings.LDAP_GROUP_SEARCH_BASE, ldap.SCOPE_SUBTREE,
                                   settings.LDAP_GROUP_SEARCH_FILTER or group_filter),
        "GROUP_TYPE": group_type(),
        # The identity core creates and updates users and memberships, never django-auth-ldap.
        "ALWAYS_UPDATE_USER": False,
        "MIRROR_GROUPS": None,
        "MIRROR_GROUPS_EXCEPT": None,
        "FIND_GROUP_PERMS": False,
        "AUTHORIZE_ALL_USERS": False,
        "CACHE_TIMEOUT": 0,
    }


def _first(attrs, name: str) -> str:
    if not name or not attrs:
        return ""
    values = attrs.get(name) or []
    return str(values[0]).strip() if values else ""


def _claims(login_name: str, dn: str, attrs) -> identity.Claims:
    username = _first(attrs, settings.LDAP_USERNAME_ATTR) or login_name.strip().lower()
    return identity.Claims(
        source=SOURCE, issuer=settings.LDAP_ISSUER, subject=dn.lower(), username=username,
        email=_first(attrs, settings.LDAP_EMAIL_ATTR), first_name=_first(attrs, settings.LDAP_FIRST_NAME_ATTR),
        last_name=_first(attrs, settings.LDAP_LAST_NAME_ATTR),
    )


def lock_reason(attrs) -> str:
    """Why the directory says this entry may not sign in ("" when it may)."""
    if attrs and attrs.get(PPOLICY_LOCKED):
        return "locked by the directory (password policy)"
    control = _first(attrs, AD_CONTROL)
    if control.lstrip("-").isdigit() and int(control) & AD_ACCOUNT_DISABLED:
        return "disabled in Active Directory"
    return ""


class LdapBackend(LDAPBackend):
    """Password sign-in checked by a bind to the directory (installed when LDAP_SERVER_URI is set).

    A refusal of the identity core (a user name of an unlinked local account, a deactivated
    account) stops the sign-in with its message, which the sign-in page shows; the core has
    audited it. A wrong password or an account the directory locks is a bind failure: the page
    shows its usual message and django-axes counts it."""

    @property
    def settings(self):
        if self._settings is None:
            # Not read from AUTH_LDAP_* settings: the console's LDAP_* settings are the source.
            self._settings = LDAPSettings("CONSOLE_LDAP_NOT_A_SETTING_", directory_settings())
        return self._settings

    def authenticate(self, request, username=None, password=None, **kwargs):
        if not enabled():
            return None
        try:
            return super().authenticate(request, username=username, password=password, **kwargs)
        except identity.IdentityRefused as exc:
            if request is not None:
                # Read by the sign-in form (console.forms.LoginForm) to show the reason.
                request.sign_in_refused = exc.message
            raise PermissionDenied(exc.message) from None

    def get_or_build_user(self, username, ldap_user):
        """The console user for this entry, through the identity core (never built here)."""
        user = identity.resolve_identity(_claims(username, ldap_user.dn, ldap_user.attrs))
        return user, False

    def authenticate_ldap_user(self, ldap_user, password):
        user = ldap_user.authenticate(password)
        if user is None:
            return None
        try:
            group_dns = ldap_user.group_dns
        except ldap.LDAPError as exc:
            # Signing in with memberships we could not read would keep teams the person may
            # have lost: refuse this time.
            logger.warning("LDAP sign-in of %s refused: groups could not be read (%s)", ldap_user.dn, exc)
            return None
        identity.sync_groups(user=user, source=SOURCE, external_groups=group_dns, via="sign-in",
                             issuer=settings.LDAP_ISSUER, subject=ldap_user.dn.lower())
        return user

    def get_user(self, user_id):
        """The user of a session this backend opened; a deactivated or service account's
        session is over (django-auth-ldap's own ``get_user`` does not check)."""
        user = get_user_model().objects.filter(pk=user_id).first()
        if user is None or not user.is_active or user.is_service_account:
            return None
        return user

    # Permissions come from grants (console.access.backends), never from the directory.
    def has_perm(self, user, perm, obj=None):
        return False

    def has_module_perms(self, user, app_label):
        return False

    def get_all_permissions(self, user, obj=None):
        return set()

    def get_group_permissions(self, user, obj=None):
        return set()


# --- the periodic sync ---------------------------------------------------------------------------
@dataclass
class _Entry:
    """What django-auth-ldap's group types read of a person: DN, attributes and a bound connection."""

    dn: str
    attrs: object
    connection: object


@dataclass
class SyncReport:
    checked: int = 0
    groups_changed: int = 0
    access_ended: int = 0
    gone: int = 0
    locked: int = 0
    errors: int = 0
    # The directory could not be reached: these people were left as they were.
    unreachable: int = 0
    changes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "changes"}


def _service_connection(config: dict):
    """A connection bound as the service account (LDAP_BIND_DN)."""
    connection = ldap.initialize(config["SERVER_URI"], bytes_mode=False)
    for option, value in config["CONNECTION_OPTIONS"].items():
        connection.set_option(option, value)
    if config["START_TLS"]:
        connection.start_tls_s()
    connection.simple_bind_s(config["BIND_DN"], config["BIND_PASSWORD"])
    return connection


def _read_entry(connection, dn: str):
    """The entry at ``dn`` (attributes decoded as at sign-in), or None when it is gone."""
    try:
        results = LDAPSearch(dn, ldap.SCOPE_BASE, attrlist=_user_attributes()).execute(connection)
    except ldap.NO_SUCH_OBJECT:
        return None
    return results[0] if results else None


def _has_live_access(user) -> bool:
    """Whether ending access would end anything (so a locked person is not re-audited every pass)."""
    if ApiToken.objects.filter(user=user, revoked_at__isnull=True).exists():
        return True
    return any(True for _ in live_sessions_of(user))


def ldap_sync() -> SyncReport:
    """Re-read every person linked to this directory with the service account.

    Entry gone: access ends (sessions, API tokens) and the memberships the directory's groups
    gave go. Entry locked or disabled: access ends; memberships follow the groups. Otherwise
    memberships follow the groups. A directory that cannot be reached changes nobody (logged
    and counted as ``unreachable``): losing the network must not sign everyone out."""
    report = SyncReport()
    if not enabled():
        return report
    identities = list(ExternalIdentity.objects.filter(source=SOURCE, issuer=settings.LDAP_ISSUER)
                      .select_related("user").order_by("pk"))
    if not identities:
        return report
    config = directory_settings()
    try:
        connection = _service_connection(config)
    except UNREACHABLE as exc:
        logger.warning("LDAP sync: %s cannot be reached (%s); nobody changed", settings.LDAP_SERVER_URI, exc)
        report.unreachable = len(identities)
        return report
    except ldap.LDAPError as exc:
        logger.error("LDAP sync: the service bind as %r failed (%s); nobody changed", settings.LDAP_BIND_DN, exc)
        report.errors = len(identities)
        return report
    group_search, group_type = config["GROUP_SEARCH"], config["GROUP_TYPE"]
    try:
        for position, link in enumerate(identities):
            user = link.user
            try:
                found = _read_entry(connection, link.subject)
                if found is None:
                    groups: list[str] = []
                    reason = "removed from the directory"
                    report.gone += 1
                else:
                    dn, attrs = found
                    groups = sorted(info[0] for info in group_type.user_groups(_Entry(dn, attrs, connection),
                                                                               group_search))
                    reason = lock_reason(attrs)
                    if reason:
                        report.locked += 1
            except UNREACHABLE as exc:
                logger.warning("LDAP sync: %s stopped answering (%s); %d people left as they were",
                               settings.LDAP_SERVER_URI, exc, len(identities) - position)
                report.unreachable = len(identities) - position
                break
            except ldap.LDAPError as exc:
                logger.error("LDAP sync: reading %s failed (%s); left as it was", link.subject, exc)
                report.errors += 1
                continue
            report.checked += 1
            change = identity.sync_groups(user=user, source=SOURCE, external_groups=groups, via="sync",
                                          issuer=link.issuer, subject=link.subject)
            if change["added"] or change["removed"]:
                report.groups_changed += 1
                report.changes.append(f"{user.username}: +{change['added']} -{change['removed']}")
            if reason and _has_live_access(user):
                identity.identity_access_ended(user=user, source=SOURCE, via="sync", reason=reason)
                report.access_ended += 1
                report.changes.append(f"{user.username}: access ended ({reason})")
    finally:
        connection.unbind_s()
    logger.info("LDAP sync: %s", report.as_dict())
    return report
