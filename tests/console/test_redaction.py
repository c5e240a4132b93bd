"""Ingest keys stay out of log lines: gunicorn's access log (the logger class ``make run``,
the image and the manifests use) and the console's own log handler."""

from __future__ import annotations

import logging
from types import SimpleNamespace

from gunicorn.config import Config

from console.gunicorn_logging import RedactingLogger
from console.redaction import MASK, RedactIngestKeys, redact_ingest_keys

KEY = "Zq3vN8xL0pR2sT5uW7yA9bC1dE4fG6hJ"


def test_keys_are_masked_in_strings_and_structures():
    url = f"http://console.example/ingest/kserve/{KEY}/"
    assert redact_ingest_keys(url) == f"http://console.example/ingest/kserve/{MASK}{KEY[-4:]}/"
    nested = {"logger": [{"url": url}], "other": 3}
    assert KEY not in str(redact_ingest_keys(nested)) and redact_ingest_keys(nested)["other"] == 3
    # Nothing else that looks like a path is touched.
    assert redact_ingest_keys("/ingest/kubernetes/?cluster=prod") == "/ingest/kubernetes/?cluster=prod"


def test_gunicorn_access_log_line_carries_no_key():
    logger = RedactingLogger(Config())
    request = SimpleNamespace(headers=[("USER-AGENT", "Go-http-client/1.1")], method="POST",
                              uri=f"/ingest/kserve/{KEY}/", path=f"/ingest/kserve/{KEY}/", query="",
                              version=(1, 1))
    response = SimpleNamespace(status="202 Accepted", headers=[], sent=10, response_length=10)
    environ = {"REMOTE_ADDR": "127.0.0.1", "RAW_URI": f"/ingest/kserve/{KEY}/",
               "SERVER_PROTOCOL": "HTTP/1.1", "REQUEST_METHOD": "POST", "PATH_INFO": f"/ingest/kserve/{KEY}/"}
    atoms = logger.atoms(response, request, environ, SimpleNamespace(seconds=0, microseconds=1000))
    line = logger.cfg.access_log_format % atoms
    assert KEY not in line and f"{MASK}{KEY[-4:]}" in line and "202" in line


def test_console_log_handler_masks_keys_in_django_request_warnings():
    record = logging.LogRecord("django.request", logging.WARNING, __file__, 1, "Bad Request: %s",
                               (f"/ingest/kserve/{KEY}/",), None)
    assert RedactIngestKeys().filter(record) is True
    assert record.getMessage() == f"Bad Request: /ingest/kserve/{MASK}{KEY[-4:]}/"


def test_the_console_log_handler_uses_the_filter(settings):
    assert "redact_ingest_keys" in settings.LOGGING["handlers"]["console"]["filters"]
