"""API rate limits per token and per user: 429 with Retry-After once a budget is spent, other
tokens and users unaffected; the ingest receivers and inference authorization never limited."""

from __future__ import annotations

import uuid

import pytest
from django.core.cache import cache
from django.test import Client, override_settings
from django.urls import reverse

from console.api.throttling import parse_rate
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_counters():
    """Counters live in the cache, keyed by primary keys that rolled-back tests reuse."""
    cache.clear()
    yield
    cache.clear()


def _token(user, scopes=("read",)) -> str:
    from console.access import tokens

    _, plaintext = tokens.token_create(actor=user, user=user, name=f"t-{uuid.uuid4().hex[:8]}", scopes=list(scopes))
    return plaintext


def _get(token: str):
    return Client().get(reverse("api-me"), headers={"authorization": f"Bearer {token}"})


@override_settings(API_RATE_LIMIT_TOKEN="3/minute", API_RATE_LIMIT_USER="")
def test_token_over_its_rate_gets_429_with_retry_after_and_another_token_is_unaffected():
    alice = UserFactory(username="alice")
    first, second = _token(alice), _token(alice)
    assert [_get(first).status_code for _ in range(3)] == [200, 200, 200]
    refused = _get(first)
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert "throttled" in refused.json()["detail"].lower()
    # The same user's other token has a budget of its own.
    assert _get(second).status_code == 200
    # And another user's token too.
    assert _get(_token(UserFactory(username="bob"))).status_code == 200


@override_settings(API_RATE_LIMIT_TOKEN="", API_RATE_LIMIT_USER="2/minute")
def test_user_rate_counts_every_token_and_session_of_the_user():
    alice = UserFactory(username="alice")
    first, second = _token(alice), _token(alice)
    assert _get(first).status_code == 200
    assert _get(second).status_code == 200
    assert _get(first).status_code == 429
    assert _get(second).status_code == 429
    browser = Client()
    browser.force_login(alice)
    assert browser.get(reverse("api-me")).status_code == 429
    bob = Client()
    bob.force_login(UserFactory(username="bob"))
    assert bob.get(reverse("api-me")).status_code == 200


@override_settings(API_RATE_LIMIT_TOKEN="1/minute", API_RATE_LIMIT_USER="1/minute")
def test_ingest_receivers_are_not_rate_limited():
    from console.access import roles

    roles.ensure_global_roles()
    ingester = UserFactory(username="k8s-audit", is_service_account=True, password=None, roles=[roles.INGESTER])
    token = _token(ingester, scopes=("ingest",))
    body = b'{"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": []}'
    statuses = {Client().post(reverse("ingest:kubernetes"), data=body, content_type="application/json",
                              headers={"authorization": f"Bearer {token}"}).status_code for _ in range(4)}
    assert 429 not in statuses
    assert statuses <= {202}


@override_settings(API_RATE_LIMIT_TOKEN="1/minute", API_RATE_LIMIT_USER="1/minute")
def test_inference_authorization_is_not_rate_limited():
    caller = UserFactory(username="svc")
    token = _token(caller, scopes=("infer",))
    statuses = {Client().get("/authz/check/v1/models/x:predict", headers={
        "host": "nothing.example.com", "authorization": f"Bearer {token}"}).status_code for _ in range(4)}
    assert 429 not in statuses


@pytest.mark.parametrize("text, parsed", [("600/minute", (600, 60)), ("5/s", (5, 1)), ("", None),
                                           ("10/day", (10, 86400))])
def test_rates_parse(text, parsed):
    assert parse_rate(text) == parsed


def test_a_bad_rate_stops_start_up(monkeypatch):
    from django.core.exceptions import ImproperlyConfigured

    from console import env

    monkeypatch.setenv("API_RATE_LIMIT_TOKEN", "lots")
    with pytest.raises(ImproperlyConfigured, match="API_RATE_LIMIT_TOKEN"):
        env.rate("API_RATE_LIMIT_TOKEN", "600/minute")
