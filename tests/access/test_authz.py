"""The inference authorization endpoint, called as Envoy's ext_authz HTTP filter calls it: the
original method and host, the path behind the provider's ``pathPrefix`` (``/authz/check``),
only the forwarded ``authorization`` header, no body, no cookies."""

from __future__ import annotations

import io
import re
from datetime import timedelta

import pytest
import time_machine
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from console.access import grants, services, tokens
from console.access.authz import allows, cache, http, routing
from console.access.authz import decision as authz_decision
from console.access.authz.decision import clear_cached_decisions
from tests.console.access_factories import endpoint_in, project_with_model
from tests.console.matrix_world import build_world
from tests.console.permission_table import PERSONAS
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

PREDICT = "/v1/models/scorer:predict"


@pytest.fixture(autouse=True)
def _fresh_decision_cache():
    clear_cached_decisions()
    yield
    clear_cached_decisions()


def envoy_check(host: str, path: str = PREDICT, *, token: str | None = None, method: str = "POST",
                extra: dict | None = None, raw: bool = True):
    """One check request shaped as Envoy sends it (no cookies, no body), served as gunicorn
    serves it: the request target as sent in ``RAW_URI`` (``raw=False``: a server that reports
    only the decoded path, e.g. runserver)."""
    headers = {"host": host, "content-length": "0", "x-request-id": "req-1"}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    headers.update(extra or {})
    environ = {"RAW_URI": "/authz/check" + path} if raw else {}
    return Client().generic(method, "/authz/check" + path, headers=headers, **environ)


@pytest.fixture
def fraud():
    project, _ = project_with_model("fraud")
    return project


@pytest.fixture
def scorer(fraud):
    return endpoint_in(fraud, "scorer")


def infer_token(user, scopes=("infer",)) -> str:
    return tokens.token_create(actor=user, user=user, name="caller", scopes=list(scopes))[1]


@pytest.fixture
def caller(alice, fraud):
    grants.grant_create(actor=None, role="caller", target=fraud, user=alice, reason="test")
    return alice


# --- allow / deny ------------------------------------------------------------------------------------

def test_a_caller_is_allowed_and_named_for_the_upstream(caller, scorer):
    response = envoy_check("scorer.fraud.example.com", token=infer_token(caller))
    assert response.status_code == 200
    assert response["x-console-principal"] == "alice"


def test_without_a_token_or_with_a_bad_one_the_answer_is_401(caller, scorer):
    for token in (None, "nonsense", "icn_abcdefgh_" + "x" * 43):
        response = envoy_check("scorer.fraud.example.com", token=token)
        assert response.status_code == 401
        assert response["WWW-Authenticate"].startswith("Bearer")
        assert "x-console-principal" not in response


def test_someone_without_the_caller_permission_gets_403(bob, fraud, scorer):
    grants.grant_create(actor=None, role="deployer", target=fraud, user=bob, reason="deploys, does not call")
    assert envoy_check("scorer.fraud.example.com", token=infer_token(bob)).status_code == 403


def test_a_token_without_the_infer_scope_gets_403(caller, scorer):
    assert envoy_check("scorer.fraud.example.com", token=infer_token(caller, ("read", "deploy"))).status_code == 403


def test_an_unknown_endpoint_host_gets_403(caller, scorer):
    assert envoy_check("nothing.fraud.example.com", token=infer_token(caller)).status_code == 403


def test_a_forged_principal_header_is_ignored(caller, scorer, bob, admin_user):
    forged = {"x-console-principal": "admin"}
    assert envoy_check("scorer.fraud.example.com", extra=forged).status_code == 401
    assert envoy_check("scorer.fraud.example.com", token=infer_token(bob), extra=forged).status_code == 403
    allowed = envoy_check("scorer.fraud.example.com", token=infer_token(caller), extra=forged)
    assert allowed.status_code == 200 and allowed["x-console-principal"] == "alice"


def test_sessions_count_for_nothing(client, caller, scorer):
    client.force_login(caller)
    response = client.post("/authz/check" + PREDICT, headers={"host": "scorer.fraud.example.com"})
    assert response.status_code == 401


def test_any_method_and_query_is_checked_the_same_way(caller, scorer):
    token = infer_token(caller)
    for method in ("GET", "POST", "PUT", "DELETE", "OPTIONS"):
        response = envoy_check("scorer.fraud.example.com", "/v2/models/scorer/infer?trace=1", token=token,
                               method=method)
        assert response.status_code == 200, method


@pytest.mark.parametrize("host", [
    "scorer.fraud.example.com",                 # Knative
    "SCORER.fraud.example.com:443",             # case and port do not matter
    "scorer-fraud.example.com",                 # Standard: <name>-<namespace>.<domain>
    "scorer-predictor.fraud.example.com",       # Knative predictor component
    "scorer-predictor-fraud.example.com",       # Standard predictor
    "scorer.fraud.svc.cluster.local",           # in-cluster
    "scorer-predictor.fraud.svc.cluster.local",
])
def test_every_host_kserve_serves_an_endpoint_under_identifies_it(caller, scorer, host):
    assert envoy_check(host, token=infer_token(caller)).status_code == 200


def test_a_custom_status_url_host_identifies_the_endpoint(caller, fraud):
    endpoint_in(fraud, "custom", url="https://models.acme.io")
    assert envoy_check("models.acme.io", "/v1/models/custom:predict", token=infer_token(caller)).status_code == 200


def test_path_based_routing_identifies_the_endpoint_by_its_prefix(caller, scorer, bob):
    path = "/serving/fraud/scorer/v1/models/scorer:predict"
    assert envoy_check("gateway.example.com", path, token=infer_token(caller)).status_code == 200
    assert envoy_check("gateway.example.com", path, token=infer_token(bob)).status_code == 403
    assert envoy_check("gateway.example.com", "/serving/fraud/missing/x", token=infer_token(caller)).status_code == 403


def test_the_other_projects_endpoint_is_denied_even_under_a_known_host_form(caller, scorer, bob):
    elsewhere, _ = project_with_model("elsewhere")
    endpoint_in(elsewhere, "scorer")
    token = infer_token(caller)
    assert envoy_check("scorer.elsewhere.example.com", token=token).status_code == 403
    assert envoy_check("scorer-elsewhere.example.com", token=token).status_code == 403


def test_an_ambiguous_standard_host_is_refused_rather_than_guessed(alice, admin_user):
    b_c, _ = project_with_model("b-c")
    b, _ = project_with_model("b")
    # "a-b" in namespace "c"? "a" in namespace "b-c"? Both read as a-b-c.example.com.
    c, _ = project_with_model("c")
    endpoint_in(c, "a-b", url="")
    endpoint_in(b_c, "a", url="")
    token = infer_token(admin_user)
    assert envoy_check("a-b-c.example.com", token=token).status_code == 403


def test_platform_admins_may_call_every_endpoint(admin_user, scorer):
    assert envoy_check("scorer.fraud.example.com", token=infer_token(admin_user)).status_code == 200


# --- the review's bypasses: host and path disagreeing, un-normalised paths ---------------------------------
# bob may call fraud-detection/iris, not fraud-detection/transaction-amount.

IRIS_HOST = "iris.fraud-detection.example.com"
AMOUNT_HOST = "transaction-amount.fraud-detection.example.com"
AMOUNT_PREDICT = "/v1/models/transaction-amount:predict"


@pytest.fixture
def fraud_detection():
    project, _ = project_with_model("fraud-detection")
    return project, endpoint_in(project, "iris"), endpoint_in(project, "transaction-amount")


@pytest.fixture
def bob_calls_iris(bob, fraud_detection):
    _project, iris, _amount = fraud_detection
    grants.grant_create(actor=None, role="caller", target=iris, user=bob, reason="iris only")
    return infer_token(bob)


def _denials() -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(source="authz", action="infer.authorize", outcome="denied").order_by("id"))


def _assert_denied_and_audited(response, *, reason: str, actor: str = "bob") -> AuditEvent:
    assert response.status_code == 403
    assert "x-console-principal" not in response
    event = _denials()[-1]
    assert event.actor_name == actor and event.details["status"] == 403
    assert reason in event.details["reason"], event.details["reason"]
    return event


def test_the_legitimate_host_only_and_path_only_calls_still_pass(bob_calls_iris):
    token = bob_calls_iris
    for host, path in [
        (IRIS_HOST, "/v1/models/iris:predict"),                                    # host only
        ("iris-fraud-detection.example.com", "/v2/models/iris/infer"),             # Standard host
        ("iris-predictor.fraud-detection.svc.cluster.local", "/v1/models/iris:predict"),
        ("example.com", "/serving/fraud-detection/iris/v1/models/iris:predict"),   # path only
        ("gateway.example.com", "/serving/fraud-detection/iris/v2/models/iris/infer"),
        (IRIS_HOST, "/serving/fraud-detection/iris/v1/models/iris:predict"),       # both, agreeing
        ("iris-predictor-fraud-detection.example.com", "/serving/fraud-detection/iris/v1/models/iris:predict"),
        (IRIS_HOST, "/v1/models/iris.v2:predict"),                                  # a dot inside a segment
        (IRIS_HOST, "/v2/models/iris/"),                                            # a trailing slash
        (IRIS_HOST, "/v1/models/iris:predict?next=%2F..%2Fx"),                      # the query is not the path
    ]:
        for raw in (True, False):
            response = envoy_check(host, path, token=token, raw=raw)
            assert response.status_code == 200, (host, path, raw)
            assert response["x-console-principal"] == "bob"
    assert not _denials()


def test_host_naming_one_endpoint_and_path_another_is_refused_and_audited(bob_calls_iris):
    # The review's request: it used to be allowed as iris (the path won) while the gateway
    # may route it by its host to transaction-amount.
    response = envoy_check(AMOUNT_HOST, "/serving/fraud-detection/iris/v1/models/x:predict", token=bob_calls_iris)
    event = _assert_denied_and_audited(
        response, reason=f"the host {AMOUNT_HOST} names fraud-detection/transaction-amount but the path names "
                         "fraud-detection/iris")
    assert event.details["host"] == AMOUNT_HOST
    assert event.details["path"] == "/serving/fraud-detection/iris/v1/models/x:predict"


def test_a_disagreement_is_refused_whichever_way_round_and_whoever_asks(bob_calls_iris, admin_user):
    response = envoy_check(IRIS_HOST, "/serving/fraud-detection/transaction-amount" + AMOUNT_PREDICT,
                           token=bob_calls_iris)
    _assert_denied_and_audited(response, reason="refused rather than guessed")
    # Not a permission question: a platform admin, who may call both, is refused too.
    response = envoy_check(AMOUNT_HOST, "/serving/fraud-detection/iris/v1/models/x:predict",
                           token=infer_token(admin_user))
    _assert_denied_and_audited(response, reason="refused rather than guessed", actor="admin")


def test_a_host_or_path_naming_something_that_does_not_match_the_other_is_refused(bob_calls_iris, fraud_detection):
    project, _iris, _amount = fraud_detection
    endpoint_in(project, "custom", url="https://models.acme.io")
    token = bob_calls_iris
    iris_path = "/serving/fraud-detection/iris/v1/models/iris:predict"
    # A host in KServe's form for an endpoint that does not exist (yet) in the project.
    _assert_denied_and_audited(envoy_check("ghost.fraud-detection.example.com", iris_path, token=token),
                               reason="names fraud-detection/ghost but the path names fraud-detection/iris")
    _assert_denied_and_audited(envoy_check("ghost-fraud-detection.example.com", iris_path, token=token),
                               reason="refused rather than guessed")
    # Another endpoint's predictor host and its custom status URL host.
    _assert_denied_and_audited(envoy_check("transaction-amount-predictor.fraud-detection.svc.cluster.local",
                                           iris_path, token=token), reason="refused rather than guessed")
    _assert_denied_and_audited(envoy_check("models.acme.io", iris_path, token=token),
                               reason="names fraud-detection/custom but the path names fraud-detection/iris")
    # A path naming no endpoint no longer falls back to the host (it used to: allowed as iris).
    _assert_denied_and_audited(envoy_check(IRIS_HOST, "/serving/fraud-detection/ghost/v1/models/x:predict",
                                           token=token), reason="no endpoint is served")


UNNORMALISED = {
    # the review's three
    "dot-dot": "/serving/fraud-detection/iris/../transaction-amount" + AMOUNT_PREDICT,
    "encoded-dot-dot": "/serving/fraud-detection/iris/%2e%2e/transaction-amount" + AMOUNT_PREDICT,
    "encoded-slashes": "/serving/fraud-detection/iris%2F..%2Ftransaction-amount/v1",
    # their spellings
    "encoded-dot-dot-upper": "/serving/fraud-detection/iris/%2E%2E/transaction-amount" + AMOUNT_PREDICT,
    "half-encoded-dot-dot": "/serving/fraud-detection/iris/.%2e/transaction-amount" + AMOUNT_PREDICT,
    "encoded-slashes-lower": "/serving/fraud-detection/iris%2f..%2ftransaction-amount/v1",
    "encoded-slash-alone": "/serving/fraud-detection/iris%2Ftransaction-amount" + AMOUNT_PREDICT,
    "encoded-backslashes": "/serving/fraud-detection/iris%5C..%5Ctransaction-amount/v1",
    "encoded-backslashes-lower": "/serving/fraud-detection/iris%5c..%5ctransaction-amount/v1",
    "backslashes": "/serving/fraud-detection/iris\\..\\transaction-amount/v1",
    "dot": "/serving/fraud-detection/iris/./../transaction-amount" + AMOUNT_PREDICT,
    "trailing-dot-dot": "/serving/fraud-detection/iris/v1/models/..",
    "double-encoded-dot-dot": "/serving/fraud-detection/iris/%252e%252e/transaction-amount" + AMOUNT_PREDICT,
    "double-slash-in-front": "//serving/fraud-detection/transaction-amount" + AMOUNT_PREDICT,
    "double-slash-inside": "/serving/fraud-detection//iris/v1/models/iris:predict",
    "encoded-routing-prefix": "/serving/fraud-detection/%69ris/v1/models/iris:predict",
}


@pytest.mark.parametrize("path", UNNORMALISED.values(), ids=UNNORMALISED.keys())
@pytest.mark.parametrize("host", ["example.com", IRIS_HOST])
def test_an_unnormalised_path_is_refused_and_audited(bob_calls_iris, host, path):
    response = envoy_check(host, path, token=bob_calls_iris)
    event = _assert_denied_and_audited(response, reason="the path is not normalised")
    # What Envoy sent, when Django's decoded path differs from it.
    assert event.details.get("raw_path") == ("/authz/check" + path if "%" in path else None)


@pytest.mark.parametrize("path", [
    p for name, p in UNNORMALISED.items() if name not in ("encoded-slash-alone", "encoded-routing-prefix")])
def test_without_the_raw_path_the_decoded_one_is_still_refused(bob_calls_iris, path):
    # Servers that report only the decoded path (runserver): %2F reads as "/" there, so
    # iris%2Ftransaction-amount is indistinguishable from iris/transaction-amount (which names
    # iris upstream too once Envoy decodes slashes), and %69ris from iris; every other
    # spelling still shows.
    response = envoy_check("example.com", path, token=bob_calls_iris, raw=False)
    _assert_denied_and_audited(response, reason="the path is not normalised")


def test_a_cached_allow_for_iris_is_not_reused_for_a_path_that_only_starts_with_it(bob_calls_iris):
    token = bob_calls_iris
    assert envoy_check("example.com", "/serving/fraud-detection/iris/v1/models/iris:predict",
                       token=token).status_code == 200
    # Same token, host and routing prefix: the cache key would match.
    response = envoy_check("example.com", UNNORMALISED["dot-dot"], token=token)
    _assert_denied_and_audited(response, reason="dot segment")


def test_an_unnormalised_path_without_a_valid_token_is_still_401(fraud_detection):
    for token in (None, "icn_abcdefgh_" + "x" * 43):
        response = envoy_check("example.com", UNNORMALISED["dot-dot"], token=token)
        assert response.status_code == 401
    assert [e.details["status"] for e in _denials()] == [401, 401]


@pytest.mark.parametrize(("path", "raw", "refused"), [
    ("/v1/models/iris:predict", None, False),
    ("/", "/authz/check/", False),
    ("/openai/v1/chat/completions", "/authz/check/openai/v1/chat/completions", False),
    ("/v1/models/iris:predict", "/authz/check/v1/models/iris%3Apredict", False),  # encoded, but not a separator
    ("/serving/fraud-detection/iris/x", "/authz/check/serving/fraud-detection/iris/x", False),
    ("/serving/fraud-detection/iris/x", "/authz/check/serving/fraud-detection/iri%73/x", True),
    ("/a/../b", None, True),
    ("/a/b", "/authz/check/a/%2E./b", True),
    ("/a/b", "/authz/check//a/b", True),
    ("/a\\b", None, True),
])
def test_path_refusal(path, raw, refused):
    assert bool(routing.path_refusal(path, raw)) is refused


def test_the_raw_path_is_read_from_gunicorn_uwsgi_and_asgi():
    from django.test import RequestFactory

    factory = RequestFactory()
    gunicorn = factory.get("/authz/check/a/../b", RAW_URI="/authz/check/a/%2e%2e/b?x=%2F")
    assert http.raw_request_path(gunicorn) == "/authz/check/a/%2e%2e/b"
    uwsgi = factory.get("/authz/check/a", REQUEST_URI="http://h.example.com/authz/check/a%2Fb?q")
    assert http.raw_request_path(uwsgi) == "/authz/check/a%2Fb"
    assert http.raw_request_path(factory.get("/authz/check/a")) is None
    asgi = factory.get("/authz/check/a")
    asgi.scope = {"raw_path": b"/authz/check/a%2fb"}
    assert http.raw_request_path(asgi) == "/authz/check/a%2fb"


# --- caching and invalidation -----------------------------------------------------------------------------

def test_a_warm_allow_costs_one_query_to_decide_and_one_insert_to_stage(caller, scorer, django_assert_num_queries):
    token = infer_token(caller)
    envoy_check("scorer.fraud.example.com", token=token)
    # Per-process cache: one query for the access version row; shared (Redis) cache: the
    # version lives in the cache too, so none. Then the allow's one-row INSERT (staged).
    expected = (0 if cache.cache_is_shared() else 1) + 1
    with django_assert_num_queries(expected) as queries:
        assert envoy_check("scorer.fraud.example.com", token=token).status_code == 200
    assert queries.captured_queries[-1]["sql"].startswith("INSERT INTO")


def test_a_cold_decision_costs_a_bounded_number_of_queries(caller, scorer, django_assert_max_num_queries):
    token = infer_token(caller)
    with django_assert_max_num_queries(14):
        assert envoy_check("scorer.fraud.example.com", token=token).status_code == 200


def _cached_then(action, caller, scorer, expected: int):
    token = infer_token(caller)
    assert envoy_check("scorer.fraud.example.com", token=token).status_code == 200
    decision = authz_decision.decide(host="scorer.fraud.example.com", path=PREDICT, authorization=f"Bearer {token}")
    assert decision.cached
    action(token)
    assert envoy_check("scorer.fraud.example.com", token=token).status_code == expected


def test_a_revoked_token_denies_at_once_even_when_cached(caller, scorer):
    def revoke(plaintext):
        _, token = tokens.authenticate_token(plaintext)
        tokens.token_revoke(actor=caller, token=token)

    _cached_then(revoke, caller, scorer, 401)


def test_a_deactivated_user_is_denied_at_once_even_when_cached(caller, scorer, admin_user):
    _cached_then(lambda _t: services.user_deactivate(actor=admin_user, user=caller), caller, scorer, 401)


def test_a_revoked_grant_denies_at_once_even_when_cached(caller, scorer, fraud):
    def revoke(_token):
        grants.grant_revoke(actor=None, grant=grants.grants_on(fraud).get(user=caller))

    _cached_then(revoke, caller, scorer, 403)


def test_leaving_a_team_denies_at_once_and_joining_allows_at_once(alice, admin_user, fraud, scorer):
    team = services.team_create(actor=admin_user, name="callers")
    grants.grant_create(actor=admin_user, role="caller", target=fraud, group=team, reason="team")
    token = infer_token(alice)
    assert envoy_check("scorer.fraud.example.com", token=token).status_code == 403
    services.team_add_member(actor=admin_user, team=team, user=alice)
    assert envoy_check("scorer.fraud.example.com", token=token).status_code == 200
    services.team_remove_member(actor=admin_user, team=team, user=alice)
    assert envoy_check("scorer.fraud.example.com", token=token).status_code == 403


def test_a_membership_change_outside_the_services_also_drops_cached_decisions(alice, fraud, scorer):
    from django.contrib.auth.models import Group

    team = Group.objects.create(name="callers")
    grants.grant_create(actor=None, role="caller", target=fraud, group=team, reason="team")
    alice.groups.add(team)
    token = infer_token(alice)
    assert envoy_check("scorer.fraud.example.com", token=token).status_code == 200
    team.user_set.remove(alice)  # e.g. in the Django admin
    assert envoy_check("scorer.fraud.example.com", token=token).status_code == 403


def test_a_cached_allow_ends_the_second_its_grant_expires(alice, fraud, scorer):
    expiry = timezone.now() + timedelta(seconds=2)
    grants.grant_create(actor=None, role="caller", target=fraud, user=alice, reason="short", expires_at=expiry)
    token = infer_token(alice)
    with time_machine.travel(expiry - timedelta(seconds=1), tick=False):
        assert envoy_check("scorer.fraud.example.com", token=token).status_code == 200
    with time_machine.travel(expiry, tick=False):
        assert envoy_check("scorer.fraud.example.com", token=token).status_code == 403


def test_a_cached_allow_ends_the_second_its_token_expires(caller, scorer):
    expiry = timezone.now() + timedelta(seconds=2)
    _, token = tokens.token_create(actor=caller, user=caller, name="short", scopes=["infer"], expires_at=expiry)
    with time_machine.travel(expiry - timedelta(seconds=1), tick=False):
        assert envoy_check("scorer.fraud.example.com", token=token).status_code == 200
    with time_machine.travel(expiry, tick=False):
        assert envoy_check("scorer.fraud.example.com", token=token).status_code == 401


def test_a_new_grant_turns_a_cached_denial_into_an_allow_at_once(alice, fraud, scorer):
    token = infer_token(alice)
    assert envoy_check("scorer.fraud.example.com", token=token).status_code == 403
    grants.grant_create(actor=None, role="caller", target=scorer, user=alice, reason="now")
    assert envoy_check("scorer.fraud.example.com", token=token).status_code == 200


# --- audit -------------------------------------------------------------------------------------------------

def test_every_denial_is_audited_with_its_reason(bob, scorer):
    token = infer_token(bob)
    for _ in range(2):  # the second answer comes from the cache and is audited too
        envoy_check("scorer.fraud.example.com", token=token)
    envoy_check("scorer.fraud.example.com")
    events = list(AuditEvent.objects.filter(source="authz", action="infer.authorize").order_by("id"))
    assert [e.outcome for e in events] == ["denied"] * 3
    assert events[0].actor_name == "bob" and events[0].target_repr == "fraud/scorer"
    assert "no live grant" in events[0].details["reason"] and events[0].details["status"] == 403
    assert events[2].actor_name == "(anonymous)" and events[2].details["status"] == 401
    assert events[0].request_id == "req-1"


def test_every_allow_is_staged_before_the_answer_and_drained_once_per_principal_endpoint_and_minute(
        caller, scorer, fraud):
    other = endpoint_in(fraud, "other")
    token = infer_token(caller)
    minute = timezone.now().replace(second=5, microsecond=0) + timedelta(minutes=1)
    with time_machine.travel(minute, tick=False):
        for _ in range(3):
            assert envoy_check("scorer.fraud.example.com", token=token).status_code == 200
        envoy_check("other.fraud.example.com", token=token)
    with time_machine.travel(minute + timedelta(seconds=30), tick=False):
        envoy_check("scorer.fraud.example.com", token=token, method="GET")
    with time_machine.travel(minute + timedelta(minutes=1), tick=False):
        envoy_check("scorer.fraud.example.com", token=token)
    # Each allow was a committed row before its 200; the trail has none of them yet.
    assert allows.staged_count() == 6
    assert not AuditEvent.objects.filter(action="infer.allow").exists()
    assert allows.allows_drain() == 6
    assert allows.staged_count() == 0 and allows.allows_drain() == 0  # taken once, never again
    events = AuditEvent.objects.filter(source="authz", action="infer.allow").order_by("occurred_at", "target_repr")
    assert [(e.target_repr, e.occurred_at, e.details["count"]) for e in events] == [
        ("fraud/other", minute.replace(second=0), 1), ("fraud/scorer", minute.replace(second=0), 4),
        ("fraud/scorer", minute.replace(second=0) + timedelta(minutes=1), 1)]
    scorer_event = events[1]
    assert scorer_event.actor_name == "alice" and scorer_event.outcome == "success"
    assert scorer_event.actor_id == str(caller.pk) and scorer_event.details["methods"] == ["GET", "POST"]
    assert scorer_event.details["first"] == minute.isoformat()
    assert scorer_event.details["last"] == (minute + timedelta(seconds=30)).isoformat()
    assert other.pk == int(events[0].target_id)


def test_an_allow_that_cannot_be_committed_is_answered_503_not_allowed(caller, scorer, monkeypatch):
    from django.db import OperationalError

    def broken(rows):
        raise OperationalError("the database is gone")

    monkeypatch.setattr(allows, "_insert", broken)
    response = envoy_check("scorer.fraud.example.com", token=infer_token(caller))
    assert response.status_code == 503
    assert "x-console-principal" not in response
    assert "could not be recorded" in response.content.decode()


# --- the check-access form and the authz endpoint agree -------------------------------------------------------

def _form_says(admin_client, user, endpoint) -> str:
    response = admin_client.get(reverse("access:check-access"), {
        "user": user.pk, "endpoint": f"{endpoint.project.name}/{endpoint.name}", "action": "infer"})
    assert response.status_code == 200
    return re.search(r'data-check-result="(\w+)"', response.content.decode()).group(1)


def test_the_check_form_and_the_authz_endpoint_agree_for_every_persona():
    world = build_world()
    admin_client = Client()
    admin_client.force_login(world.users["admin"])
    endpoints = [(world.endpoint, "scorer.matrix.example.com"), (world.other_endpoint, "secret-elsewhere.example.com")]
    seen = set()
    for persona in PERSONAS:
        user = world.users[persona]
        for endpoint, host in endpoints:
            if user is None:  # no principal: the form cannot name one, Envoy gets 401
                assert envoy_check(host).status_code == 401
                continue
            status = envoy_check(host, token=infer_token(user)).status_code
            form = _form_says(admin_client, user, endpoint)
            assert {200: "allowed", 403: "denied"}[status] == form, (persona, endpoint.name)
            seen.add((persona, endpoint.name, form))
    # the world is not trivial: callers, owners and the team of callers (the viewer is in it)
    # are allowed in their project only; deployers and auditors are not
    assert ("caller", "scorer", "allowed") in seen and ("viewer", "scorer", "allowed") in seen
    assert ("deployer", "scorer", "denied") in seen and ("auditor", "scorer", "denied") in seen
    assert ("caller", "secret", "denied") in seen and ("admin", "secret", "allowed") in seen


def test_the_fast_caller_check_agrees_with_the_chokepoint_for_every_persona_and_expiry():
    from console.permissions import can

    world = build_world()
    expiry = timezone.now() + timedelta(hours=1)
    late = UserFactory(username="late")
    team = services.team_create(actor=None, name="late-team", members=[late])
    grants.grant_create(actor=None, role="caller", target=world.project, group=team, reason="x", expires_at=expiry)
    users = [u for u in world.users.values() if u is not None] + [late]
    for moment in (timezone.now(), expiry):
        with time_machine.travel(moment, tick=False):
            for user in users:
                for endpoint in (world.endpoint, world.other_endpoint):
                    allowed, until = authz_decision.caller_access(user, endpoint, timezone.now())
                    assert allowed is can(user, endpoint, "infer"), (user.username, endpoint.name, moment)
                    if user == late and allowed:
                        assert until == expiry


def test_the_drain_command_and_task_write_staged_allows_to_the_trail(caller, scorer):
    from django.core.management import call_command

    from console.access.tasks import drain_allows_task

    token = infer_token(caller)
    for _ in range(2):
        assert envoy_check("scorer.fraud.example.com", token=token).status_code == 200
    out = io.StringIO()
    call_command("authz_allows_drain", stdout=out)
    assert out.getvalue().strip().splitlines() == ["shipped 0 allows from stopped processes' journals",
                                                   "drained 2 staged allows"]
    envoy_check("scorer.fraud.example.com", token=token)
    assert drain_allows_task() == 1
    assert sorted(e.details["count"] for e in AuditEvent.objects.filter(action="infer.allow")) == [1, 2]


def test_metrics_show_the_allows_waiting_to_be_drained_and_the_oldest_ones_age(caller, scorer):
    from prometheus_client.parser import text_string_to_metric_families

    def scraped() -> dict:
        text = Client(REMOTE_ADDR="127.0.0.1").get("/metrics").content.decode()
        return {s.name: s.value for family in text_string_to_metric_families(text) for s in family.samples}

    token = infer_token(caller)
    started = timezone.now()
    with time_machine.travel(started, tick=False):
        envoy_check("scorer.fraud.example.com", token=token)
        envoy_check("scorer.fraud.example.com", token=token)
    with time_machine.travel(started + timedelta(seconds=90), tick=False):
        metrics = scraped()
    assert metrics["console_authz_staged_allows"] == 2
    assert metrics["console_authz_staged_allows_oldest_age_seconds"] == 90
    allows.allows_drain()
    metrics = scraped()
    assert metrics["console_authz_staged_allows"] == 0 and metrics["console_authz_staged_allows_oldest_age_seconds"] == 0
