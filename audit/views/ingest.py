"""Ingest receivers: the Kubernetes audit webhook and the KServe payload logger.

Both check the declared Content-Length against their own limit before reading a byte (413
above it; Django's DATA_UPLOAD_MAX_MEMORY_SIZE does not apply here because the body is read
from the stream, not through ``request.body``), validate the delivery's shape (400 with the
reason, nothing stored), store it as one ``IngestBatch`` and answer 202. Processing happens
in a Celery worker (``audit.ingest``).
"""

from __future__ import annotations

from functools import wraps

from django.conf import settings
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from audit import buffer, cloudevents, ingest, k8s
from audit.models import IngestBatch
from console import metrics
from console.auth import authenticate_bearer
from console.middleware import client_ip

INGEST_PERMISSION = "console.ingest_logs"


class _Refused(Exception):
    def __init__(self, status: int, detail: str, headers: dict | None = None):
        super().__init__(detail)
        self.response = JsonResponse({"detail": detail}, status=status, headers=headers)


def _read_body(request, limit: int) -> bytes:
    declared = request.META.get("CONTENT_LENGTH", "")
    if not declared:
        raise _Refused(411, "Content-Length is required.")
    try:
        length = int(declared)
    except ValueError:
        raise _Refused(400, "Content-Length is not a number.") from None
    if length < 0:
        raise _Refused(400, "Content-Length is not a number.")
    if length > limit:
        raise _Refused(413, f"The body is {length} bytes; this receiver accepts at most {limit}.")
    body = request.read(length)
    if len(body) != length:
        raise _Refused(400, "The body is shorter than its Content-Length.")
    return body


def _ce_headers(request) -> dict[str, str]:
    """CloudEvents attributes of a binary-mode event: ``Ce-Foo`` headers as ``foo``."""
    return {
        key[len("HTTP_CE_"):].lower().replace("_", "-"): value
        for key, value in request.META.items()
        if key.startswith("HTTP_CE_")
    }


def _counted(source: str):
    """Count the receiver's answers: 202 as received, anything else as refused with its status."""

    def decorate(view):
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            response = view(request, *args, **kwargs)
            if response.status_code == 202:
                metrics.INGEST_RECEIVED.labels(source).inc()
            else:
                metrics.INGEST_REFUSED.labels(source, str(response.status_code)).inc()
            return response

        return wrapped

    return decorate


@csrf_exempt
@_counted("kserve")
@require_POST
def kserve_receiver(request, ingest_key: str):
    """Where a project's payload loggers post (the logger cannot authenticate: the project's
    rotatable ingest key in the path identifies it; a wrong key is 404). The least work per
    request: the key from a cache, the size and shape checked, one row appended to the buffer
    (``audit.buffer``), 202. Beyond the buffer's configured depth: 503 with Retry-After."""
    project = buffer.project_for_ingest_key(ingest_key)
    if project is None:
        return JsonResponse({"detail": "Unknown ingest key."}, status=404)
    if buffer.buffer_full():
        buffer.refusal_count(project, request.META.get("HTTP_CE_INFERENCESERVICENAME", ""))
        return JsonResponse(
            {"detail": "The ingest buffer is full; the workers are behind. Try again later."}, status=503,
            headers={"Retry-After": str(settings.AUDIT_INGEST_RETRY_AFTER_SECONDS)})
    try:
        body = _read_body(request, settings.AUDIT_KSERVE_MAX_BODY_BYTES)
        content_type = request.META.get("CONTENT_TYPE", "")
        headers = _ce_headers(request)
        try:
            events = cloudevents.parse_delivery(headers, body, content_type)
        except cloudevents.MalformedEvent as exc:
            raise _Refused(400, f"Not a KServe payload-logger event: {exc}") from None
        # A project's key speaks for its own namespace only: the loggers of its endpoints send
        # their namespace with every event (very old ones sent none).
        foreign = next((e for e in events if e.namespace and e.namespace != project.namespace), None)
        if foreign is not None:
            raise _Refused(400, f"Event {foreign.id!r} comes from namespace {foreign.namespace!r}; this ingest "
                                f"key belongs to the project in namespace {project.namespace!r}. Nothing was stored.")
    except _Refused as refused:
        return refused.response
    entry = buffer.buffer_append(
        project=project, content_type=content_type, body=body,
        headers=headers if not (cloudevents.is_batch(content_type) or cloudevents.is_structured(content_type)) else {},
    )
    return JsonResponse({"buffered": entry, "events": len(events)}, status=202)


@csrf_exempt
@_counted("kubernetes")
@require_POST
def kubernetes_receiver(request):
    """The Kubernetes API server's audit webhook backend (an ``audit.k8s.io/v1`` EventList),
    authenticated with a bearer token of scope ``ingest`` whose user holds the Ingester role.
    ``?cluster=<name>`` tells which cluster's namespaces the events refer to."""
    auth = authenticate_bearer(request.META.get("HTTP_AUTHORIZATION"))
    if auth is None:
        return JsonResponse({"detail": "A valid bearer token is required."}, status=401,
                            headers={"WWW-Authenticate": 'Bearer realm="ingest"'})
    user, token = auth
    if not token.has_scope("ingest") or not user.has_perm(INGEST_PERMISSION):
        return JsonResponse({"detail": "This token may not post audit logs (needs scope ingest and the "
                                       "Ingester role)."}, status=403)
    try:
        body = _read_body(request, settings.AUDIT_K8S_MAX_BODY_BYTES)
        try:
            items = k8s.parse_event_list(body)
        except k8s.MalformedEventList as exc:
            raise _Refused(400, f"Not an audit EventList: {exc}") from None
    except _Refused as refused:
        return refused.response
    batch = ingest.batch_receive(
        kind=IngestBatch.Kind.KUBERNETES, body=body, content_type=request.META.get("CONTENT_TYPE", ""),
        cluster_name=request.GET.get("cluster", "")[:128], submitted_by=user, source_ip=client_ip(request),
        item_count=len(items),
    )
    return JsonResponse({"batch": batch.pk, "events": len(items)}, status=202)
