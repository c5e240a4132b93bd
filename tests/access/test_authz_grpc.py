"""The gRPC ext_authz service (``envoy.service.auth.v3.Authorization/Check``) and the lean HTTP
check (``console.access.authz.wsgi``) answer every request exactly as the console's HTTP check
does: same status, same principal header, same audited reason; a revocation denies at once in
both; the gRPC server reports its health by the gRPC health protocol."""

from __future__ import annotations

import io
import threading
import time
from datetime import timedelta
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import grpc
import pytest
import time_machine
from django.utils import timezone
from envoy.service.auth.v3 import attribute_context_pb2, external_auth_pb2, external_auth_pb2_grpc
from google.rpc import code_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from audit.models import AuditEvent
from console.access import grants, tokens
from console.access.authz import allows, grpc_server
from console.access.authz.decision import clear_cached_decisions
from tests.access.test_authz import PREDICT, _fresh_decision_cache, envoy_check, infer_token  # noqa: F401 - autouse fixture
from tests.console.access_factories import endpoint_in, project_with_model

HOST = "scorer.fraud.example.com"

pytestmark = pytest.mark.django_db


def check_request(host: str, path: str = PREDICT, *, token: str | None = None, method: str = "POST",
                  extra: dict | None = None) -> external_auth_pb2.CheckRequest:
    """A CheckRequest as Envoy's ext_authz gRPC filter builds it: the path as sent (with the
    query), the host, and the request's headers (lower-case, pseudo-headers included)."""
    headers = {":authority": host, ":method": method, ":path": path, "content-length": "0"}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    headers.update(extra or {})
    http = attribute_context_pb2.AttributeContext.HttpRequest(
        method=method, host=host, path=path, headers=headers, protocol="HTTP/1.1", scheme="http")
    return external_auth_pb2.CheckRequest(
        attributes=attribute_context_pb2.AttributeContext(request=attribute_context_pb2.AttributeContext.Request(
            http=http)))


class _Context:
    def is_active(self):
        return True


def grpc_check(host: str, path: str = PREDICT, **kwargs) -> external_auth_pb2.CheckResponse:
    return grpc_server.AuthorizationService().Check(check_request(host, path, **kwargs), _Context())


def lean_check(host: str, path: str = PREDICT, *, token: str | None = None, method: str = "POST",
               extra: dict | None = None) -> tuple[int, dict]:
    """The lean WSGI app, called as gunicorn calls it (``RAW_URI`` is the target as sent)."""
    from console.access.authz import wsgi

    raw, _, query = ("/authz/check" + path).partition("?")
    from urllib.parse import unquote

    environ = {"REQUEST_METHOD": method, "PATH_INFO": unquote(raw).encode().decode("latin-1"),
               "QUERY_STRING": query, "RAW_URI": "/authz/check" + path, "SERVER_NAME": "authz",
               "SERVER_PORT": "8080", "HTTP_HOST": host, "wsgi.input": io.BytesIO(b""), "wsgi.url_scheme": "http"}
    if token is not None:
        environ["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    for key, value in (extra or {}).items():
        environ["HTTP_" + key.upper().replace("-", "_")] = value
    answer = {}

    def start_response(status, headers):
        answer["status"] = int(status.split()[0])
        answer["headers"] = {k.lower(): v for k, v in headers}

    b"".join(wsgi.application(environ, start_response))
    return answer["status"], answer["headers"]


def grpc_outcome(response) -> tuple[int, str | None]:
    """(HTTP status Envoy answers with, the principal header it sets upstream)."""
    if response.status.code == code_pb2.OK:
        headers = {h.header.key: h.header.value for h in response.ok_response.headers}
        return 200, headers.get("x-console-principal")
    return response.denied_response.status.code, None


def last_denial_reason() -> str | None:
    event = AuditEvent.objects.filter(source="authz", action="infer.authorize").order_by("-id").first()
    return event.details["reason"] if event else None


@pytest.fixture
def fraud():
    project, _ = project_with_model("fraud")
    return project


@pytest.fixture
def scorer(fraud):
    return endpoint_in(fraud, "scorer")


# --- parity with the HTTP check ------------------------------------------------------------------------

def _cases(alice, bob, fraud, scorer):
    """(label, host, path, token, extra) for the same requests sent to every check."""
    grants.grant_create(actor=None, role="caller", target=fraud, user=alice, reason="test")
    elsewhere, _ = project_with_model("elsewhere")
    endpoint_in(elsewhere, "other")
    expiring = timezone.now() + timedelta(seconds=5)
    carol = tokens.token_create(actor=bob, user=bob, name="c", scopes=["infer"])[1]
    grants.grant_create(actor=None, role="caller", target=elsewhere, user=bob, reason="short", expires_at=expiring)
    good = infer_token(alice)
    return expiring, [
        ("caller", HOST, PREDICT, good, None),
        ("caller, query", HOST, "/v2/models/scorer/infer?trace=1", good, None),
        ("caller, path routed", "gateway.example.com", "/serving/fraud/scorer/v1/models/scorer:predict", good, None),
        ("no token", HOST, PREDICT, None, None),
        ("wrong token", HOST, PREDICT, "icn_abcdefgh_" + "x" * 43, None),
        ("malformed token", HOST, PREDICT, "nonsense", None),
        ("forged principal, no token", HOST, PREDICT, None, {"x-console-principal": "admin"}),
        ("forged principal, caller", HOST, PREDICT, good, {"x-console-principal": "admin"}),
        ("outsider", HOST, PREDICT, carol, {"x-console-principal": "alice"}),
        ("expired grant", "other.elsewhere.example.com", PREDICT, carol, None),
        ("token without infer", HOST, PREDICT, infer_token(alice, ("read",)), None),
        ("unknown host", "nothing.fraud.example.com", PREDICT, good, None),
        ("dot segment", "gateway.example.com", "/serving/fraud/other/../scorer/v1/x", good, None),
        ("encoded slash", HOST, "/v1/models/scorer%2F..%2Fx:predict", good, None),
    ]


def test_grpc_and_lean_http_answer_every_request_as_the_http_check_does(alice, bob, fraud, scorer):
    expiring, cases = _cases(alice, bob, fraud, scorer)
    seen = set()
    with time_machine.travel(expiring + timedelta(seconds=1), tick=False):
        for label, host, path, token, extra in cases:
            clear_cached_decisions()
            http = envoy_check(host, path, token=token, extra=extra)
            http_reason = last_denial_reason() if http.status_code != 200 else None
            clear_cached_decisions()
            outcome = grpc_outcome(grpc_check(host, path, token=token, extra=extra))
            grpc_reason = last_denial_reason() if outcome[0] != 200 else None
            clear_cached_decisions()
            lean_status, lean_headers = lean_check(host, path, token=token, extra=extra)
            lean_reason = last_denial_reason() if lean_status != 200 else None
            expected = (http.status_code, http.headers.get("x-console-principal"))
            assert outcome == expected, label
            assert (lean_status, lean_headers.get("x-console-principal")) == expected, label
            assert grpc_reason == http_reason == lean_reason, label
            seen.add(http.status_code)
    assert seen == {200, 401, 403}
    assert grpc_outcome(grpc_check(HOST, token=cases[0][3], extra={"x-console-principal": "admin"})) == (200, "alice")


def test_grpc_denials_carry_the_http_checks_headers_and_body(alice, fraud, scorer):
    unauthenticated = grpc_check(HOST)
    assert unauthenticated.status.code == code_pb2.UNAUTHENTICATED
    headers = {h.header.key: h.header.value for h in unauthenticated.denied_response.headers}
    assert headers["www-authenticate"].startswith("Bearer")
    http = envoy_check(HOST)
    assert unauthenticated.denied_response.body == http.content.decode()
    forbidden = grpc_check(HOST, token=infer_token(alice))
    assert forbidden.status.code == code_pb2.PERMISSION_DENIED
    assert forbidden.denied_response.status.code == 403
    assert "www-authenticate" not in {h.header.key for h in forbidden.denied_response.headers}


def test_each_principal_gets_an_ok_answer_naming_itself_even_once_the_built_answers_are_recycled(monkeypatch):
    from console.access.authz.decision import Decision

    monkeypatch.setattr(grpc_server, "_allowed", {})
    monkeypatch.setattr(grpc_server, "_ALLOWED_MAX", 2)

    def principal_of(name: str) -> str:
        answer = grpc_server.check_response(Decision(200, "allowed", principal=name))
        assert answer.status.code == code_pb2.OK
        return {h.header.key: h.header.value for h in answer.ok_response.headers}["x-console-principal"]

    for name in ["alice", "bob", "alice", "carol", "dave", "bob", "alice"]:  # past the bound twice
        assert principal_of(name) == name
    assert len(grpc_server._allowed) <= 2


def test_grpc_allows_are_audited_like_http_allows(alice, fraud, scorer):
    grants.grant_create(actor=None, role="caller", target=fraud, user=alice, reason="test")
    token = infer_token(alice)
    for _ in range(3):
        assert grpc_outcome(grpc_check(HOST, token=token))[0] == 200
    assert allows.allows_drain() == 3
    event = AuditEvent.objects.get(source="authz", action="infer.allow")
    assert event.actor_name == "alice" and event.details["count"] == 3 and event.target_repr == "fraud/scorer"


def test_an_allow_that_cannot_be_committed_is_unavailable_on_grpc_and_503_on_the_lean_app(
        alice, fraud, scorer, monkeypatch):
    from django.db import OperationalError

    grants.grant_create(actor=None, role="caller", target=fraud, user=alice, reason="test")
    token = infer_token(alice)

    def broken(rows):
        raise OperationalError("the database is gone")

    monkeypatch.setattr(allows, "_insert", broken)
    answer = grpc_check(HOST, token=token)
    assert answer.status.code == code_pb2.UNAVAILABLE and not answer.HasField("ok_response")
    assert grpc_outcome(answer) == (503, None)
    status, headers = lean_check(HOST, token=token)
    assert status == 503 and "x-console-principal" not in headers


def test_the_lean_app_answers_nothing_but_checks_and_healthz(alice, fraud, scorer):
    from console.access.authz import wsgi

    def get(path):
        answer = {}
        body = b"".join(wsgi.application({"REQUEST_METHOD": "GET", "PATH_INFO": path, "HTTP_HOST": "x"},
                                         lambda status, headers: answer.update(status=int(status.split()[0]))))
        return answer["status"], body

    assert get("/healthz")[0] == 200
    for path in ("/", "/admin/", "/api/v1/endpoints/", "/authz/checkx", "/metrics"):
        assert get(path)[0] == 404, path


# --- over the network ----------------------------------------------------------------------------------

class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):
        pass


class _ThreadedWSGIServer(WSGIServer):
    daemon_threads = True


def close_server_connections() -> None:
    """The servers' threads keep their database connections (as in production); on PostgreSQL
    end them, or the test database cannot be dropped at the end of the run."""
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                           "WHERE datname = current_database() AND pid <> pg_backend_pid()")


@pytest.fixture
def servers():
    """The gRPC server and the lean HTTP app, each listening on loopback in this process."""
    from console.access.authz import wsgi

    server, port, reporter = grpc_server.build_server("127.0.0.1:0", threads=4, reuse_port=False)
    server.start()
    reporter.start()
    http = make_server("127.0.0.1", 0, wsgi.application, server_class=_ThreadedWSGIServer, handler_class=_QuietHandler)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    yield channel, http.server_address[1], reporter
    channel.close()
    http.shutdown()
    reporter.stop()
    server.stop(grace=None)
    close_server_connections()


def _over_http(port: int, token: str) -> int:
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    connection.request("POST", "/authz/check" + PREDICT, headers={"Host": HOST, "Authorization": f"Bearer {token}"})
    status = connection.getresponse().status
    connection.close()
    return status


def _over_grpc(channel, token: str) -> int:
    stub = external_auth_pb2_grpc.AuthorizationStub(channel)
    return grpc_outcome(stub.Check(check_request(HOST, token=token), timeout=5))[0]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("revoke", ["grant", "token"])
def test_a_revoked_grant_or_token_is_denied_by_both_servers_within_a_second(servers, alice, fraud, scorer, revoke):
    channel, port, _ = servers
    grant = grants.grant_create(actor=None, role="caller", target=fraud, user=alice, reason="test")
    token_row, token = tokens.token_create(actor=alice, user=alice, name="t", scopes=["infer"])
    for _ in range(2):  # the second answer of each comes from the decision cache
        assert _over_grpc(channel, token) == 200
        assert _over_http(port, token) == 200
    if revoke == "grant":
        grants.grant_revoke(actor=None, grant=grant)
    else:
        tokens.token_revoke(actor=alice, token=token_row)
    revoked_at = time.monotonic()
    expected = 403 if revoke == "grant" else 401
    denied = {"grpc": False, "http": False}
    while time.monotonic() - revoked_at < 1 and not all(denied.values()):
        denied["grpc"] = denied["grpc"] or _over_grpc(channel, token) == expected
        denied["http"] = denied["http"] or _over_http(port, token) == expected
    assert denied == {"grpc": True, "http": True}, "not denied by both servers within 1 s"


@pytest.mark.django_db(transaction=True)
def test_the_grpc_server_reports_serving_by_the_grpc_health_protocol(servers):
    channel, _, reporter = servers
    stub = health_pb2_grpc.HealthStub(channel)
    for service in ("", "envoy.service.auth.v3.Authorization"):
        answer = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING, service
    with pytest.raises(grpc.RpcError) as unknown:
        stub.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=5)
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    reporter.stop()  # shutting down: Envoy and Kubernetes stop sending checks
    answer = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
    assert answer.status == health_pb2.HealthCheckResponse.NOT_SERVING


def test_the_health_status_follows_the_database(monkeypatch):
    from grpc_health.v1 import health

    servicer = health.HealthServicer()
    reporter = grpc_server.HealthReporter(servicer)
    monkeypatch.setattr(grpc_server, "_database_answers", lambda: False)
    reporter.set(grpc_server._database_answers())
    request = health_pb2.HealthCheckRequest(service="envoy.service.auth.v3.Authorization")
    assert servicer.Check(request, None).status == health_pb2.HealthCheckResponse.NOT_SERVING
    monkeypatch.setattr(grpc_server, "_database_answers", lambda: True)
    reporter.set(grpc_server._database_answers())
    assert servicer.Check(request, None).status == health_pb2.HealthCheckResponse.SERVING
