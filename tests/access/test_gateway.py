"""Sign-in by a trusted gateway header (oauth2-proxy, Knox), over real HTTP: the console runs on
127.0.0.1 (Django's live server) and requests leave from 127.0.0.1 (the allow-listed gateway)
or 127.0.0.2 (anyone else on the network), so REMOTE_ADDR is the real TCP peer."""

import http.client
from http.cookies import SimpleCookie
from urllib.parse import urlsplit

import pytest
from django.contrib.auth.models import Group
from django.contrib.sessions.models import Session
from django.core.cache import cache
from django.urls import reverse

from audit.models import AuditEvent
from console.access import identity
from console.access.models import ExternalIdentity

GATEWAY = "127.0.0.1"
ELSEWHERE = "127.0.0.2"
BACKEND = "console.access.gateway.TrustedHeaderBackend"


@pytest.fixture
def gateway_mode(settings):
    settings.TRUSTED_HEADER_ENABLED = True
    settings.TRUSTED_HEADER_PROXIES = [f"{GATEWAY}/32", "10.9.0.0/16"]
    settings.TRUSTED_HEADER_ISSUER = "oauth2-proxy"
    settings.AUTHENTICATION_BACKENDS = [*settings.AUTHENTICATION_BACKENDS, BACKEND]
    cache.clear()  # the refusal audit's once-a-minute marks
    return settings


class Browser:
    """Requests from one source address to the live server, keeping the session cookie."""

    def __init__(self, live_server, source: str):
        parts = urlsplit(live_server.url)
        self.port, self.source, self.cookies = parts.port, source, SimpleCookie()

    def get(self, path: str, headers: dict | None = None) -> tuple[int, str, http.client.HTTPResponse]:
        # Connect to 127.0.0.1 from the chosen loopback address: that is what REMOTE_ADDR sees.
        connection = http.client.HTTPConnection(GATEWAY, self.port, timeout=30, source_address=(self.source, 0))
        sent = dict(headers or {})
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={m.value}" for k, m in self.cookies.items())
        try:
            connection.request("GET", path, headers=sent)
            response = connection.getresponse()
            body = response.read().decode()
        finally:
            connection.close()
        for header in response.headers.get_all("Set-Cookie") or []:
            self.cookies.load(header)
        return response.status, body, response

    @property
    def session_key(self):
        morsel = self.cookies.get("sessionid")
        return morsel.value if morsel is not None and morsel.value else None


def _user_of(browser) -> str | None:
    key = browser.session_key
    session = Session.objects.filter(session_key=key).first() if key else None
    if session is None:
        return None
    user_id = session.get_decoded().get("_auth_user_id")
    return ExternalIdentity.objects.get(user_id=user_id).user.username if user_id else None


@pytest.fixture
def ml_team(transactional_db, gateway_mode):
    from tests.factories import UserFactory

    admin = UserFactory(username="root-admin", is_superuser=True)
    team = Group.objects.create(name="ML team")
    identity.group_mapping_create(actor=admin, source="header", external_group="ml-engineers", group=team)
    return team


def test_the_gateway_header_signs_people_in_from_the_allow_listed_peer(live_server, ml_team):
    gateway = Browser(live_server, GATEWAY)

    status, _, _ = gateway.get(reverse("home"), {"X-Forwarded-User": "dana", "X-Forwarded-Email": "dana@example.test",
                                                 "X-Forwarded-Groups": "ml-engineers, kitchen-staff"})

    assert status == 200
    link = ExternalIdentity.objects.select_related("user").get(source="header")
    assert (link.issuer, link.subject, link.user.username) == ("oauth2-proxy", "dana", "dana")
    assert link.user.email == "dana@example.test"
    assert set(link.user.groups.values_list("name", flat=True)) == {"ML team"}
    assert not Group.objects.filter(name="kitchen-staff").exists()
    assert _user_of(gateway) == "dana"
    assert AuditEvent.objects.filter(action="login.success", actor_name="dana").count() == 1

    # Later requests reuse the session (no second sign-in); a changed groups header re-syncs.
    assert gateway.get(reverse("home"), {"X-Forwarded-User": "dana",
                                         "X-Forwarded-Groups": "ml-engineers"})[0] == 200
    assert AuditEvent.objects.filter(action="login.success").count() == 1
    assert gateway.get(reverse("home"), {"X-Forwarded-User": "dana", "X-Forwarded-Groups": ""})[0] == 200
    assert not link.user.groups.exists()
    removed = AuditEvent.objects.get(action="identity.group_removed")
    assert removed.details["source"] == "header" and removed.details["via"] == "re-check"


def test_the_header_from_any_other_address_is_refused_and_audited_once_a_minute(live_server, ml_team):
    outsider = Browser(live_server, ELSEWHERE)

    # Claiming to come through the gateway in X-Forwarded-For changes nothing: only the TCP peer counts.
    status, body, _ = outsider.get(reverse("home"), {"X-Forwarded-User": "dana", "X-Forwarded-For": GATEWAY,
                                                     "X-Forwarded-Groups": "ml-engineers"})

    assert status == 403
    assert "accepted only from the console's gateway" in body and ELSEWHERE in body
    assert not ExternalIdentity.objects.exists() and outsider.session_key is None
    event = AuditEvent.objects.get(action="identity.header_refused")
    assert event.outcome == "denied" and event.details["peer"] == ELSEWHERE and event.details["user"] == "dana"
    # A flood from the same address is refused every time but audited once per minute.
    for _ in range(5):
        assert outsider.get("/", {"X-Forwarded-User": "admin"})[0] == 403
    assert AuditEvent.objects.filter(action="identity.header_refused").count() == 1
    # Without the header the outsider is an ordinary anonymous visitor (sign-in page).
    assert outsider.get(reverse("home"))[0] == 302


def test_a_new_header_user_ends_the_old_session(live_server, ml_team):
    gateway = Browser(live_server, GATEWAY)
    assert gateway.get(reverse("home"), {"X-Forwarded-User": "dana"})[0] == 200
    dana_session = gateway.session_key

    assert gateway.get(reverse("home"), {"X-Forwarded-User": "erin"})[0] == 200

    assert not Session.objects.filter(session_key=dana_session).exists()
    assert _user_of(gateway) == "erin"
    # The gateway stops vouching for anyone: the session ends too.
    assert gateway.get(reverse("home"))[0] == 302
    assert _user_of(gateway) is None


def test_a_gateway_session_cookie_used_around_the_gateway_ends(live_server, ml_team):
    gateway = Browser(live_server, GATEWAY)
    assert gateway.get(reverse("home"), {"X-Forwarded-User": "dana"})[0] == 200
    stolen = Browser(live_server, ELSEWHERE)
    stolen.cookies = SimpleCookie(gateway.cookies.output(header="", sep=";"))

    assert stolen.get(reverse("home"))[0] == 302
    assert not Session.objects.filter(session_key=gateway.session_key).exists()


def test_a_refused_identity_gets_a_403_with_the_reason(live_server, ml_team):
    from tests.factories import UserFactory

    UserFactory(username="alice")
    gateway = Browser(live_server, GATEWAY)

    status, body, _ = gateway.get(reverse("home"), {"X-Forwarded-User": "alice"})

    assert status == 403 and "exists and is not linked" in body
    assert AuditEvent.objects.get(action="identity.sign_in_refused").details["source"] == "header"


@pytest.mark.django_db
def test_the_header_means_nothing_when_the_mode_is_off(client, settings):
    assert not settings.TRUSTED_HEADER_ENABLED
    response = client.get(reverse("home"), HTTP_X_FORWARDED_USER="admin", REMOTE_ADDR=GATEWAY)
    assert response.status_code == 302 and "_auth_user_id" not in client.session
    assert not AuditEvent.objects.filter(action="identity.header_refused").exists()


@pytest.mark.django_db
def test_allow_list_entries_are_networks_and_mapped_ipv4_addresses_match(gateway_mode):
    from console.access.gateway import peer_is_trusted

    assert peer_is_trusted("10.9.200.1") and peer_is_trusted("::ffff:127.0.0.1")
    assert not peer_is_trusted("10.10.0.1") and not peer_is_trusted("") and not peer_is_trusted("unix:")


def _start_up(**env):
    """Import the production settings in a fresh interpreter with ``env``."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    clean = {k: v for k, v in os.environ.items()
             if k not in {"DJANGO_SETTINGS_MODULE", "PYTEST_CURRENT_TEST"} and not k.startswith(("LDAP_", "TRUSTED_"))}
    clean.update(DEBUG="true", **env)
    return subprocess.run([sys.executable, "-c", "import console.settings as s; print(s.AUTHENTICATION_BACKENDS)"],
                          cwd=Path(__file__).resolve().parents[2], env=clean, capture_output=True, text=True,
                          timeout=60)


def test_gateway_mode_needs_a_valid_allow_list_to_start():
    missing = _start_up(TRUSTED_HEADER_ENABLED="true")
    assert missing.returncode != 0 and "set TRUSTED_HEADER_PROXIES" in missing.stderr
    bad = _start_up(TRUSTED_HEADER_ENABLED="true", TRUSTED_HEADER_PROXIES="10.0.0.0/8, gateway.example")
    assert bad.returncode != 0 and "'gateway.example' is not an address or network" in bad.stderr
    good = _start_up(TRUSTED_HEADER_ENABLED="true", TRUSTED_HEADER_PROXIES="10.0.0.0/8")
    assert good.returncode == 0, good.stderr
    assert BACKEND in good.stdout
    assert BACKEND not in _start_up().stdout
