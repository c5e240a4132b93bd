"""The floors the authorization benchmarks compare with, on the same stack as the console's
authorizers: a gRPC server whose ``Check`` answers OK (the same grpcio server, thread pool and
process count as ``console.access.authz.grpc_server``), and a WSGI app that answers 200 (served
by the same gunicorn configuration as ``console.access.authz.wsgi``). Neither touches Django.

    python -m tests.benchmarks.floors grpc --bind 127.0.0.1:9000 --threads 16 --processes 1
    gunicorn tests.benchmarks.floors:application --worker-class gthread ...
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import threading
from concurrent import futures

PRINCIPAL = b"bench"


def application(environ, start_response):
    start_response("200 OK", [("x-console-principal", "bench"), ("Content-Length", "0")])
    return [b""]


def _grpc_serve(bind: str, threads: int) -> None:
    import grpc
    from envoy.config.core.v3 import base_pb2
    from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc
    from google.rpc import code_pb2, status_pb2

    answer = external_auth_pb2.CheckResponse(
        status=status_pb2.Status(code=code_pb2.OK),
        ok_response=external_auth_pb2.OkHttpResponse(headers=[base_pb2.HeaderValueOption(
            header=base_pb2.HeaderValue(key="x-console-principal", value="bench"),
            append_action=base_pb2.HeaderValueOption.HeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD)]))

    class Bare(external_auth_pb2_grpc.AuthorizationServicer):
        def Check(self, request, context):  # noqa: N802
            return answer

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=threads),
                         options=[("grpc.so_reuseport", 1), ("grpc.keepalive_permit_without_calls", 1),
                                  ("grpc.http2.min_ping_interval_without_data_ms", 10_000)])
    external_auth_pb2_grpc.add_AuthorizationServicer_to_server(Bare(), server)
    server.add_insecure_port(bind)
    server.start()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    done.wait()
    server.stop(grace=1).wait()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=["grpc"])
    parser.add_argument("--bind", required=True)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--processes", type=int, default=1)
    options = parser.parse_args()
    if options.processes == 1:
        _grpc_serve(options.bind, options.threads)
        return 0
    children = [subprocess.Popen([sys.executable, "-m", "tests.benchmarks.floors", "grpc", "--bind", options.bind,  # noqa: S603
                                  "--threads", str(options.threads)]) for _ in range(options.processes)]
    signal.signal(signal.SIGTERM, lambda *_: [c.terminate() for c in children])
    for child in children:
        child.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
