"""The payload-logger receiver answered before the rest of the middleware chain.

KServe's agent posts one CloudEvent per inference request and per response, so the receiver
is by far the busiest route: sessions, CSRF, authentication, lock-out checks, CSP headers and
URL resolution would cost more than the receiver's own work (a cached key lookup, a parse and
one INSERT). The loggers carry no session or cookie and get a JSON answer, so none of that
applies to them. Listed first in ``MIDDLEWARE``; every other path goes down the chain as usual.
"""

from __future__ import annotations

from audit.views.ingest import kserve_receiver

PREFIX = "/ingest/kserve/"


class IngestReceiverMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        path = request.path_info
        if path.startswith(PREFIX) and path.endswith("/"):
            key = path[len(PREFIX):-1]
            if key and "/" not in key:
                return kserve_receiver(request, key)
        return self.get_response(request)
