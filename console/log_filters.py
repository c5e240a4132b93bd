"""Logging filters named in ``settings.LOGGING``."""

from __future__ import annotations

import logging


class ClientErrorsWithoutTraceback(logging.Filter):
    """One line for an ordinary 4xx on ``django.request``.

    Django's ``log_response`` passes the exception that became the response as ``exc_info``, so
    every PermissionDenied (403), Http404 or SuspiciousOperation (400) would print a traceback:
    noise that buries real failures. A record whose ``status_code`` is below 500 keeps its
    message (method, path, status) and loses the traceback; a 5xx keeps it.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        status = getattr(record, "status_code", None)
        if isinstance(status, int) and status < 500:
            record.exc_info = None
            record.exc_text = None
        return True
