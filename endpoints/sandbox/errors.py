"""Kubernetes-shaped API errors for the fake API server.

Every failure the fake server returns is a ``metav1.Status`` body, shaped like the real
kube-apiserver's, so clients (the ``kubernetes`` Python client, kubectl, the console's
``ClusterClient``) parse and classify them exactly as they would against a real cluster.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# HTTP status code -> Status.reason, as k8s.io/apimachinery/pkg/api/errors assigns them.
REASON_FOR_CODE = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    409: "Conflict",
    410: "Expired",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


@dataclass
class Cause:
    """One entry of ``details.causes``: which field is wrong and why."""

    reason: str
    message: str
    field: str = ""

    def to_dict(self) -> dict[str, str]:
        out = {"reason": self.reason, "message": self.message}
        if self.field:
            out["field"] = self.field
        return out


@dataclass
class ApiError(Exception):
    """An error response; raised anywhere in request handling and rendered as a Status."""

    code: int
    message: str
    reason: str = ""
    name: str = ""
    group: str = ""
    kind: str = ""
    causes: list[Cause] = field(default_factory=list)
    retry_after: int | None = None
    uid: str = ""

    def __post_init__(self) -> None:
        if not self.reason:
            self.reason = REASON_FOR_CODE.get(self.code, "Unknown")
        super().__init__(self.message)

    def to_status(self) -> dict[str, Any]:
        """The ``Status`` object the real server would send for this error."""
        status: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        details: dict[str, Any] = {}
        if self.name:
            details["name"] = self.name
        if self.group:
            details["group"] = self.group
        if self.kind:
            details["kind"] = self.kind
        if self.uid:
            details["uid"] = self.uid
        if self.causes:
            details["causes"] = [c.to_dict() for c in self.causes]
        if self.retry_after is not None:
            details["retryAfterSeconds"] = self.retry_after
        if details:
            status["details"] = details
        return status


def qualified(plural: str, group: str) -> str:
    """``inferenceservices.serving.kserve.io`` / ``secrets``: how the server names a resource."""
    return f"{plural}.{group}" if group else plural


def not_found(plural: str, group: str, name: str, kind: str = "") -> ApiError:
    return ApiError(
        404,
        f'{qualified(plural, group)} "{name}" not found',
        name=name,
        group=group,
        kind=plural,
    )


def already_exists(plural: str, group: str, name: str) -> ApiError:
    return ApiError(
        409,
        f'{qualified(plural, group)} "{name}" already exists',
        reason="AlreadyExists",
        name=name,
        group=group,
        kind=plural,
    )


def stale_conflict(plural: str, group: str, name: str) -> ApiError:
    return ApiError(
        409,
        f'Operation cannot be fulfilled on {qualified(plural, group)} "{name}": the object has been '
        "modified; please apply your changes to the latest version and try again",
        name=name,
        group=group,
        kind=plural,
    )


def bad_request(message: str, causes: list[Cause] | None = None) -> ApiError:
    return ApiError(400, message, causes=list(causes or []))


def invalid(kind: str, group: str, name: str, causes: list[Cause]) -> ApiError:
    """422 Invalid with one cause per offending field, message formatted like the real server."""
    parts = [f"{c.field}: {c.message}" if c.field else c.message for c in causes]
    joined = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
    qualified_kind = f"{kind}.{group}" if group else kind
    return ApiError(
        422,
        f'{qualified_kind} "{name}" is invalid: {joined}',
        name=name,
        group=group,
        kind=kind,
        causes=causes,
    )
