"""Ingest receivers as Django views: the Kubernetes audit webhook and the KServe payload logger.

What they decide is in ``audit.receiving`` (shared with the dedicated receiver process,
``audit.receiver``): the declared Content-Length is checked against the receiver's limit before
a byte is read (413 above it; Django's DATA_UPLOAD_MAX_MEMORY_SIZE does not apply because the
body is read from the stream), the body is read within a deadline and at a minimum rate (408
otherwise), the delivery's shape is validated (400 with the reason, nothing stored), it is
stored and answered 202. Processing happens in the ingest workers.

Under gunicorn a body must arrive by the time the minimum rate allows for its declared length
(``_Watchdog``), so a slow client is cut off then; it still holds one worker thread until then. The receiver
process holds none (docs/audit.md §5, "Serving").
"""

from __future__ import annotations

import contextlib
import heapq
import socket
import threading
import time

from django.conf import settings
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from audit import receiving
from audit.receiving import Answer, BodyClock
from console.middleware import client_ip

CHUNK = 64 * 1024


def _response(answer: Answer) -> JsonResponse:
    return JsonResponse(answer.payload, status=answer.status, headers=answer.headers or None)


class _Watchdog:
    """One thread per process that ends the body reads whose time is up. A blocking read under
    gunicorn returns as soon as any byte arrives, so a per-read socket timeout never fires for a
    client sending a byte a second; at the deadline the watchdog shuts the socket for reading,
    the read returns what arrived, and the view answers 408."""

    def __init__(self):
        self._cond = threading.Condition()
        self._due: list[tuple[float, int, socket.socket]] = []
        self._active: set[int] = set()
        self._next = 0
        self._thread: threading.Thread | None = None

    def watch(self, sock: socket.socket, deadline: float) -> int:
        with self._cond:
            self._next += 1
            token = self._next
            self._active.add(token)
            heapq.heappush(self._due, (deadline, token, sock))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="ingest-body-watchdog", daemon=True)
                self._thread.start()
            self._cond.notify()
            return token

    def release(self, token: int) -> None:
        with self._cond:
            self._active.discard(token)

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._due and self._due[0][1] not in self._active:
                    heapq.heappop(self._due)  # its body arrived in time
                if not self._due:
                    self._cond.wait()
                    continue
                deadline, token, sock = self._due[0]
                wait = deadline - time.monotonic()
                if wait > 0:
                    self._cond.wait(min(wait, 1.0))
                    continue
                heapq.heappop(self._due)
                self._active.discard(token)
            with contextlib.suppress(OSError):  # the client went away meanwhile
                sock.shutdown(socket.SHUT_RD)


_watchdog = _Watchdog()


def _read_body(request, limit: int) -> bytes | Answer:
    length = receiving.declared_length(request.META.get("CONTENT_LENGTH", ""), limit)
    if isinstance(length, Answer):
        return length
    clock = BodyClock()
    # Under gunicorn the whole body must arrive by the time the minimum rate allows for its
    # declared length (at most the deadline); the aiohttp receiver checks the rate as it reads.
    sock = request.META.get("gunicorn.socket")
    token = _watchdog.watch(sock, clock.started + clock.allowed(length)) if sock is not None and length else None
    chunks, received = [], 0
    try:
        while received < length:
            chunk = request.read(min(CHUNK, length - received))
            if not chunk:
                break
            chunks.append(chunk)
            received += len(chunk)
    except OSError:
        pass
    finally:
        if token is not None:
            _watchdog.release(token)
    if received != length:
        if clock.expired(length):
            return receiving.too_slow()
        return receiving.refused(400, "The body is shorter than its Content-Length.")
    return b"".join(chunks)


@csrf_exempt
@require_POST
def kserve_receiver(request, ingest_key: str):
    """Where a project's payload loggers post (the logger cannot authenticate: the project's
    rotatable ingest key in the path identifies it; a wrong key is 404). The least work per
    request: the key from a cache, the size and shape checked, one row appended to the buffer
    (``audit.buffer``), 202. Beyond the buffer's configured depth: 503 with Retry-After."""
    return _response(receiving.count("kserve", _kserve(request, ingest_key)))


def _kserve(request, ingest_key: str) -> Answer:
    project = receiving.kserve_before_body(ingest_key, request.META.get("HTTP_CE_INFERENCESERVICENAME", ""))
    if isinstance(project, Answer):
        return project
    body = _read_body(request, settings.AUDIT_KSERVE_MAX_BODY_BYTES)
    if isinstance(body, Answer):
        return body
    headers = {key[len("HTTP_CE_"):].lower().replace("_", "-"): value
               for key, value in request.META.items() if key.startswith("HTTP_CE_")}
    return receiving.kserve_accept(project, content_type=request.META.get("CONTENT_TYPE", ""),
                                   ce_headers=headers, body=body)


@csrf_exempt
@require_POST
def kubernetes_receiver(request):
    """The Kubernetes API server's audit webhook backend (an ``audit.k8s.io/v1`` EventList),
    authenticated with a bearer token of scope ``ingest`` whose user holds the Ingester role.
    ``?cluster=<name>`` tells which cluster's namespaces the events refer to."""
    return _response(receiving.count("kubernetes", _kubernetes(request)))


def _kubernetes(request) -> Answer:
    user = receiving.kubernetes_before_body(request.META.get("HTTP_AUTHORIZATION"))
    if isinstance(user, Answer):
        return user
    body = _read_body(request, settings.AUDIT_K8S_MAX_BODY_BYTES)
    if isinstance(body, Answer):
        return body
    return receiving.kubernetes_accept(user, body=body, content_type=request.META.get("CONTENT_TYPE", ""),
                                       cluster=request.GET.get("cluster", ""), source_ip=client_ip(request))
