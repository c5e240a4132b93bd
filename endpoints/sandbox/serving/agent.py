"""The sandbox's stand-in for KServe's agent sidecar (``kserve/agent``, Go): one process per
revision that proxies to the model server and posts the payload logger's CloudEvents.

What it does, as the agent's logger does (``pkg/logger`` of KServe):

- every POST is read whole, given an id (the caller's ``Ce-Id`` header, else a new UUID) and,
  when the logger mode is ``all`` or ``request``, queued as an ``org.kubeflow.serving.inference.request``
  event carrying the request's body and ``Content-Type``;
- it is then proxied to the model server; the answer goes back to the caller unchanged and,
  when the mode is ``all`` or ``response``, is queued as an ``org.kubeflow.serving.inference.response``
  event with the *same id* and ``Content-Type: application/json``;
- events are sent in CloudEvents 1.0 binary mode (attributes in ``Ce-*`` headers, the payload
  as the body) to the logger URL by a small pool of workers from a bounded queue:
  fire-and-forget — a full queue drops the event, a failed POST is logged, never retried —
  so the logger never slows or fails an inference;
- extensions: ``inferenceservicename``, ``namespace``, ``component``, ``endpoint`` (empty for
  the default endpoint), ``metadata`` (the request headers listed in ``metadataHeaders``, exact
  canonical names, as a JSON object of lists) and ``annotations`` (the listed annotations of
  the revision, a JSON object), each only when non-empty as the agent does for the last two.

Plain standard library: no project imports (the sandbox rule), so it runs under any Python.
``python -m endpoints.sandbox.serving.agent --help``.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import logging
import queue
import signal
import sys
import threading
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

logger = logging.getLogger("sandbox.agent")

REQUEST_TYPE = "org.kubeflow.serving.inference.request"
RESPONSE_TYPE = "org.kubeflow.serving.inference.response"
QUEUE_SIZE = 100  # the agent's log request queue
WORKERS = 5
SEND_TIMEOUT = 5.0
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
              "transfer-encoding", "upgrade", "content-length", "host"}


def rfc3339_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class EventSender:
    """The bounded queue and its workers: fire-and-forget delivery of binary-mode events."""

    def __init__(self, url: str, *, workers: int = WORKERS, size: int = QUEUE_SIZE):
        self.url = url
        self.queue: queue.Queue = queue.Queue(maxsize=size)
        self.sent = self.failed = self.dropped = 0
        self._lock = threading.Lock()
        for index in range(workers):
            threading.Thread(target=self._work, name=f"agent-logger-{index}", daemon=True).start()

    def put(self, headers: dict[str, str], body: bytes) -> None:
        try:
            self.queue.put_nowait((headers, body))
        except queue.Full:
            with self._lock:
                self.dropped += 1
            logger.error("log request queue is full: event %s dropped", headers.get("Ce-Id"))

    def _work(self) -> None:
        parts = urlsplit(self.url)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        factory = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        connection = None
        while True:
            headers, body = self.queue.get()
            try:
                if connection is None:
                    connection = factory(parts.hostname, parts.port, timeout=SEND_TIMEOUT)
                connection.request("POST", path, body=body, headers=headers)
                answer = connection.getresponse()
                answer.read()
                ok = 200 <= answer.status < 300
                if answer.getheader("connection", "").lower() == "close":
                    connection.close()
                    connection = None
            except (OSError, http.client.HTTPException) as exc:
                ok = False
                logger.error("failed to send event %s to %s: %s", headers.get("Ce-Id"), self.url, exc)
                if connection is not None:
                    connection.close()
                connection = None
            else:
                if not ok:
                    logger.error("event %s refused by %s: HTTP %s", headers.get("Ce-Id"), self.url, answer.status)
            with self._lock:
                if ok:
                    self.sent += 1
                else:
                    self.failed += 1


class Agent:
    def __init__(self, *, upstream_port: int, logger_url: str | None, mode: str, inference_service: str,
                 namespace: str, component: str, endpoint: str, metadata_headers: list[str],
                 annotations: dict[str, str], source: str, workers: int = WORKERS):
        self.upstream_port = upstream_port
        self.mode = mode
        self.sender = EventSender(logger_url, workers=workers) if logger_url else None
        self.attributes = {"Ce-Inferenceservicename": inference_service, "Ce-Namespace": namespace,
                           "Ce-Component": component, "Ce-Endpoint": endpoint}
        self.metadata_headers = metadata_headers
        self.annotations = annotations
        self.source = source
        self.local = threading.local()

    def event_headers(self, *, event_id: str, kind: str, content_type: str, metadata: dict) -> dict[str, str]:
        headers = {"Ce-Specversion": "1.0", "Ce-Id": event_id, "Ce-Source": self.source,
                   "Ce-Type": REQUEST_TYPE if kind == "request" else RESPONSE_TYPE, "Ce-Time": rfc3339_now(),
                   **self.attributes, "Content-Type": content_type}
        if metadata:
            headers["Ce-Metadata"] = json.dumps(metadata, separators=(",", ":"))
        if self.annotations:
            headers["Ce-Annotations"] = json.dumps(self.annotations, separators=(",", ":"))
        return headers

    def upstream(self) -> http.client.HTTPConnection:
        connection = getattr(self.local, "connection", None)
        if connection is None:
            connection = self.local.connection = http.client.HTTPConnection("127.0.0.1", self.upstream_port,
                                                                           timeout=300)
        return connection

    def forward(self, method: str, target: str, headers: dict[str, str], body: bytes):
        for attempt in (1, 2):  # a kept-alive connection the server closed meanwhile: once more
            connection = self.upstream()
            try:
                connection.request(method, target, body=body, headers=headers)
                answer = connection.getresponse()
                return answer.status, answer.getheaders(), answer.read()
            except (OSError, http.client.HTTPException):
                connection.close()
                self.local.connection = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")


def make_handler(agent: Agent):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "sandbox-agent"

        def log_message(self, format, *args):  # noqa: A002 - the base class's name
            logger.debug("%s " + format, self.address_string(), *args)

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            log = self.command == "POST" and agent.sender is not None
            event_id = self.headers.get("Ce-Id") or str(uuid.uuid4())
            if log and agent.mode in ("all", "request"):
                metadata = {name: self.headers.get_all(name) for name in agent.metadata_headers
                            if self.headers.get_all(name)}
                agent.sender.put(agent.event_headers(event_id=event_id, kind="request",
                                                     content_type=self.headers.get("Content-Type", ""),
                                                     metadata=metadata), body)
            else:
                metadata = {}
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            headers["Host"] = self.headers.get("Host", "")
            try:
                status, answer_headers, answer = agent.forward(self.command, self.path, headers, body)
            except (OSError, http.client.HTTPException) as exc:
                status, answer_headers = 502, [("Content-Type", "text/plain")]
                answer = f"agent: the model server did not answer: {exc}\n".encode()
            if log and agent.mode in ("all", "response"):
                agent.sender.put(agent.event_headers(event_id=event_id, kind="response",
                                                     content_type="application/json", metadata=metadata), answer)
            self.send_response(status)
            for name, value in answer_headers:
                if name.lower() not in HOP_BY_HOP and name.lower() not in ("date", "server"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(answer)

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle

    return Handler


class AgentServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def parse_annotations(values: list[str]) -> dict[str, str]:
    out = {}
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep:
            raise argparse.ArgumentTypeError(f"--annotation needs key=value, got {value!r}")
        out[key] = rest
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="KServe's agent (payload logger) for one sandbox revision.")
    parser.add_argument("--port", type=int, required=True, help="port to listen on (127.0.0.1)")
    parser.add_argument("--upstream-port", type=int, required=True, help="the model server's port (127.0.0.1)")
    parser.add_argument("--logger-url", default=None, help="spec.predictor.logger.url (none: proxy only)")
    parser.add_argument("--logger-mode", choices=("all", "request", "response"), default="all")
    parser.add_argument("--inference-service", required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--component", default="predictor")
    parser.add_argument("--endpoint", default="")
    parser.add_argument("--metadata-header", action="append", default=[])
    parser.add_argument("--annotation", action="append", default=[], help="key=value, repeatable")
    parser.add_argument("--logger-workers", type=int, default=WORKERS, help="senders working the event queue")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s agent: %(message)s")
    agent = Agent(upstream_port=args.upstream_port, logger_url=args.logger_url, mode=args.logger_mode,
                  inference_service=args.inference_service, namespace=args.namespace, component=args.component,
                  endpoint=args.endpoint, metadata_headers=args.metadata_header,
                  annotations=parse_annotations(args.annotation), source=f"http://localhost:{args.port}/",
                  workers=max(args.logger_workers, 1))
    server = AgentServer(("127.0.0.1", args.port), make_handler(agent))
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())
    print(f"agent listening on 127.0.0.1:{args.port}, proxying to 127.0.0.1:{args.upstream_port}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    server.server_close()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
