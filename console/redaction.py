"""Payload-logger ingest keys out of everything the console shows or writes to its logs.

The KServe logger cannot authenticate, so a project's rotatable ingest key travels in the
logger URL's path (``/ingest/kserve/<key>/``); whoever holds it can post inference events in
the project's name. The key goes to the cluster in the InferenceService and nowhere else:
pages, API answers, audit details and log lines carry it masked but for its last 4
characters (enough to tell a rotation apart). Free of Django imports, so the gunicorn logger
class can use it before Django is set up.
"""

from __future__ import annotations

import logging
import re

INGEST_KEY_IN_PATH = re.compile(r"(/ingest/kserve/)([A-Za-z0-9_-]+)(?=/)")
MASK = "•" * 8


def _mask_key(match: re.Match) -> str:
    return f"{match.group(1)}{MASK}{match.group(2)[-4:]}"


def redact_ingest_keys(value):
    """``value`` (a string or JSON-like structure) with every ingest key in it masked."""
    if isinstance(value, str):
        return INGEST_KEY_IN_PATH.sub(_mask_key, value) if "/ingest/kserve/" in value else value
    if isinstance(value, dict):
        return {key: redact_ingest_keys(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact_ingest_keys(item) for item in value)
    return value


class RedactIngestKeys(logging.Filter):
    """A handler filter: Django's request log ("Bad Request: /ingest/kserve/<key>/"), the
    development server's access log and anything else that prints a logger URL."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "/ingest/kserve/" in message:
            record.msg, record.args = redact_ingest_keys(message), None
        return True
