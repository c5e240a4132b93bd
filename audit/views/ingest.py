"""Ingest receivers as Django views: the Kubernetes audit webhook and the KServe payload logger.

What they decide is in ``audit.receiving`` (shared with the dedicated receiver process,
``audit.receiver``): the declared Content-Length is checked against the receiver's limit before
a byte is read (413 above it; Django's DATA_UPLOAD_MAX_MEMORY_SIZE does not apply because the
body is read from the stream), the body is read within a deadline and at a minimum rate (408
otherwise), the delivery's shape is validated (400 with the reason, nothing stored), it is
stored and answered 202. Processing happens in the ingest workers.

Under gunicorn the body is read from the connection's socket with a timeout per read, so a slow
client is cut off after the deadline; it still holds one worker thread until then. The receiver
process holds none (docs/audit.md §5, "Serving").
"""

from __future__ import annotations

from django.conf import settings
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from audit import receiving
from audit.receiving import Answer, BodyClock, BodyTimeout
from console.middleware import client_ip

CHUNK = 64 * 1024


def _response(answer: Answer) -> JsonResponse:
    return JsonResponse(answer.payload, status=answer.status, headers=answer.headers or None)


def _read_body(request, limit: int) -> bytes | Answer:
    length = receiving.declared_length(request.META.get("CONTENT_LENGTH", ""), limit)
    if isinstance(length, Answer):
        return length
    sock = request.META.get("gunicorn.socket")
    previous = sock.gettimeout() if sock is not None else None
    clock = BodyClock()
    chunks, received = [], 0
    try:
        while received < length:
            left = clock.check(received)
            if sock is not None:
                sock.settimeout(left)
            chunk = request.read(min(CHUNK, length - received))
            if not chunk:
                break
            chunks.append(chunk)
            received += len(chunk)
    except (BodyTimeout, TimeoutError):
        return receiving.too_slow()
    finally:
        if sock is not None:
            try:
                sock.settimeout(previous)
            except OSError:
                pass
    if received != length:
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
