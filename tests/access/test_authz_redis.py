"""With Redis (REDIS_URL), decisions and the access version live in the shared cache: one
round trip per warm decision, no database query, and invalidation reaches every process."""

from __future__ import annotations

import os

import pytest
from django.core.cache import caches

from console.access import grants, tokens
from console.access.authz import cache, decision
from console.access.authz.decision import clear_cached_decisions
from tests.console.access_factories import endpoint_in, project_with_model

pytestmark = [pytest.mark.redis, pytest.mark.django_db]

PREDICT = "/v1/models/scorer:predict"


@pytest.fixture
def shared_cache(settings):
    settings.CACHES = {**settings.CACHES, "authz": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": os.environ.get("REDIS_URL", ""),
        "KEY_PREFIX": f"authz-test-{os.getpid()}"}}
    clear_cached_decisions()
    yield caches["authz"]
    clear_cached_decisions()


def test_warm_decisions_cost_no_query_and_revocation_reaches_them(shared_cache, alice,
                                                                  django_assert_num_queries):
    assert cache.cache_is_shared()
    project, _ = project_with_model("fraud")
    endpoint_in(project, "scorer")
    grant = grants.grant_create(actor=None, role="caller", target=project, user=alice, reason="x")
    token, plaintext = tokens.token_create(actor=alice, user=alice, name="x", scopes=["infer"])
    header = f"Bearer {plaintext}"
    assert decision.decide(host="scorer.fraud.example.com", path=PREDICT, authorization=header).status == 200
    with django_assert_num_queries(0):
        warm = decision.decide(host="scorer.fraud.example.com", path=PREDICT, authorization=header)
    assert warm.cached and warm.status == 200
    grants.grant_revoke(actor=None, grant=grant)
    assert decision.decide(host="scorer.fraud.example.com", path=PREDICT, authorization=header).status == 403
    grants.grant_create(actor=None, role="caller", target=project, user=alice, reason="again")
    assert decision.decide(host="scorer.fraud.example.com", path=PREDICT, authorization=header).status == 200
    tokens.token_revoke(actor=alice, token=token)
    assert decision.decide(host="scorer.fraud.example.com", path=PREDICT, authorization=header).status == 401


def test_a_lost_version_key_starts_a_new_version_instead_of_reusing_old_decisions(shared_cache, alice):
    project, _ = project_with_model("fraud")
    endpoint_in(project, "scorer")
    grants.grant_create(actor=None, role="caller", target=project, user=alice, reason="x")
    _, plaintext = tokens.token_create(actor=alice, user=alice, name="x", scopes=["infer"])
    header = f"Bearer {plaintext}"
    decision.decide(host="scorer.fraud.example.com", path=PREDICT, authorization=header)
    shared_cache.delete(cache.VERSION_KEY)  # e.g. evicted
    again = decision.decide(host="scorer.fraud.example.com", path=PREDICT, authorization=header)
    assert again.status == 200 and not again.cached
