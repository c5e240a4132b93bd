"""API tokens: created once, stored hashed, scoped, revocable, audited — and the API's bearer
authentication seen from a caller's side."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
import time_machine
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from audit.models import AuditEvent
from console.access import tokens
from console.access.models import ApiToken
from console.access.services import user_deactivate
from tests.console.access_factories import project_with_model
from tests.endpoints.endpoint_factories import grant

pytestmark = pytest.mark.django_db


def bearer(plaintext: str) -> str:
    return f"Bearer {plaintext}"


def test_token_is_returned_once_and_only_its_hash_is_stored(alice):
    token, plaintext = tokens.token_create(actor=alice, user=alice, name="laptop", scopes=["read"])
    assert plaintext.startswith("icn_" + token.prefix + "_")
    stored = ApiToken.objects.get(pk=token.pk)
    assert stored.secret_hash == hashlib.sha256(plaintext.encode()).hexdigest()
    assert plaintext not in str(stored.__dict__)
    event = AuditEvent.objects.get(action="token.create")
    assert event.actor_name == "alice" and event.details["scopes"] == ["read"]
    assert plaintext not in str(event.details) and token.prefix in event.details["prefix"]


def test_authenticate_bearer_resolves_the_user_and_records_last_use(alice):
    token, plaintext = tokens.token_create(actor=alice, user=alice, name="ci", scopes=["read"])
    user, found = tokens.authenticate_bearer(bearer(plaintext))
    assert (user, found) == (alice, token)
    assert ApiToken.objects.get(pk=token.pk).last_used_at is not None


def test_last_used_is_written_at_most_once_a_minute(alice, django_assert_num_queries):
    _, plaintext = tokens.token_create(actor=alice, user=alice, name="ci", scopes=["read"])
    tokens.authenticate_bearer(bearer(plaintext))
    with django_assert_num_queries(1):  # the lookup only: no UPDATE within the minute
        assert tokens.authenticate_bearer(bearer(plaintext)) is not None


@pytest.mark.parametrize("header", [
    None, "", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Token abc", "Bearer icn_short", "Bearer not-a-console-token",
    "Bearer icn_ABCDEFGH_" + "x" * 43,
])
def test_missing_or_malformed_headers_authenticate_nobody(header, alice):
    tokens.token_create(actor=alice, user=alice, name="ci", scopes=["read"])
    assert tokens.authenticate_bearer(header) is None


def test_a_guessed_secret_with_a_real_prefix_is_refused(alice):
    token, plaintext = tokens.token_create(actor=alice, user=alice, name="ci", scopes=["read"])
    forged = plaintext[:-4] + ("AAAA" if not plaintext.endswith("AAAA") else "BBBB")
    assert tokens.authenticate_bearer(bearer(forged)) is None


def test_expired_revoked_and_deactivated_tokens_authenticate_nobody(alice, bob, admin_user):
    soon = timezone.now() + timedelta(hours=1)
    _, expiring = tokens.token_create(actor=alice, user=alice, name="short", scopes=["read"], expires_at=soon)
    revoked, revoked_text = tokens.token_create(actor=alice, user=alice, name="gone", scopes=["read"])
    _, bobs = tokens.token_create(actor=bob, user=bob, name="bob", scopes=["read"])
    tokens.token_revoke(actor=alice, token=revoked)
    user_deactivate(actor=admin_user, user=bob)
    assert tokens.authenticate_bearer(bearer(revoked_text)) is None
    assert tokens.authenticate_bearer(bearer(bobs)) is None
    assert tokens.authenticate_bearer(bearer(expiring)) is not None
    with time_machine.travel(soon, tick=False):
        assert tokens.authenticate_bearer(bearer(expiring)) is None


def test_people_create_tokens_for_themselves_and_admins_for_service_accounts_only(alice, bob, admin_user,
                                                                                  service_account):
    with pytest.raises(PermissionDenied):
        tokens.token_create(actor=alice, user=bob, name="x", scopes=["read"])
    with pytest.raises(PermissionDenied):
        tokens.token_create(actor=admin_user, user=alice, name="x", scopes=["read"])
    token, _ = tokens.token_create(actor=admin_user, user=service_account, name="ci", scopes=["infer"])
    assert token.user == service_account and token.created_by == admin_user


def test_bad_token_requests_are_refused_with_field_errors(alice):
    with pytest.raises(ValidationError) as exc:
        tokens.token_create(actor=alice, user=alice, name="", scopes=["admin"],
                            expires_at=timezone.now() - timedelta(days=1))
    assert set(exc.value.message_dict) >= {"name"}
    with pytest.raises(ValidationError):
        tokens.token_create(actor=alice, user=alice, name="x", scopes=[])
    with pytest.raises(ValidationError):
        tokens.token_create(actor=alice, user=alice, name="x", scopes=["read", "admin"])


def test_only_the_holder_or_an_admin_revokes_and_revocation_is_audited(alice, bob, admin_user):
    token, _ = tokens.token_create(actor=alice, user=alice, name="ci", scopes=["read"])
    with pytest.raises(PermissionDenied):
        tokens.token_revoke(actor=bob, token=token)
    tokens.token_revoke(actor=admin_user, token=token)
    tokens.token_revoke(actor=alice, token=token)  # twice: nothing more happens
    assert AuditEvent.objects.filter(action="token.revoke").count() == 1


# --- the API, from a caller's side ----------------------------------------------------------------

def api(plaintext: str | None = None) -> APIClient:
    client = APIClient()
    if plaintext:
        client.credentials(HTTP_AUTHORIZATION=bearer(plaintext))
    return client


def test_unauthenticated_api_calls_get_401_with_a_bearer_challenge(db):
    response = api().get(reverse("api-me"))
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"


def test_an_invalid_token_gets_401_even_with_a_valid_session(client, alice):
    client.force_login(alice)
    response = client.get(reverse("api-me"), headers={"authorization": "Bearer icn_nosuchpr_" + "x" * 43})
    assert response.status_code == 401


def test_a_read_token_reads_but_cannot_write(alice):
    project, _model = project_with_model()
    grant(alice, project, "view", "deploy")
    _, plaintext = tokens.token_create(actor=alice, user=alice, name="reader", scopes=["read"])
    client = api(plaintext)
    assert client.get(reverse("api-me")).json()["username"] == "alice"
    assert client.get(reverse("api-model-list")).status_code == 200
    response = client.post(reverse("api-model-list"), {"project": project.pk, "name": "new", "task": "regression"},
                           format="json")
    assert response.status_code == 403
    assert "deploy" in response.json()["detail"]


def test_a_deploy_token_writes_what_its_user_may(alice, bob):
    project, _model = project_with_model()
    grant(alice, project, "view", "deploy")
    _, alices = tokens.token_create(actor=alice, user=alice, name="ci", scopes=["deploy"])
    _, bobs = tokens.token_create(actor=bob, user=bob, name="ci", scopes=["deploy"])
    body = {"project": project.pk, "name": "new", "task": "regression"}
    assert api(alices).post(reverse("api-model-list"), body, format="json").status_code == 201
    # bob cannot see the project: the token gives him nothing his account lacks
    assert api(bobs).post(reverse("api-model-list"), body | {"name": "other"}, format="json").status_code == 400


def test_infer_and_ingest_tokens_cannot_use_the_api(alice):
    for scope in ("infer", "ingest"):
        _, plaintext = tokens.token_create(actor=alice, user=alice, name=scope, scopes=[scope])
        assert api(plaintext).get(reverse("api-me")).status_code == 403


def test_a_revoked_token_is_refused_at_once(alice):
    token, plaintext = tokens.token_create(actor=alice, user=alice, name="ci", scopes=["read"])
    client = api(plaintext)
    assert client.get(reverse("api-me")).status_code == 200
    tokens.token_revoke(actor=alice, token=token)
    assert client.get(reverse("api-me")).status_code == 401


def test_a_token_cannot_mint_or_revoke_tokens(alice):
    token, plaintext = tokens.token_create(actor=alice, user=alice, name="ci", scopes=["read", "deploy"])
    client = api(plaintext)
    assert client.get(reverse("api-token-list")).status_code == 200
    assert client.post(reverse("api-token-list"), {"name": "more", "scopes": ["deploy"]},
                       format="json").status_code == 403
    assert client.delete(reverse("api-token-detail", args=[token.pk])).status_code == 403


def test_the_token_api_returns_the_secret_once_and_lists_only_prefixes(client, alice):
    client.force_login(alice)
    response = client.post(reverse("api-token-list"), {"name": "ci", "scopes": ["read"]},
                           content_type="application/json")
    assert response.status_code == 201
    plaintext = response.json()["token"]
    assert response["Cache-Control"] == "no-store"
    listed = client.get(reverse("api-token-list")).json()["results"]
    assert [t["name"] for t in listed] == ["ci"]
    assert plaintext not in str(listed) and listed[0]["prefix"].startswith("icn_")
    assert api(plaintext).get(reverse("api-me")).json()["username"] == "alice"


def test_admins_create_service_account_tokens_through_the_api(client, admin_user, service_account, alice):
    client.force_login(admin_user)
    response = client.post(reverse("api-token-list"),
                           {"name": "caller", "scopes": ["infer"], "user": service_account.pk},
                           content_type="application/json")
    assert response.status_code == 201 and response.json()["user"] == service_account.username
    listed = client.get(reverse("api-token-list"), {"user": service_account.pk}).json()["results"]
    assert [t["name"] for t in listed] == ["caller"]
    refused = client.post(reverse("api-token-list"), {"name": "x", "scopes": ["read"], "user": alice.pk},
                          content_type="application/json")
    assert refused.status_code == 403


def test_service_accounts_still_cannot_sign_in_with_a_password(client, service_account):
    service_account.set_password("a long enough password 123")
    service_account.save()
    response = client.post(reverse("login"), {"username": service_account.username,
                                              "password": "a long enough password 123"})
    assert response.status_code == 200 and "_auth_user_id" not in client.session
