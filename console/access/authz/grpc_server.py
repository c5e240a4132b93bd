"""Envoy's native ext_authz protocol: ``envoy.service.auth.v3.Authorization/Check`` over gRPC,
served by a process of its own (``python -m console.access.authz.grpc_server``).

It answers exactly as the HTTP check does (``check.authorize``: the same decision, cache,
invalidation, audit and metrics) and translates only the protocol: the request's method, host,
path (as sent, with its query) and ``authorization`` header come from
``attributes.request.http``; an allow is ``OK`` with ``x-console-principal`` set upstream
(overwriting whatever the client sent), a denial ``UNAUTHENTICATED``/``PERMISSION_DENIED``
with the same HTTP status, headers and body Envoy would get from the HTTP check.

Envoy's message types come from the published ``xds-protos`` package. Health follows the
gRPC health protocol (``grpc.health.v1.Health``): SERVING while the database answers, for
the whole server ("") and for the Authorization service; NOT_SERVING while shutting down.

One process runs a thread pool (Django's database connections are per thread); the GIL makes
it one core's worth, so ``--processes N`` starts N servers on the same port (SO_REUSEPORT,
the kernel spreads connections) for N cores.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import signal
import subprocess
import sys
import threading
from concurrent import futures
from urllib.parse import unquote

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc
from envoy.type.v3 import http_status_pb2
from google.rpc import code_pb2, status_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

logger = logging.getLogger(__name__)

SERVICE_NAME = external_auth_pb2.DESCRIPTOR.services_by_name["Authorization"].full_name
HEALTH_INTERVAL_SECONDS = 5
_OVERWRITE = base_pb2.HeaderValueOption.HeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD


_DENIAL_CODES = {401: code_pb2.UNAUTHENTICATED, 503: code_pb2.UNAVAILABLE}


def _header(key: str, value: str) -> base_pb2.HeaderValueOption:
    return base_pb2.HeaderValueOption(header=base_pb2.HeaderValue(key=key, value=value), append_action=_OVERWRITE)


def request_fields(request: external_auth_pb2.CheckRequest) -> dict:
    """The check's method, host, path (decoded and as sent), query and authorization header."""
    http = request.attributes.request.http
    authorization = http.headers.get("authorization")
    if authorization is None and http.HasField("header_map"):  # Envoy's encode_raw_headers
        for entry in http.header_map.headers:
            if entry.key.lower() == "authorization":
                authorization = entry.raw_value.decode("latin-1") if entry.raw_value else entry.value
                break
    raw, _, query = http.path.partition("?")
    host = http.host or http.headers.get(":authority", "")
    return {"method": http.method or "GET", "host": host, "path": unquote(raw), "raw_path": raw,
            "query": query, "authorization": authorization}


# The OK answer for each principal, built once: it depends on nothing else, and building the
# nested messages was a tenth of a warm check's Python time (profiled). Never mutated (grpcio
# only serialises it); bounded like the decision cache, cleared when full.
_allowed: dict[str, external_auth_pb2.CheckResponse] = {}
_ALLOWED_MAX = 100_000


def _allowed_response(principal: str) -> external_auth_pb2.CheckResponse:
    from console.access.authz.decision import PRINCIPAL_HEADER

    response = _allowed.get(principal)
    if response is None:
        if len(_allowed) >= _ALLOWED_MAX:
            _allowed.clear()
        response = _allowed[principal] = external_auth_pb2.CheckResponse(
            status=status_pb2.Status(code=code_pb2.OK),
            ok_response=external_auth_pb2.OkHttpResponse(headers=[_header(PRINCIPAL_HEADER, principal)]))
    return response


def check_response(decision) -> external_auth_pb2.CheckResponse:
    from console.access.authz.check import WWW_AUTHENTICATE, denial_body

    if decision.allowed:
        return _allowed_response(decision.principal)
    headers = [_header("content-type", "text/plain")]
    if decision.status == 401:
        headers.append(_header("www-authenticate", WWW_AUTHENTICATE))
    return external_auth_pb2.CheckResponse(
        status=status_pb2.Status(code=_DENIAL_CODES.get(decision.status, code_pb2.PERMISSION_DENIED)),
        denied_response=external_auth_pb2.DeniedHttpResponse(
            status=http_status_pb2.HttpStatus(code=decision.status), headers=headers, body=denial_body(decision)))


class AuthorizationService(external_auth_pb2_grpc.AuthorizationServicer):
    """``Check``: one inference request, decided as the HTTP check decides it."""

    def Check(self, request, context):  # noqa: N802 - the protocol's name
        from console.access.authz.check import authorize, recycle_connections

        # The request lifecycle Django's handler gives a view: drop connections that are too
        # old or broken before and after (CONN_MAX_AGE, health checks).
        recycle_connections()
        try:
            return check_response(authorize(**request_fields(request)))
        finally:
            recycle_connections()


def _database_answers() -> bool:
    from django.db import close_old_connections, connection

    try:
        close_old_connections()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception:  # noqa: BLE001 - any failure: not serving
        logger.warning("database check failed", exc_info=True)
        return False
    return True


class HealthReporter:
    """Keeps the health service's status in step with the database (every few seconds)."""

    def __init__(self, servicer: health.HealthServicer, interval: float = HEALTH_INTERVAL_SECONDS):
        self.servicer, self.interval = servicer, interval
        self.stopping = threading.Event()

    def set(self, serving: bool) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ("", SERVICE_NAME):
            self.servicer.set(name, status)

    def run(self) -> None:
        from django.db import connections

        while not self.stopping.wait(self.interval):
            self.set(_database_answers())
        connections.close_all()

    def start(self) -> None:
        self.set(_database_answers())
        threading.Thread(target=self.run, name="authz-grpc-health", daemon=True).start()

    def stop(self) -> None:
        self.stopping.set()
        self.set(False)


def build_server(bind: str, *, threads: int = 16, reuse_port: bool = True) -> tuple[grpc.Server, int, HealthReporter]:
    """A server (not yet started) with the Authorization and Health services, its port and
    the health reporter."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="authz-grpc"),
                         options=[("grpc.so_reuseport", 1 if reuse_port else 0),
                                  # Envoy keeps its connection; answer its keepalive pings.
                                  ("grpc.keepalive_permit_without_calls", 1),
                                  ("grpc.http2.min_ping_interval_without_data_ms", 10_000)])
    external_auth_pb2_grpc.add_AuthorizationServicer_to_server(AuthorizationService(), server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    port = server.add_insecure_port(bind)
    if port == 0:
        raise OSError(f"cannot bind {bind}")
    return server, port, HealthReporter(health_servicer)


STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


def block_stop_signals() -> None:
    """The stop signals are taken by the main thread with ``sigwait``, never by a handler: a
    handler that stops the server can be entered again by a second signal (a process group's
    SIGTERM plus the supervisor's forwarded one) and deadlock on a lock it already holds. They
    must be blocked before any thread starts (threads inherit the mask): a thread that does not
    block SIGTERM receives it with its default action, which ends the process on the spot —
    no drain, no journal shipped."""
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)


def serve(bind: str, *, threads: int) -> None:
    """Run one server until SIGTERM/SIGINT; then NOT_SERVING and drain the calls in flight
    (every allow already answered is durable: ``allows``), then ship the allow journal."""
    from console.access.authz.journal import close_journal
    from console.access.authz.journal import start as start_allow_journal

    block_stop_signals()  # main() did it before Django started its threads; a direct caller too
    server, port, reporter = build_server(bind, threads=threads)
    start_allow_journal()
    # Everything loaded so far lives as long as the process: out of the collector's sight, so a
    # full collection no longer walks ~140,000 objects (25–45 ms with the GIL held, measured —
    # a pause every check in flight waits through).
    gc.freeze()
    server.start()
    reporter.start()
    logger.warning("ext_authz gRPC server listening on %s (port %s, %s threads)", bind, port, threads)
    signal.sigwait(STOP_SIGNALS)
    reporter.stop()
    server.stop(grace=5).wait()
    # Every allow answered is in the journal: ship it and remove it on the way out.
    close_journal()


def _supervise(argv: list[str], processes: int) -> int:
    """Start ``processes`` servers on the same port and pass signals on; the first to exit
    ends the others (the pod restarts as a whole)."""
    children = [subprocess.Popen([sys.executable, "-m", "console.access.authz.grpc_server", *argv, "--processes", "1"])  # noqa: S603
                for _ in range(processes)]

    def forward(signum, frame):
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    while True:
        for child in children:
            try:
                code = child.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                continue
            forward(signal.SIGTERM, None)
            for other in children:
                other.wait()
            return code


def main(args: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bind", default=os.environ.get("AUTHZ_GRPC_BIND", "0.0.0.0:9000"))
    parser.add_argument("--threads", type=int, default=int(os.environ.get("AUTHZ_GRPC_THREADS", "16")))
    parser.add_argument("--processes", type=int, default=int(os.environ.get("AUTHZ_GRPC_PROCESSES", "1")))
    options = parser.parse_args(args)
    if options.processes > 1:
        return _supervise(["--bind", options.bind, "--threads", str(options.threads)], options.processes)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")
    import django

    block_stop_signals()  # before django.setup(), which starts a thread
    django.setup()
    serve(options.bind, threads=options.threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
