"""The short-lived endpoint credential "Try it" sends (console/access/tokens.py), checked from the
attacker's side through the ext_authz check as Envoy calls it: it expires, it is good for one
endpoint only, it cannot be altered or forged, the REST API refuses it, and nothing of it is
stored."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest
import time_machine
from django.test import Client
from django.utils import timezone

from audit.models import AuditEvent
from console.access import grants, services, tokens
from console.access.models import ApiToken
from tests.access.test_authz import _fresh_decision_cache, envoy_check  # noqa: F401  (autouse fixture)
from tests.console.access_factories import endpoint_in, project_with_model

pytestmark = pytest.mark.django_db

HOST = "scorer.fraud.example.com"


@pytest.fixture
def fraud():
    project, _ = project_with_model("fraud")
    return project


@pytest.fixture
def scorer(fraud):
    return endpoint_in(fraud, "scorer")


@pytest.fixture
def ranker(fraud):
    return endpoint_in(fraud, "ranker")


@pytest.fixture
def caller(alice, fraud):
    grants.grant_create(actor=None, role="caller", target=fraud, user=alice, reason="test")
    return alice


def test_a_callers_credential_is_allowed_on_its_endpoint_and_names_the_user(caller, scorer):
    plaintext, _ = tokens.endpoint_credential_mint(user=caller, endpoint=scorer)
    response = envoy_check(HOST, token=plaintext)
    assert response.status_code == 200
    assert response["x-console-principal"] == "alice"


def test_the_credential_cannot_be_used_on_another_endpoint_even_one_the_user_may_call(caller, scorer, ranker):
    plaintext, _ = tokens.endpoint_credential_mint(user=caller, endpoint=scorer)
    response = envoy_check("ranker.fraud.example.com", path="/v1/models/ranker:predict", token=plaintext)
    assert response.status_code == 403
    denial = AuditEvent.objects.filter(action="infer.authorize").latest("id")
    assert denial.details["reason"] == "the credential was issued for another endpoint"
    assert denial.actor_name == "alice"


def test_the_credential_expires_after_a_minute(caller, scorer):
    with time_machine.travel(timezone.now() - timedelta(seconds=61), tick=False):
        stale, issued = tokens.endpoint_credential_mint(user=caller, endpoint=scorer)
    assert issued.expires_at <= timezone.now()
    assert envoy_check(HOST, token=stale).status_code == 401
    fresh, issued = tokens.endpoint_credential_mint(user=caller, endpoint=scorer)
    assert timedelta(seconds=55) < issued.expires_at - timezone.now() <= timedelta(seconds=60)
    assert envoy_check(HOST, token=fresh).status_code == 200


def test_a_cached_allow_ends_with_the_credential(caller, scorer, settings):
    settings.AUTHZ_DECISION_TTL = 300
    plaintext, issued = tokens.endpoint_credential_mint(user=caller, endpoint=scorer)
    assert envoy_check(HOST, token=plaintext).status_code == 200
    with time_machine.travel(issued.expires_at + timedelta(seconds=1), tick=False):
        assert envoy_check(HOST, token=plaintext).status_code == 401


def _reencode(plaintext: str, **changes) -> str:
    """The credential with its payload changed and its signature kept (an attacker's edit)."""
    body, _, signature = plaintext.removeprefix(tokens.ENDPOINT_CREDENTIAL_MARK).rpartition(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    payload.update(changes)
    encoded = base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode().rstrip("=")
    return f"{tokens.ENDPOINT_CREDENTIAL_MARK}{encoded}.{signature}"


def test_an_altered_credential_is_refused(caller, scorer, ranker, bob):
    plaintext, _ = tokens.endpoint_credential_mint(user=caller, endpoint=scorer)
    for forged in (_reencode(plaintext, e=ranker.pk), _reencode(plaintext, u=bob.pk),
                   _reencode(plaintext, x=int(timezone.now().timestamp()) + 86400),
                   plaintext[:-2] + ("AA" if not plaintext.endswith("AA") else "BB"),
                   tokens.ENDPOINT_CREDENTIAL_MARK + "e30.anything"):
        assert envoy_check(HOST, token=forged).status_code == 401, forged


def test_a_credential_signed_with_another_key_is_refused(caller, scorer, settings):
    settings.SECRET_KEY = "another-console-" + "x" * 40
    plaintext, _ = tokens.endpoint_credential_mint(user=caller, endpoint=scorer)
    settings.SECRET_KEY = "the-real-console-" + "y" * 40
    assert envoy_check(HOST, token=plaintext).status_code == 401


def test_a_viewer_gets_a_credential_but_the_check_refuses_it_with_the_reason(bob, fraud, scorer):
    grants.grant_create(actor=None, role="viewer", target=fraud, user=bob, reason="test")
    plaintext, _ = tokens.endpoint_credential_mint(user=bob, endpoint=scorer)
    assert envoy_check(HOST, token=plaintext).status_code == 403
    denial = AuditEvent.objects.filter(action="infer.authorize").latest("id")
    assert denial.actor_name == "bob" and "infer" in denial.details["reason"]


def test_a_deactivated_users_credential_stops_working(caller, scorer, admin_user):
    plaintext, _ = tokens.endpoint_credential_mint(user=caller, endpoint=scorer)
    services.user_deactivate(actor=admin_user, user=caller, reason="left")
    assert envoy_check(HOST, token=plaintext).status_code == 401


def test_the_rest_api_refuses_the_credential(caller, scorer):
    plaintext, _ = tokens.endpoint_credential_mint(user=caller, endpoint=scorer)
    response = Client().get("/api/v1/endpoints/", headers={"authorization": f"Bearer {plaintext}"})
    assert response.status_code == 401


def test_minting_stores_nothing(caller, scorer):
    tokens_before, events_before = ApiToken.objects.count(), AuditEvent.objects.count()
    plaintext, issued = tokens.endpoint_credential_mint(user=caller, endpoint=scorer)
    assert envoy_check(HOST, token=plaintext).status_code == 200
    assert ApiToken.objects.count() == tokens_before
    secret = plaintext.rpartition(".")[2]
    for event in AuditEvent.objects.all():
        assert secret not in json.dumps(event.details) and plaintext not in event.target_repr
    assert AuditEvent.objects.count() == events_before  # allows are tallied, not written per request
    assert issued.display_prefix.startswith(tokens.ENDPOINT_CREDENTIAL_MARK) and issued.display_prefix not in secret
