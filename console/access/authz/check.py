"""One ext_authz check, whatever the transport: the decision, its audit (every denial an
event, every allow a durably staged row, see ``allows``) and its metrics. The HTTP check
(``http``, ``wsgi``) and the gRPC service (``grpc_server``) both answer through ``authorize``
so that they decide, audit and count alike; each only translates its protocol's request and
response."""

from __future__ import annotations

import time

from django.db import connections

from console import metrics
from console.access.authz.allows import AllowNotRecorded, stage
from console.access.authz.decision import Decision, audit_denial, decide

UNAUTHORIZED_BODY = "Unauthorized: send Authorization: Bearer <API token>.\n"
FORBIDDEN_BODY = "Forbidden: this principal may not call this endpoint.\n"
UNAVAILABLE_BODY = "Service unavailable: the decision could not be recorded in the audit trail.\n"
UNAVAILABLE = 503
WWW_AUTHENTICATE = 'Bearer realm="inference"'


def authorize(*, method: str, host: str, path: str, authorization: str | None, query: str = "",
              raw_path: str | None = None) -> Decision:
    """Decide one check and record it.

    ``path`` is the original path decoded, without the query; ``raw_path`` the same as Envoy
    sent it (percent-encoded), when known. An allow is returned only once it is committed
    (``allows.stage``); when it cannot be, the answer is 503 (never an unrecorded allow)."""
    started = time.perf_counter()
    decision = decide(host=host, path=path, authorization=authorization, raw_path=raw_path)
    if decision.allowed:
        try:
            stage(decision, method=method, at=time.time())
        except AllowNotRecorded:
            decision = unrecorded(decision)
    else:
        audit_denial(decision, method=method, host=host, path=f"{path}?{query}" if query else path,
                     raw_path=raw_path if raw_path is not None and raw_path != path else None)
    count(decision, started)
    return decision


def unrecorded(decision: Decision) -> Decision:
    """The answer to an allowed check whose allow could not be committed."""
    return Decision(UNAVAILABLE, "the allow could not be recorded", principal=decision.principal,
                    user_id=decision.user_id, endpoint_id=decision.endpoint_id,
                    endpoint_repr=decision.endpoint_repr, project_id=decision.project_id,
                    project_name=decision.project_name, token_prefix=decision.token_prefix)


# The counter's child for each outcome, looked up once (``labels()`` on every check was a sixth
# of the lean HTTP path's own Python time, profiled).
_OUTCOMES = {200: "allow", 401: "unauthenticated", UNAVAILABLE: "unavailable"}
_counters: dict[str, object] = {}


def count(decision: Decision, started: float) -> None:
    outcome = _OUTCOMES.get(decision.status, "deny")
    counter = _counters.get(outcome)
    if counter is None:
        counter = _counters[outcome] = metrics.AUTHZ_DECISIONS.labels(outcome)
    counter.inc()
    metrics.AUTHZ_SECONDS.observe(time.perf_counter() - started)


def denial_body(decision: Decision) -> str:
    if decision.status == UNAVAILABLE:
        return UNAVAILABLE_BODY
    return UNAUTHORIZED_BODY if decision.status == 401 else FORBIDDEN_BODY


def recycle_connections() -> None:
    """What Django's handler does around every request, for the authorizers that bypass it:
    close database connections that are too old (``CONN_MAX_AGE``) or broken. SQLite's
    connections are kept (a local file; Django's default of reopening it for every request
    would cost more than a warm decision). A connection inside a transaction is left alone (the
    check then runs inside it: a test's, or a caller's)."""
    for connection in connections.all(initialized_only=True):
        if connection.in_atomic_block:
            continue
        if connection.vendor != "sqlite" or connection.settings_dict.get("CONN_MAX_AGE"):
            connection.close_if_unusable_or_obsolete()
