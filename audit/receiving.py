"""What the two ingest receivers decide, whatever serves them.

The same receivers are served two ways: by the console's web process (Django views in
``audit.views.ingest``, on gunicorn) and by the dedicated receiver process
(``audit.receiver``, ``manage.py ingest_receiver``), which reads bodies asynchronously so slow
clients hold no thread. Both call the functions here, so they give the same answers: each step
returns an ``Answer`` (status, JSON payload, headers) when the delivery is refused, or what the
next step needs.

Order of a delivery: who is posting (ingest key / bearer token) and is there room → the declared
length (411, 400, 413 before a byte is read) → the body, read within a deadline and at a minimum
rate (``BodyClock``; 408 otherwise) → the shape, nesting depth included (400) → stored → 202.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from django.conf import settings

from audit import buffer, cloudevents, ingest, k8s
from audit.directory import ProjectRef
from audit.models import IngestBatch
from console import metrics
from console.auth import authenticate_bearer

INGEST_PERMISSION = "console.ingest_logs"


@dataclass(frozen=True)
class Answer:
    """A receiver's answer, for whichever server renders it."""

    status: int
    payload: dict
    headers: dict = field(default_factory=dict)

    @property
    def closes(self) -> bool:
        return self.headers.get("Connection") == "close"


def refused(status: int, detail: str, **headers) -> Answer:
    return Answer(status, {"detail": detail}, headers)


def count(source: str, answer: Answer) -> Answer:
    """Count an answer: 202 as received, anything else as refused with its status."""
    if answer.status == 202:
        metrics.INGEST_RECEIVED.labels(source).inc()
    else:
        metrics.INGEST_REFUSED.labels(source, str(answer.status)).inc()
    return answer


# --- the body ----------------------------------------------------------------------------------

def declared_length(value: str | None, limit: int) -> int | Answer:
    """The Content-Length to read, or the refusal (before any byte of the body is read)."""
    if not value:
        return refused(411, "Content-Length is required.")
    try:
        length = int(value)
    except ValueError:
        return refused(400, "Content-Length is not a number.")
    if length < 0:
        return refused(400, "Content-Length is not a number.")
    if length > limit:
        return refused(413, f"The body is {length} bytes; this receiver accepts at most {limit}.")
    return length


class BodyTimeout(Exception):
    """The client sent its body too slowly (a 408)."""


class BodyClock:
    """How long a body may still take: at most ``AUDIT_INGEST_BODY_TIMEOUT_SECONDS`` in all, and
    after ``AUDIT_INGEST_BODY_GRACE_SECONDS`` at least ``AUDIT_INGEST_BODY_MIN_BYTES_PER_SECOND``
    on average. A client that declares a body and trickles it is cut off within a few seconds
    instead of holding the receiver for as long as it likes."""

    def __init__(self):
        self.started = time.monotonic()
        self.total = settings.AUDIT_INGEST_BODY_TIMEOUT_SECONDS
        self.grace = settings.AUDIT_INGEST_BODY_GRACE_SECONDS
        self.rate = settings.AUDIT_INGEST_BODY_MIN_BYTES_PER_SECOND

    def allowed(self, received: int) -> float:
        """Seconds a body may have taken once ``received`` bytes of it arrived."""
        return min(self.total, self.grace + received / self.rate)

    def remaining(self, received: int) -> float:
        """Seconds the next chunk may take to arrive (≤ 0: too slow already)."""
        return self.allowed(received) - (time.monotonic() - self.started)

    def expired(self, length: int) -> bool:
        """Has the time for a whole body of ``length`` bytes passed?"""
        return self.remaining(length) <= 0

    def check(self, received: int) -> float:
        left = self.remaining(received)
        if left <= 0:
            raise BodyTimeout
        return left


def too_slow() -> Answer:
    return refused(408, "The body did not arrive in time (too slow); nothing was stored.", Connection="close")


# --- the payload logger ------------------------------------------------------------------------

def kserve_before_body(ingest_key: str, inference_service: str) -> ProjectRef | Answer:
    """The project of the key, unless the key is unknown (404) or the buffer is full (503)."""
    project = buffer.project_for_ingest_key(ingest_key)
    if project is None:
        return refused(404, "Unknown ingest key.")
    if buffer.buffer_full():
        buffer.refusal_count(project, inference_service)
        return refused(503, "The ingest buffer is full; the workers are behind. Try again later.",
                       **{"Retry-After": str(settings.AUDIT_INGEST_RETRY_AFTER_SECONDS)})
    return project


def kserve_accept(project: ProjectRef, *, content_type: str, ce_headers: dict[str, str], body: bytes) -> Answer:
    """Check the delivery's shape and namespace, append it to the buffer, 202 once committed."""
    checked = kserve_check(project, content_type=content_type, ce_headers=ce_headers, body=body)
    if isinstance(checked, Answer):
        return checked
    events, row_headers = checked
    entry = buffer.buffer_append(project=project, content_type=content_type, body=body, headers=row_headers)
    return Answer(202, {"buffered": entry, "events": events})


def kserve_check(project: ProjectRef, *, content_type: str, ce_headers: dict[str, str],
                 body: bytes) -> tuple[int, dict] | Answer:
    """The delivery's shape and namespace (no database): the number of events and the headers
    to keep with the buffered row, or the refusal."""
    try:
        events = cloudevents.parse_delivery(ce_headers, body, content_type,
                                            max_depth=settings.AUDIT_INGEST_MAX_JSON_DEPTH)
    except cloudevents.MalformedEvent as exc:
        return refused(400, f"Not a KServe payload-logger event: {exc}")
    # A project's key speaks for its own namespace only: the loggers of its endpoints send
    # their namespace with every event (very old ones sent none).
    foreign = next((e for e in events if e.namespace and e.namespace != project.namespace), None)
    if foreign is not None:
        return refused(400, f"Event {foreign.id!r} comes from namespace {foreign.namespace!r}; this ingest "
                            f"key belongs to the project in namespace {project.namespace!r}. Nothing was stored.")
    binary = not (cloudevents.is_batch(content_type) or cloudevents.is_structured(content_type))
    return len(events), (ce_headers if binary else {})


def ce_headers(headers) -> dict[str, str]:
    """CloudEvents attributes of a binary-mode event from HTTP header names and values
    (``Ce-Foo`` as ``foo``)."""
    return {name[3:].lower().replace("_", "-"): value for name, value in headers
            if name[:3].lower() == "ce-"}


# --- the Kubernetes audit webhook --------------------------------------------------------------

def kubernetes_before_body(authorization: str | None):
    """The Ingester user posting, or the refusal (401 without a valid token, 403 without the
    ``ingest`` scope and the Ingester role)."""
    auth = authenticate_bearer(authorization)
    if auth is None:
        return refused(401, "A valid bearer token is required.", **{"WWW-Authenticate": 'Bearer realm="ingest"'})
    user, token = auth
    if not token.has_scope("ingest") or not user.has_perm(INGEST_PERMISSION):
        return refused(403, "This token may not post audit logs (needs scope ingest and the Ingester role).")
    return user


def kubernetes_accept(user, *, body: bytes, content_type: str, cluster: str, source_ip: str | None) -> Answer:
    """Check the EventList's shape, store it as one batch (processed by a worker), 202."""
    try:
        items = k8s.parse_event_list(body, max_depth=settings.AUDIT_INGEST_MAX_JSON_DEPTH)
    except k8s.MalformedEventList as exc:
        return refused(400, f"Not an audit EventList: {exc}")
    batch = ingest.batch_receive(
        kind=IngestBatch.Kind.KUBERNETES, body=body, content_type=content_type, cluster_name=cluster[:128],
        submitted_by=user, source_ip=source_ip, item_count=len(items),
    )
    return Answer(202, {"batch": batch.pk, "events": len(items)})
