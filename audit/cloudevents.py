"""Parsing KServe payload-logger CloudEvents (pure: no Django imports).

Three shapes reach the receiver (docs/kserve.md §6):
- binary mode, one event per POST: attributes in ``Ce-*`` headers, the payload as the body
  (CloudEvents 1.0; the 2019 KFServing logger's 0.1 headers ``ce-eventid``/``ce-eventtype``/
  ``ce-eventtime`` are accepted too);
- structured mode, ``application/cloudevents+json``: one JSON event;
- batched, ``application/cloudevents-batch+json``: a JSON array of structured events
  (what forwarders such as a Knative broker or a log shipper send).

``MalformedEvent`` carries a reason fit for a 400 answer.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

from audit.jsonlimits import nesting_within

REQUEST_TYPE = "org.kubeflow.serving.inference.request"
RESPONSE_TYPE = "org.kubeflow.serving.inference.response"
TYPES = {REQUEST_TYPE: "request", RESPONSE_TYPE: "response"}
BATCH_CONTENT_TYPE = "application/cloudevents-batch+json"
STRUCTURED_CONTENT_TYPE = "application/cloudevents+json"
MAX_ID_LENGTH = 200
# Arrays and objects nested deeper than this are refused before they are parsed (the receivers
# pass AUDIT_INGEST_MAX_JSON_DEPTH; parsing recursion must never fail).
DEFAULT_MAX_DEPTH = 100

# CloudEvents 0.1 header names -> 1.0 attribute names.
_LEGACY_HEADERS = {
    "eventid": "id",
    "eventtype": "type",
    "eventtime": "time",
    "cloudeventsversion": "specversion",
}


class MalformedEvent(ValueError):
    """The delivery is not a payload-logger event; the message says why."""


@dataclass(frozen=True)
class LoggerEvent:
    """One request or response event of the payload logger."""

    id: str
    kind: str  # "request" | "response"
    time: datetime | None
    inference_service: str = ""
    namespace: str = ""
    component: str = ""
    content_type: str = ""
    metadata: dict = field(default_factory=dict)
    annotations: dict = field(default_factory=dict)
    body: bytes = b""


def media_type(content_type: str) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def is_batch(content_type: str) -> bool:
    return media_type(content_type) == BATCH_CONTENT_TYPE


def is_structured(content_type: str) -> bool:
    return media_type(content_type) == STRUCTURED_CONTENT_TYPE


def parse_time(value, *, what: str = "time") -> datetime | None:
    """An RFC 3339 timestamp (nanoseconds allowed) as an aware UTC datetime; None if absent."""
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise MalformedEvent(f"{what} must be an RFC 3339 string")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    # Go writes nanoseconds; Python keeps microseconds.
    if "." in text:
        head, _, rest = text.partition(".")
        digits = len(rest) - len(rest.lstrip("0123456789"))
        text = f"{head}.{rest[:min(digits, 6)].ljust(6, '0')}{rest[digits:]}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise MalformedEvent(f"{what} is not an RFC 3339 timestamp: {value!r}") from None
    if parsed.tzinfo is None:
        raise MalformedEvent(f"{what} has no time zone: {value!r}")
    return parsed.astimezone(UTC)


def _json_object(value, *, what: str) -> dict:
    if value in (None, ""):
        return {}
    if isinstance(value, str):
        if not nesting_within(value, DEFAULT_MAX_DEPTH):
            raise MalformedEvent(f"{what} nests arrays or objects more than {DEFAULT_MAX_DEPTH} levels deep")
        try:
            value = json.loads(value)
        except ValueError:
            raise MalformedEvent(f"{what} is not valid JSON") from None
    if not isinstance(value, dict):
        raise MalformedEvent(f"{what} must be a JSON object")
    return value


def _event(attributes: dict, body: bytes, content_type: str) -> LoggerEvent:
    spec = str(attributes.get("specversion") or "")
    if spec not in ("1.0", "0.1", "0.2", "0.3"):
        raise MalformedEvent(f"unsupported CloudEvents specversion {spec!r}" if spec else "missing specversion")
    event_id = attributes.get("id")
    if not isinstance(event_id, str) or not event_id.strip():
        raise MalformedEvent("missing event id")
    if len(event_id) > MAX_ID_LENGTH:
        raise MalformedEvent(f"event id longer than {MAX_ID_LENGTH} characters")
    event_type = attributes.get("type")
    if event_type not in TYPES:
        raise MalformedEvent(f"unsupported event type {event_type!r}" if event_type else "missing event type")
    return LoggerEvent(
        id=event_id.strip(),
        kind=TYPES[event_type],
        time=parse_time(attributes.get("time"), what="time"),
        inference_service=str(attributes.get("inferenceservicename") or "")[:253],
        namespace=str(attributes.get("namespace") or "")[:63],
        component=str(attributes.get("component") or "")[:32],
        content_type=str(content_type or "")[:200],
        metadata=_json_object(attributes.get("metadata"), what="metadata"),
        annotations=_json_object(attributes.get("annotations"), what="annotations"),
        body=body,
    )


def parse_binary(headers: dict[str, str], body: bytes, content_type: str) -> LoggerEvent:
    """A binary-mode event. ``headers`` maps lower-case CloudEvents attribute names (the header
    names without their ``ce-`` prefix) to values."""
    attributes = {}
    for name, value in headers.items():
        attributes[_LEGACY_HEADERS.get(name, name)] = value
    return _event(attributes, body, content_type)


def _structured_body(event: dict) -> tuple[bytes, str]:
    content_type = str(event.get("datacontenttype") or "")
    if "data_base64" in event:
        try:
            return base64.b64decode(event["data_base64"], validate=True), content_type
        except (ValueError, TypeError):
            raise MalformedEvent("data_base64 is not valid base64") from None
    data = event.get("data")
    if data is None:
        return b"", content_type
    if isinstance(data, str) and "json" not in media_type(content_type):
        return data.encode(), content_type
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode(), content_type or "application/json"


def parse_structured(event) -> LoggerEvent:
    if not isinstance(event, dict):
        raise MalformedEvent("a structured event must be a JSON object")
    body, content_type = _structured_body(event)
    return _event({str(k).lower(): v for k, v in event.items()}, body, content_type)


def parse_json_body(body: bytes, *, batch: bool, max_depth: int = DEFAULT_MAX_DEPTH) -> list[LoggerEvent]:
    """The events of a structured (``batch=False``) or batched delivery."""
    if not nesting_within(body, max_depth):
        raise MalformedEvent(f"the body nests arrays or objects more than {max_depth} levels deep")
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise MalformedEvent("body is not valid JSON") from None
    if not batch:
        return [parse_structured(document)]
    if not isinstance(document, list):
        raise MalformedEvent("a CloudEvents batch must be a JSON array")
    events = []
    for index, item in enumerate(document):
        try:
            events.append(parse_structured(item))
        except MalformedEvent as exc:
            raise MalformedEvent(f"event {index}: {exc}") from None
    return events


def parse_delivery(headers: dict[str, str], body: bytes, content_type: str, *,
                   max_depth: int = DEFAULT_MAX_DEPTH) -> list[LoggerEvent]:
    """All events of one POST, whatever its mode. A JSON payload (binary mode with a JSON or no
    content type: what the consumers parse later) nesting deeper than ``max_depth`` is refused."""
    if is_batch(content_type):
        return parse_json_body(body, batch=True, max_depth=max_depth)
    if is_structured(content_type):
        return parse_json_body(body, batch=False, max_depth=max_depth)
    kind = media_type(content_type)
    if (not kind or "json" in kind) and not nesting_within(body, max_depth):
        raise MalformedEvent(f"the JSON payload nests arrays or objects more than {max_depth} levels deep")
    return [parse_binary(headers, body, content_type)]
