"""What the OpenAPI schema (``/api/schema/``) says about every operation beyond its own serializers.

drf-spectacular documents the success answers each view declares. Every API call can also be
answered by the framework itself, with the one error body (``console.api.errors``); this
post-processing hook adds those answers to each operation where they can happen, so that a
client generated from the schema (and the schemathesis run in CI, tests/console/test_api_fuzz.py)
finds every status the API really sends:

=====  ==========================================================================================
400    a request body or query parameter the API refuses (field messages in ``errors``), or a
       malformed ``Idempotency-Key``
401    no credentials, or an unknown, expired or revoked API token
403    signed in, but the role, the token's scopes or the CSRF check do not allow it
404    an id in the path that does not exist, is out of range or is not visible to the caller;
       a ``page`` past the last one, a ``cursor`` that is not one
409    (writes) the object is in use or in a state that refuses the change, or a request with the
       same ``Idempotency-Key`` is still being answered
422    (writes) an ``Idempotency-Key`` already used with another request body
429    over the rate limit (``Retry-After`` says when to come back)
=====  ==========================================================================================

Writes also get the ``Idempotency-Key`` request header (``console.api.idempotency``).
"""

from __future__ import annotations

from django.core.exceptions import FieldDoesNotExist
from django.db import models
from drf_spectacular.openapi import AutoSchema

MUTATING = ("post", "put", "patch", "delete")

ERROR_COMPONENT = "Error"
ERROR_SCHEMA = {
    "type": "object",
    "description": "The API's one error body: a sentence, and the messages of each field at fault.",
    "properties": {
        "detail": {"type": "string", "description": "What went wrong, in one sentence."},
        "errors": {
            "type": "object",
            "description": "Messages per request field (``non_field_errors`` for the request as a whole).",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
        },
    },
    "required": ["detail", "errors"],
}

ERROR_DESCRIPTIONS = {
    "400": "The request was refused: `errors` names each field at fault.",
    "401": "No credentials, or an unknown, expired or revoked API token.",
    "403": "The caller may not do this (role, token scopes or CSRF check).",
    "404": "No such object, or not one the caller may see.",
    "409": "The object's state refuses the change, or a request with this Idempotency-Key is still "
           "being answered.",
    "422": "This Idempotency-Key was already used with another request.",
    "429": "Over the rate limit; retry after the number of seconds in Retry-After.",
}

IDEMPOTENCY_HEADER = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": (
        "A client-chosen key (1–255 printable ASCII characters) that makes a retry safe: for 24 "
        "hours, the same key and request body from the same user get the first answer again "
        "(status and body, with `Idempotent-Replayed: true`) instead of a second change; the "
        "same key with another body gets 422, and while the first request is still being "
        "answered, 409."
    ),
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[\\x21-\\x7e]+$"},
}

REPLAYED_HEADER = {
    "Idempotent-Replayed": {
        "description": "`true` when this is the stored answer to an earlier request with the same "
                       "Idempotency-Key.",
        "schema": {"type": "string", "enum": ["true"]},
    }
}


def _error_response(status: str) -> dict:
    response = {
        "description": ERROR_DESCRIPTIONS[status],
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ERROR_COMPONENT}"}}},
    }
    if status == "429":
        response["headers"] = {"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}}
    return response


def _statuses(method: str, operation: dict, path: str) -> list[str]:
    statuses = []
    mutating = method in MUTATING
    has_query = any(p.get("in") == "query" for p in operation.get("parameters", []))
    if mutating or has_query or "requestBody" in operation:
        statuses.append("400")
    if operation.get("security") != [{}]:
        statuses += ["401", "403"]
    paginated = any(p.get("in") == "query" and p.get("name") in ("page", "cursor")
                    for p in operation.get("parameters", []))
    if "{" in path or paginated:  # a page past the last one, or a cursor that is none, is a 404 too
        statuses.append("404")
    if mutating:
        statuses += ["409", "422"]
    statuses.append("429")
    return statuses


def add_error_responses(result, generator, request, public):
    """drf-spectacular ``POSTPROCESSING_HOOKS`` entry: error answers, the error body component,
    the Idempotency-Key header on writes."""
    result.setdefault("components", {}).setdefault("schemas", {})[ERROR_COMPONENT] = ERROR_SCHEMA
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            responses = operation.setdefault("responses", {})
            for status in _statuses(method, operation, path):
                existing = responses.get(status)
                if existing is None or not existing.get("content"):
                    # A view's own description of the status is kept; the body is the error body.
                    described = existing.get("description") if existing else None
                    responses[status] = _error_response(status)
                    if described:
                        responses[status]["description"] = described
            if method in MUTATING:
                parameters = operation.setdefault("parameters", [])
                if not any(p.get("name") == IDEMPOTENCY_HEADER["name"] for p in parameters):
                    parameters.append(dict(IDEMPOTENCY_HEADER))
                for status, response in responses.items():
                    if status.startswith("2"):
                        response.setdefault("headers", {}).update(REPLAYED_HEADER)
    return result


# --- field types true to what the API answers ------------------------------------------------

_TEXT_FIELDS = (models.CharField, models.TextField)


def _model_field(field):
    """The model field a serializer field reads (``source`` on the serializer's model), if any."""
    parent = getattr(field, "parent", None)
    model = getattr(getattr(parent, "Meta", None), "model", None)
    source = getattr(field, "source", None)
    if model is None or not source or "." in source or source == "*":
        return None
    try:
        model_field = model._meta.get_field(source)
    except FieldDoesNotExist:
        return None
    return None if model_field.auto_created and not model_field.concrete else model_field


class ConsoleAutoSchema(AutoSchema):
    """drf-spectacular's AutoSchema, with two answers it gets wrong for read-only fields.

    DRF drops ``allow_blank`` and ``allow_null`` from the read-only fields of a
    ``ModelSerializer`` and from explicitly declared read-only relations, so the schema said
    "an email address" or "one of concurrency, rps, cpu, memory" where the API answers ``""``
    for a blank column, and "a string" where it answers ``null`` for an empty foreign key
    (a grant to a team has no user). The model field says what the column can hold.
    """

    def _map_serializer_field(self, field, direction, bypass_extensions=False):
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        if not isinstance(schema, dict) or not getattr(field, "read_only", False):
            return schema
        model_field = _model_field(field)
        if model_field is None:
            return schema
        if model_field.null and not schema.get("nullable") and "$ref" not in schema and "allOf" not in schema:
            schema["nullable"] = True
        if model_field.blank and isinstance(model_field, _TEXT_FIELDS) and schema.get("type") == "string":
            if "enum" in schema and "" not in schema["enum"]:
                schema["enum"] = [*schema["enum"], ""]
            elif "format" in schema:
                # "" or a value of the format: the format stays in the description of the choice.
                fmt = schema.pop("format")
                schema.pop("type")
                schema["anyOf"] = [{"type": "string", "format": fmt}, {"type": "string", "maxLength": 0}]
        return schema
