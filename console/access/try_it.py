""""Try it": send one request to an endpoint from its page, as the signed-in user, through the
cluster's ingress gateway — exactly the path an outside caller takes, so the console's ext_authz
check decides it the same way (a Viewer without Caller gets the gateway's 403).

The request carries a credential minted for it (``tokens.endpoint_credential_mint``: this user,
this endpoint, 60 seconds, signed, never stored). The console records the attempt in the audit
trail (``endpoint.try``: status, latency, the credential's id) next to what the gateway's check
records for any inference (an allow tallied, a denial audited).
"""

from __future__ import annotations

import http.client
import json
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.db import transaction

from audit import services as audit
from console.access import tokens
from console.access.selectors import access_check
from endpoints import calling, selectors
from endpoints import spec as specs
from endpoints.models import Endpoint
from endpoints.services.endpoints import available_runtime_specs

BODY_LIMIT = 256 * 1024
RESPONSE_LIMIT = 256 * 1024
TIMEOUT_SECONDS = 30.0


@dataclass
class TryResult:
    """What one "Try it" request gave: the gateway's answer (status, latency, body), or why
    none came back, and the console's reason when the gateway refused."""

    url: str
    host: str
    status: int | None = None
    latency_ms: float | None = None
    body: str = ""
    content_type: str = ""
    truncated: bool = False
    error: str = ""
    reason: str = ""
    simulated: bool = False
    credential: str = ""
    headers: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def denied(self) -> bool:
        return self.status in (401, 403)


def example(endpoint: Endpoint) -> dict:
    """The prefilled request: the route and JSON body "How to call it" shows."""
    runtime = specs.effective_runtime(endpoint, available_runtime_specs(endpoint.project))
    return calling.example_request(endpoint, runtime)


def unavailable_reason(endpoint: Endpoint) -> str:
    """Why the endpoint cannot be tried from the console now ("" when it can)."""
    status = selectors.endpoint_status(endpoint)
    if endpoint.state == Endpoint.State.DELETING:
        return "The endpoint is being deleted."
    if not endpoint.project.cluster.gateway_url:
        return (f"The cluster {endpoint.project.cluster.name} has no ingress gateway address: a platform admin sets it "
                "on the cluster's page.")
    if status is None or not status.url:
        return "The endpoint has no URL yet: it can be tried once it is Ready."
    return ""


def parse_body(text: str) -> bytes:
    """The request body as sent: valid JSON, at most BODY_LIMIT bytes (``ValidationError`` on
    the ``body`` field otherwise)."""
    raw = (text or "").encode()
    if not raw.strip():
        raise ValidationError({"body": ["Enter a JSON request body."]})
    if len(raw) > BODY_LIMIT:
        raise ValidationError({"body": [f"At most {BODY_LIMIT // 1024} KiB."]})
    try:
        json.loads(raw)
    except ValueError as exc:
        raise ValidationError({"body": [f"Not valid JSON: {exc}."]}) from None
    return raw


def _send(url: str, host: str, path: str, body: bytes, credential: str) -> tuple[int, dict, bytes, bool, float]:
    parts = urlsplit(url)
    connection_class = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    connection = connection_class(parts.hostname, parts.port, timeout=TIMEOUT_SECONDS)
    headers = {"Host": host, "Authorization": f"Bearer {credential}", "Content-Type": "application/json",
               "Accept": "application/json", "User-Agent": "inference-console-try-it"}
    try:
        started = time.perf_counter()
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        content = response.read(RESPONSE_LIMIT + 1)
        elapsed = time.perf_counter() - started
        return (response.status, {k.lower(): v for k, v in response.getheaders()}, content[:RESPONSE_LIMIT],
                len(content) > RESPONSE_LIMIT, elapsed)
    finally:
        connection.close()


def _pretty(content: bytes, content_type: str) -> str:
    text = content.decode("utf-8", errors="replace")
    if "json" in content_type:
        try:
            return json.dumps(json.loads(text), indent=2)
        except ValueError:
            pass
    return text


def endpoint_try(*, actor, endpoint: Endpoint, body: str) -> TryResult:
    """Send ``body`` to the endpoint's example route through the cluster's gateway as ``actor``
    and record the attempt. ``ValidationError`` for a body that is not JSON or a gateway not
    set (nothing is sent then)."""
    payload = parse_body(body)
    why_not = unavailable_reason(endpoint)
    if why_not:
        raise ValidationError({"body": [why_not]})
    status = selectors.endpoint_status(endpoint)
    base, host = calling.gateway_target(endpoint, status.url.rstrip("/"))
    route = example(endpoint)["route"]
    credential, issued = tokens.endpoint_credential_mint(user=actor, endpoint=endpoint)
    result = TryResult(url=base + route, host=host, simulated=calling.serving(endpoint)["simulated"],
                       credential=issued.display_prefix)
    try:
        code, headers, content, truncated, elapsed = _send(base, host, route, payload, credential)
    except (OSError, http.client.HTTPException) as exc:
        result.error = f"No answer from the gateway at {base}: {exc or type(exc).__name__}."
    else:
        result.status, result.latency_ms, result.truncated = code, round(elapsed * 1000, 1), truncated
        result.content_type = headers.get("content-type", "")
        result.body = _pretty(content, result.content_type)
        result.headers = {k: v for k, v in headers.items() if k in ("x-request-id", "content-type", "server")}
        if code == 403:
            # The gateway answers a short, generic 403 to every caller; the console says why to
            # the signed-in user, who may read their own access (as on the access check page).
            result.reason = access_check(user=actor, obj=endpoint, action="infer").reason
        elif code == 401:
            result.reason = "The gateway did not accept the console's credential (expired, or the console's key changed)."
    _record(actor=actor, endpoint=endpoint, result=result, route=route, size=len(payload))
    return result


@transaction.atomic
def _record(*, actor, endpoint: Endpoint, result: TryResult, route: str, size: int) -> None:
    outcome = audit.SUCCESS if result.ok else audit.DENIED if result.denied else audit.FAILURE
    audit.record(action="endpoint.try", actor=actor, target=endpoint, outcome=outcome,
                 details={"method": "POST", "path": route, "gateway": result.url.removesuffix(route),
                          "host": result.host, "status": result.status, "latency_ms": result.latency_ms,
                          "request_bytes": size, "error": result.error, "reason": result.reason,
                          "credential": result.credential, "simulated": result.simulated,
                          "upstream_request_id": result.headers.get("x-request-id", "")})


def overview_panel(request, endpoint: Endpoint) -> dict | None:
    """The "Try it" panel of the endpoint's overview (registered into the endpoints app's page
    from ``AccessConfig.ready``): the prefilled request, or why it cannot be tried."""
    if not request.user.is_authenticated:
        return None
    request_example = example(endpoint)
    return {"template": "console/access/try_it/_panel.html", "endpoint": endpoint,
            "example": request_example, "unavailable": unavailable_reason(endpoint),
            "serving": calling.serving(endpoint)}
