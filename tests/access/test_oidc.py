"""OpenID Connect sign-in against a real provider (npm ``oidc-provider``, tests/oidc/provider.mjs):
the whole authorization-code flow with PKCE, users and teams from the claims, and every way a
sign-in must be refused (a tampered, wrong-audience or expired ID token, a mismatched nonce, a
replayed state), each audited and shown on the sign-in page, never a 500. Sign-out ends the
provider's session too; re-checks at the provider end sessions and API tokens of a person it no
longer accepts and follow their groups.

The console reaches the provider over loopback; bad ID tokens are made by ``TokenProxy``
between the console and the provider's token endpoint, re-signed with the provider's own key
(the test gave it) or altered after signing."""

from __future__ import annotations

import time

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from audit.models import AuditEvent
from console.access import identity, oidc
from console.access.models import ApiToken, ExternalIdentity
from console.access.tokens import authenticate_bearer, token_create
from tests.factories import UserFactory
from tests.fixtures.oidc import provider_sign_in, sign, signing_key, unverified_claims

pytestmark = [pytest.mark.django_db]
User = get_user_model()
PASSWORD = "correct horse battery"


@pytest.fixture
def sso(settings, oidc_provider):
    for name, value in oidc_provider.settings(CONSOLE_BASE_URL="http://testserver").items():
        setattr(settings, name, value)
    return oidc_provider


@pytest.fixture
def ml_team(db, admin_user):
    team = Group.objects.create(name="ml")
    identity.group_mapping_create(actor=admin_user, source="oidc", external_group="ml-team", group=team)
    return team


def sign_in(client, username: str, password: str = PASSWORD):
    """Start at the console, sign in at the provider, come back; returns the console's answer
    to the callback, the callback URL and the provider-side browser session."""
    start = client.get("/accounts/oidc/login/")
    assert start.status_code == 302, start
    callback, browser = provider_sign_in(start["Location"], username, password)
    return client.get(callback.removeprefix("http://testserver")), callback, browser


def failed(reason_prefix: str) -> list[AuditEvent]:
    return [e for e in AuditEvent.objects.filter(action="login.failed")
            if e.details.get("source") == "oidc" and e.details.get("reason", "").startswith(reason_prefix)]


def assert_refused_on_login_page(client, response, reason_prefix: str) -> None:
    assert response.status_code == 302 and response["Location"] == "/accounts/login/"
    page = client.get("/accounts/login/")
    assert page.status_code == 200
    assert "failed" in page.content.decode() or "cannot" in page.content.decode()
    assert not client.get("/").wsgi_request.user.is_authenticated
    assert failed(reason_prefix), [e.details for e in AuditEvent.objects.filter(action="login.failed")]


# --- the flow -----------------------------------------------------------------------------------------

def test_login_page_offers_the_provider_only_when_configured(client, settings, oidc_provider):
    assert b"Sign in with" not in client.get("/accounts/login/").content
    assert client.get("/accounts/oidc/login/").status_code == 404
    for name, value in oidc_provider.settings().items():
        setattr(settings, name, value)
    assert b"Sign in with Test IdP" in client.get("/accounts/login/").content


def test_first_sign_in_creates_the_user_with_the_teams_of_the_groups_claim(client, sso, ml_team):
    sub = sso.add_user("olivia", PASSWORD, groups=["ml-team", "unmapped"], given_name="Olivia")
    response, _, _ = sign_in(client, "olivia")
    assert response.status_code == 302 and response["Location"] == "/"
    user = User.objects.get(username="olivia")
    assert client.get("/").wsgi_request.user == user
    assert list(user.groups.values_list("name", flat=True)) == ["ml"]
    assert user.first_name == "Olivia" and user.email == "olivia@example.test"
    assert not user.has_usable_password()
    link = ExternalIdentity.objects.get(user=user)
    assert (link.issuer, link.subject, link.source) == (sso.issuer, sub, "oidc")
    assert sorted(link.groups) == ["ml-team", "unmapped"]
    assert link.refresh_token_ciphertext and "." not in link.refresh_token_ciphertext[:5]  # encrypted
    assert AuditEvent.objects.filter(action="identity.group_added", target_id=str(user.pk)).exists()
    assert AuditEvent.objects.filter(action="login.success", target_id=str(user.pk)).exists()


def test_sign_in_returns_to_the_page_asked_for_but_never_off_site(client, sso):
    sso.add_user("nico", PASSWORD)
    start = client.get("/accounts/oidc/login/?next=/account/tokens/")
    callback, _ = provider_sign_in(start["Location"], "nico", PASSWORD)
    assert client.get(callback.removeprefix("http://testserver"))["Location"] == "/account/tokens/"
    client.post("/accounts/logout/")
    start = client.get("/accounts/oidc/login/?next=https://evil.example/")
    callback, _ = provider_sign_in(start["Location"], "nico", PASSWORD)
    assert client.get(callback.removeprefix("http://testserver"))["Location"] == "/"


def test_pkce_and_nonce_are_sent_with_the_authorization_request(client, sso):
    location = client.get("/accounts/oidc/login/")["Location"]
    assert "code_challenge_method=S256" in location and "code_challenge=" in location
    assert "nonce=" in location and "state=" in location


def test_a_wrong_password_is_refused_by_the_provider_script(client, sso):
    sso.add_user("pat", PASSWORD)
    with pytest.raises(AssertionError, match="provider refused"):
        sign_in(client, "pat", "wrong password")
    assert not User.objects.filter(username="pat").exists()


def test_groups_come_from_userinfo_when_the_id_token_has_none(client, settings, sso, token_proxy, ml_team):
    settings.OIDC_DISCOVERY_URL = token_proxy.discovery_url
    token_proxy.rewrite = token_proxy.resign(groups=None)
    sso.add_user("uma", PASSWORD, groups=["ml-team"])
    response, _, _ = sign_in(client, "uma")
    assert response["Location"] == "/"
    assert list(User.objects.get(username="uma").groups.values_list("name", flat=True)) == ["ml"]


def test_sign_out_ends_the_provider_session_too(client, sso):
    sso.add_user("sam", PASSWORD)
    _, _, browser = sign_in(client, "sam")
    response = client.post("/accounts/logout/")
    # A page that sends the browser on (a redirect would break the CSP's form-action 'self').
    assert response.status_code == 200
    end_session = response.content.decode().split('data-end-session', 1)[0].rsplit('href="', 1)[1].split('"', 1)[0]
    end_session = end_session.replace("&amp;", "&")
    assert end_session.startswith(f"{sso.issuer}/session/end")
    assert "id_token_hint=" in end_session and "post_logout_redirect_uri=" in end_session
    assert not client.get("/").wsgi_request.user.is_authenticated
    # The provider asks to confirm, then sends the person back to the console's sign-in page.
    page = browser.get(end_session, timeout=10)
    action = page.text.split('action="', 1)[1].split('"', 1)[0]
    xsrf = page.text.split('name="xsrf" value="', 1)[1].split('"', 1)[0]
    done = browser.post(requests_url(sso.issuer, action), data={"xsrf": xsrf, "logout": "yes"},
                        allow_redirects=False, timeout=10)
    location = done.headers["Location"]
    while not location.startswith("http://testserver/"):
        location = browser.get(requests_url(sso.issuer, location), allow_redirects=False,
                               timeout=10).headers["Location"]
    assert location.startswith("http://testserver/accounts/login/")
    # The provider session is gone: signing in again asks for the password.
    start = client.get("/accounts/oidc/login/")["Location"]
    again = browser.get(start, timeout=10)
    assert 'name="password"' in again.text


def requests_url(base: str, location: str) -> str:
    from urllib.parse import urljoin

    return urljoin(base + "/", location)


# --- refusals -------------------------------------------------------------------------------------

def test_a_tampered_id_token_is_refused(client, settings, sso, token_proxy):
    settings.OIDC_DISCOVERY_URL = token_proxy.discovery_url

    def tamper(body):
        header, payload, signature = body["id_token"].split(".")
        claims = unverified_claims(body["id_token"])
        claims["preferred_username"] = "admin"
        import base64
        import json
        forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
        body["id_token"] = f"{header}.{forged}.{signature}"
        return body

    token_proxy.rewrite = tamper
    sso.add_user("tina", PASSWORD)
    response, _, _ = sign_in(client, "tina")
    assert_refused_on_login_page(client, response, "id_token_")
    assert not User.objects.filter(username__in=["tina", "admin"]).exists()


def test_an_id_token_signed_with_a_key_the_provider_does_not_publish_is_refused(client, settings, sso, token_proxy):
    settings.OIDC_DISCOVERY_URL = token_proxy.discovery_url
    stranger = signing_key("test-key-1")  # same kid, different key

    def resign(body):
        body["id_token"] = sign(unverified_claims(body["id_token"]), stranger)
        return body

    token_proxy.rewrite = resign
    sso.add_user("ursula", PASSWORD)
    response, _, _ = sign_in(client, "ursula")
    assert_refused_on_login_page(client, response, "id_token_")
    assert not User.objects.filter(username="ursula").exists()


def test_an_id_token_for_another_audience_is_refused(client, settings, sso, token_proxy):
    settings.OIDC_DISCOVERY_URL = token_proxy.discovery_url
    # Minted for another client of the same provider; azp names ours so only the audience
    # check can tell.
    token_proxy.rewrite = token_proxy.resign(aud="another-client", azp=sso.client_id)
    sso.add_user("walt", PASSWORD)
    response, _, _ = sign_in(client, "walt")
    assert_refused_on_login_page(client, response, "id_token_invalid_claim:aud")
    assert not User.objects.filter(username="walt").exists()
    token_proxy.rewrite = token_proxy.resign(aud=["another-client"], azp=None)
    response, _, _ = sign_in(client, "walt")
    assert_refused_on_login_page(client, response, "id_token_")
    assert not User.objects.filter(username="walt").exists()


def test_an_expired_id_token_is_refused_beyond_the_clock_skew(client, settings, sso, token_proxy):
    settings.OIDC_DISCOVERY_URL = token_proxy.discovery_url
    now = int(time.time())
    token_proxy.rewrite = token_proxy.resign(exp=now - settings.OIDC_CLOCK_SKEW_SECONDS - 30, iat=now - 3600)
    sso.add_user("xena", PASSWORD)
    response, _, _ = sign_in(client, "xena")
    assert_refused_on_login_page(client, response, "id_token_expired")
    assert not User.objects.filter(username="xena").exists()


def test_a_token_expired_within_the_clock_skew_is_accepted(client, settings, sso, token_proxy):
    settings.OIDC_DISCOVERY_URL = token_proxy.discovery_url
    token_proxy.rewrite = token_proxy.resign(exp=int(time.time()) - 5)
    sso.add_user("yuri", PASSWORD)
    response, _, _ = sign_in(client, "yuri")
    assert response["Location"] == "/"


def test_a_mismatched_nonce_is_refused(client, settings, sso, token_proxy):
    settings.OIDC_DISCOVERY_URL = token_proxy.discovery_url
    token_proxy.rewrite = token_proxy.resign(nonce="a-nonce-from-another-sign-in")
    sso.add_user("zoe", PASSWORD)
    response, _, _ = sign_in(client, "zoe")
    assert_refused_on_login_page(client, response, "id_token_invalid_claim:nonce")
    assert not User.objects.filter(username="zoe").exists()


def test_a_replayed_state_is_refused(client, sso, django_user_model):
    sso.add_user("rita", PASSWORD)
    response, callback, _ = sign_in(client, "rita")
    assert response["Location"] == "/"
    # The same callback again (same browser, or an attacker's with the stolen URL): the state
    # was used once and is gone.
    from django.test import Client

    attacker = Client()
    replay = attacker.get(callback.removeprefix("http://testserver"))
    assert_refused_on_login_page(attacker, replay, "state_mismatch")
    replay_same = client.get(callback.removeprefix("http://testserver"))
    assert replay_same["Location"] == "/accounts/login/"
    assert len(failed("state_mismatch")) == 2


def test_a_callback_with_junk_is_refused_not_a_500(client, sso):
    for query in ("", "?code=x", "?state=nope&code=x", "?error=access_denied&error_description=no"):
        response = client.get(f"/accounts/oidc/callback/{query}")
        assert response.status_code == 302 and response["Location"] == "/accounts/login/", query
    assert failed("provider_error:access_denied")


def test_a_rotated_signing_key_is_fetched_once_when_a_token_names_it(client, settings, sso, token_proxy):
    settings.OIDC_DISCOVERY_URL = token_proxy.discovery_url
    old = sso.private_key
    public = lambda key: {k: v for k, v in key.items() if k not in ("d", "p", "q", "dp", "dq", "qi")}  # noqa: E731
    token_proxy.jwks = {"keys": [public(old)]}
    sso.add_user("kim", PASSWORD)
    assert sign_in(client, "kim")[0]["Location"] == "/"
    fetched = token_proxy.jwks_fetches
    client.post("/accounts/logout/")
    # The provider rotates: new tokens carry a new kid, published next to the old key.
    new = signing_key("test-key-2")
    token_proxy.jwks = {"keys": [public(old), public(new)]}

    def resign(body):
        body["id_token"] = sign(unverified_claims(body["id_token"]), new)
        return body

    token_proxy.rewrite = resign
    response, _, _ = sign_in(client, "kim")
    assert response["Location"] == "/"
    assert token_proxy.jwks_fetches == fetched + 1


def test_a_collision_with_a_local_account_is_refused_until_an_admin_links(client, sso, admin_user):
    local = UserFactory(username="lena")
    sub = sso.add_user("lena", PASSWORD)
    response, _, _ = sign_in(client, "lena")
    assert response["Location"] == "/accounts/login/"
    page = client.get("/accounts/login/").content.decode()
    assert "A console account named &#x27;lena&#x27; exists" in page
    assert failed("username_collision")
    assert AuditEvent.objects.filter(action="identity.sign_in_refused").exists()
    # The admin links the provider account on the user's page; then it signs in as lena.
    admin = type(client)()
    admin.force_login(admin_user)
    linked = admin.post(f"/access/users/{local.pk}/identities/link/",
                        {"source": "oidc", "issuer": sso.issuer, "subject": sub})
    assert linked.status_code == 302
    assert sign_in(client, "lena")[0]["Location"] == "/"
    assert client.get("/").wsgi_request.user == local


# --- re-check -------------------------------------------------------------------------------------

def test_a_person_disabled_at_the_provider_loses_session_and_tokens_at_the_next_recheck(client, settings, sso):
    sub = sso.add_user("dora", PASSWORD)
    sign_in(client, "dora")
    user = User.objects.get(username="dora")
    _, secret = token_create(actor=user, user=user, name="laptop", scopes=["read"])
    assert client.get("/").status_code == 200
    settings.OIDC_RECHECK_SECONDS = 0
    assert client.get("/").status_code == 200  # still accepted: the re-check passed
    sso.disable(sub)
    response = client.get("/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    assert not client.get("/").wsgi_request.user.is_authenticated
    assert authenticate_bearer(f"Bearer {secret}") is None
    assert ApiToken.objects.get(user=user).revoked_at is not None
    ended = AuditEvent.objects.get(action="identity.access_ended")
    assert ended.details["via"] == "re-check" and "invalid_grant" in ended.details["reason"]


def test_a_group_removed_at_the_provider_removes_the_team_at_the_next_recheck(client, settings, sso, ml_team):
    sub = sso.add_user("gus", PASSWORD, groups=["ml-team"])
    sign_in(client, "gus")
    user = User.objects.get(username="gus")
    assert user.groups.filter(pk=ml_team.pk).exists()
    sso.set_groups(sub, [])
    settings.OIDC_RECHECK_SECONDS = 0
    assert client.get("/").status_code == 200  # still signed in
    assert not user.groups.filter(pk=ml_team.pk).exists()
    removed = AuditEvent.objects.get(action="identity.group_removed")
    assert removed.details["via"] == "re-check"


def test_the_periodic_recheck_revokes_tokens_of_api_only_users(client, settings, sso, ml_team):
    sub = sso.add_user("api-ann", PASSWORD, groups=["ml-team"])
    sign_in(client, "api-ann")
    user = User.objects.get(username="api-ann")
    _, secret = token_create(actor=user, user=user, name="ci", scopes=["read"])
    settings.OIDC_RECHECK_SECONDS = 30
    assert oidc.oidc_recheck_due() == {}  # checked at sign-in: not due yet
    ExternalIdentity.objects.filter(user=user).update(last_checked_at=None)
    sso.set_groups(sub, [])
    stored = ExternalIdentity.objects.get(user=user).refresh_token_ciphertext
    assert oidc.oidc_recheck_due() == {"ok": 1}
    assert not user.groups.filter(pk=ml_team.pk).exists()
    # The provider rotates refresh tokens: the new one is kept, so the next check still passes.
    assert ExternalIdentity.objects.get(user=user).refresh_token_ciphertext != stored
    ExternalIdentity.objects.filter(user=user).update(last_checked_at=None)
    assert oidc.oidc_recheck_due() == {"ok": 1}
    assert authenticate_bearer(f"Bearer {secret}") is not None
    sso.disable(sub)
    ExternalIdentity.objects.filter(user=user).update(last_checked_at=None)
    assert oidc.oidc_recheck_due() == {"refused": 1}
    assert authenticate_bearer(f"Bearer {secret}") is None


def test_an_unreachable_provider_is_not_a_refusal(client, settings, sso):
    from tests.fixtures.emulators import closed_port

    sso.add_user("nora", PASSWORD)
    sign_in(client, "nora")
    settings.OIDC_RECHECK_SECONDS = 0
    settings.OIDC_DISCOVERY_URL = f"http://127.0.0.1:{closed_port()}/.well-known/openid-configuration"
    response = client.get("/")
    assert response.status_code == 200 and response.wsgi_request.user.username == "nora"
    assert not AuditEvent.objects.filter(action="identity.access_ended").exists()


# --- settings -------------------------------------------------------------------------------------

def _settings_in_subprocess(expression: str = "s.OIDC_CLIENT_SECRET", **env):
    import os
    import subprocess
    import sys
    from pathlib import Path

    clean = {k: v for k, v in os.environ.items() if not k.startswith("OIDC_") and k != "PYTEST_CURRENT_TEST"}
    clean.update(DEBUG="true", **env)
    return subprocess.run(
        [sys.executable, "-c", f"import console.settings as s; print({expression})"],
        cwd=Path(__file__).resolve().parents[2], env=clean, capture_output=True, text=True, timeout=60)


def test_half_an_oidc_configuration_stops_start_up():
    result = _settings_in_subprocess(OIDC_DISCOVERY_URL="https://idp.example.test/.well-known/openid-configuration")
    assert result.returncode != 0
    assert "OIDC_DISCOVERY_URL and OIDC_CLIENT_ID go together" in result.stderr


def test_the_client_secret_comes_from_a_file(tmp_path):
    secret = tmp_path / "oidc-client-secret"
    secret.write_text("s3cret-from-file\n")
    result = _settings_in_subprocess(OIDC_DISCOVERY_URL="https://idp.example.test/.well-known/openid-configuration",
                                     OIDC_CLIENT_ID="console", OIDC_CLIENT_SECRET_FILE=str(secret))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("s3cret-from-file")


def test_the_periodic_recheck_is_scheduled_only_when_oidc_is_configured():
    expression = "'oidc-recheck' in s.CELERY_BEAT_SCHEDULE"
    off = _settings_in_subprocess(expression)
    on = _settings_in_subprocess(expression, OIDC_DISCOVERY_URL="https://idp.example.test/.well-known/openid-configuration",
                                 OIDC_CLIENT_ID="console")
    assert (off.stdout.strip(), on.stdout.strip()) == ("False", "True"), off.stderr + on.stderr
