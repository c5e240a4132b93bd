"""gunicorn's access log without ingest keys: ``--logger-class
console.gunicorn_logging.RedactingLogger`` (used by ``make run``, the image and the
Kubernetes manifests). The payload loggers post to ``/ingest/kserve/<key>/``; the log line
shows the key masked (``console.redaction``)."""

from __future__ import annotations

from gunicorn.glogging import Logger

from console.redaction import redact_ingest_keys


class RedactingLogger(Logger):
    def atoms(self, resp, req, environ, request_time):
        return {name: redact_ingest_keys(value) if isinstance(value, str) else value
                for name, value in super().atoms(resp, req, environ, request_time).items()}
