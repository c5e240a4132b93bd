"""Validating manifests against a KServe CRD's OpenAPI schema with unknown fields REJECTED.

The API server prunes (or, with ``fieldValidation=Strict``, refuses) fields a structural CRD
schema does not declare, while plain JSON Schema accepts them silently. A typo such as
``maxReplica`` would therefore pass a naive schema check and vanish on the cluster. This
helper makes the schema strict the way the API server is: every object schema that declares
``properties`` and neither ``additionalProperties`` nor ``x-kubernetes-preserve-unknown-fields``
gets ``additionalProperties: false``.

Reusable by any test (render matrix, fake API server): ``isvc_validator()`` for the
InferenceService CRD, or ``strict_schema`` / ``validator_for`` for any CRD schema.
"""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path

import yaml
from jsonschema import Draft7Validator

from tests.conftest import shared_path

ISVC_CRD = ("kserve", "crds", "serving.kserve.io_inferenceservices.yaml")

# The parts of ObjectMeta a console manifest may send; used with ``strict_metadata=True``
# because the CRD declares ``metadata`` as a bare object.
OBJECT_META_SUBSET = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "namespace"],
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "namespace": {"type": "string", "minLength": 1},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}


def strict_schema(schema: dict) -> dict:
    """A deep copy of an OpenAPI v3 (Kubernetes structural) schema, made strict:

    - ``additionalProperties: false`` on object schemas with ``properties`` and no
      ``additionalProperties`` / ``x-kubernetes-preserve-unknown-fields``;
    - ``x-kubernetes-int-or-string`` without an explicit type becomes integer-or-string;
    - ``nullable: true`` admits ``null`` as JSON Schema spells it.
    """
    result = copy.deepcopy(schema)
    _strictify(result)
    return result


def _strictify(node) -> None:
    if isinstance(node, list):
        for item in node:
            _strictify(item)
        return
    if not isinstance(node, dict):
        return
    if (
        "properties" in node
        and "additionalProperties" not in node
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        node["additionalProperties"] = False
    if node.get("x-kubernetes-int-or-string") and not any(k in node for k in ("type", "anyOf", "oneOf")):
        node["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if node.get("nullable") and isinstance(node.get("type"), str):
        node["type"] = [node["type"], "null"]
    for key, child in node.items():
        if key in ("properties", "patternProperties", "definitions"):
            for sub in child.values():
                _strictify(sub)
        elif key in ("items", "additionalProperties", "not") or key in ("allOf", "anyOf", "oneOf"):
            _strictify(child)


def crd_version_schema(crd_path: Path, version: str) -> dict:
    """The ``openAPIV3Schema`` of one served version of a CRD file."""
    # The InferenceService CRD is ~2 MB of YAML: the C loader reads it several times faster.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    crd = yaml.load(Path(crd_path).read_text(), Loader=loader)  # noqa: S506 - a safe loader
    for entry in crd["spec"]["versions"]:
        if entry["name"] == version:
            return entry["schema"]["openAPIV3Schema"]
    raise KeyError(f"{crd_path} has no version {version}")


def validator_for(schema: dict, *, strict_metadata: bool = False) -> Draft7Validator:
    """A Draft 7 validator for the strict form of ``schema``. With ``strict_metadata`` the bare
    ``metadata: {type: object}`` is replaced by ``OBJECT_META_SUBSET``."""
    strict = strict_schema(schema)
    if strict_metadata:
        strict.setdefault("properties", {})["metadata"] = copy.deepcopy(OBJECT_META_SUBSET)
    # No check_schema(): validating the ~1 MB CRD schema against the metaschema takes seconds
    # and KServe's generator already emits valid schemas.
    return Draft7Validator(strict)


@cache
def _isvc_schema() -> dict:
    return crd_version_schema(shared_path(*ISVC_CRD), "v1beta1")


def isvc_validator(*, strict_metadata: bool = False) -> Draft7Validator:
    """Strict validator for ``serving.kserve.io/v1beta1`` InferenceServices (skips without
    ../shared locally, fails in CI)."""
    return _isvc_validator(strict_metadata)


@cache
def _isvc_validator(strict_metadata: bool) -> Draft7Validator:
    return validator_for(_isvc_schema(), strict_metadata=strict_metadata)


def schema_errors(validator: Draft7Validator, manifest: dict) -> list[str]:
    """Readable ``path: message`` lines for every violation (empty = valid)."""
    return sorted(
        f"{'.'.join(str(p) for p in error.absolute_path) or '<root>'}: {error.message}"
        for error in validator.iter_errors(manifest)
    )
