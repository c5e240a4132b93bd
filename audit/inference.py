"""Paired KServe payload-logger events and their dispatch to consumers.

The KServe logger posts a request event and, for an HTTP 200 answer, a response event with the
same CloudEvents id (docs/kserve.md §6). The ingest worker (``audit.ingest``) pairs them and
hands the pairs to every callable named in ``settings.INFERENCE_EVENT_CONSUMERS``:

    consumer(pairs: list[InferencePair]) -> None

Consumers run inside the transaction that marks the events dispatched, so a pair is handed
over exactly once: if any consumer raises, nothing is marked, the batch (or sweep) fails and is
retried later. Consumers must therefore not have side effects outside the database. Audit
never imports its consumers' apps; the dispatch list is the only coupling.

Statuses:
- ``"ok"``: request and response paired.
- ``"timeout"``: a request whose response did not arrive within
  ``AUDIT_PAIRING_TIMEOUT_SECONDS`` (the model failed, answered non-200, or the logger runs in
  ``request`` mode); ``response_time`` and ``response_body`` are None.
- ``"response_only"``: a response whose request never arrived (logger mode ``response``, or a
  lost request event); ``request_time`` is None and ``request_body`` is empty.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import cache

from django.conf import settings
from django.utils.module_loading import import_string

OK = "ok"
TIMEOUT = "timeout"
RESPONSE_ONLY = "response_only"


@dataclass(frozen=True)
class InferencePair:
    """One inference call as the payload logger reported it."""

    project_id: int
    endpoint_id: int | None  # None when no endpoint of the project has that InferenceService name
    namespace: str
    inference_service: str
    component: str  # predictor / transformer / explainer ("" when the logger did not say)
    event_id: str  # the shared CloudEvents id
    request_time: datetime | None
    response_time: datetime | None
    request_body: bytes
    response_body: bytes | None
    content_type: str  # the request's Content-Type (the logger sends it on both events)
    metadata: dict = field(default_factory=dict)  # Ce-Metadata, e.g. {"X-Console-Principal": ["alice"]}
    annotations: dict = field(default_factory=dict)  # Ce-Annotations, e.g. {"inference-console.io/model-version": "iris:2"}
    status: str = OK  # "ok" | "timeout" | "response_only"

    @property
    def principal(self) -> str:
        """Who called, as the console's ext_authz told the mesh (empty when unknown)."""
        values = self.metadata.get("X-Console-Principal") or []
        if isinstance(values, str):
            return values
        return str(values[0]) if values else ""

    @property
    def model_version(self) -> str:
        """``<registered model>:<version>`` from the InferenceService annotation, or ""."""
        return str(self.annotations.get("inference-console.io/model-version", ""))

    @property
    def latency_ms(self) -> float | None:
        if self.request_time is None or self.response_time is None:
            return None
        return (self.response_time - self.request_time).total_seconds() * 1000.0


@cache
def _load(path: str):
    return import_string(path)


def consumers() -> list:
    return [_load(path) for path in settings.INFERENCE_EVENT_CONSUMERS]


def dispatch(pairs: list[InferencePair]) -> None:
    """Hand ``pairs`` to every configured consumer (inside the caller's transaction)."""
    if not pairs:
        return
    for consumer in consumers():
        consumer(pairs)
