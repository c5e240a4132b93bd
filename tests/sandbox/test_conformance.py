"""Where the fake API server used to be more permissive than a real kube-apiserver.

Each test drives ``FakeApiServer`` over real HTTP (urllib, so bodies can carry repeated keys)
or with the real kubectl, and checks the status, reason and wording a real server answers with.
The wording comes from the Kubernetes sources (apimachinery ``ValidateNoNewFinalizers``,
``structuredMergeManager.Apply``, the endpoint handlers' ``checkName``/``patch.go``, and the
integration test ``test/integration/apiserver/field_validation_test.go``).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from endpoints.sandbox import FakeApiServer
from tests.fixtures.kube import make_kubectl

GROUP, VERSION = "serving.kserve.io", "v1beta1"
ISVCS = f"/apis/{GROUP}/{VERSION}/namespaces/default/inferenceservices"
SECRETS = "/api/v1/namespaces/default/secrets"
APPLY = "application/apply-patch+yaml"
MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"


def call(server: FakeApiServer, method: str, path: str, body: Any = None, *, content_type: str = "application/json",
         accept: str = "application/json", **query: str) -> tuple[int, Any, Any]:
    """One request; a str/bytes body is sent verbatim (so it may repeat keys). Returns (status, body, headers)."""
    if query:
        path += "?" + "&".join(f"{k}={v}" for k, v in query.items())
    data = None
    if body is not None:
        data = body.encode() if isinstance(body, str) else body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(server.url + path, data=data, method=method,
                                 headers={"Content-Type": content_type, "Accept": accept})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            status, raw, headers = resp.status, resp.read(), resp.headers
    except urllib.error.HTTPError as exc:
        status, raw, headers = exc.code, exc.read(), exc.headers
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        parsed = raw
    return status, parsed, headers


def warnings_of(headers: Any) -> list[str]:
    """The texts of ``Warning: 299 - "..."`` headers, in order."""
    out = []
    for value in headers.get_all("Warning") or []:
        text = value.split(" - ", 1)[1]
        out.append(json.loads(text))
    return out


def isvc(name: str = "iris", **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "InferenceService",
        "metadata": {"name": name, "namespace": "default", **meta},
        "spec": {"predictor": {"model": {"modelFormat": {"name": "sklearn"}, "storageUri": "gs://bucket/iris"}}},
    }


def deleting_isvc(server: FakeApiServer, name: str = "iris") -> dict[str, Any]:
    """An InferenceService with one finalizer that has been deleted (so it carries deletionTimestamp)."""
    status, _, _ = call(server, "POST", ISVCS, isvc(name, finalizers=["example.com/keep"]))
    assert status == 201
    status, obj, _ = call(server, "DELETE", f"{ISVCS}/{name}")
    assert status == 200 and obj["metadata"]["deletionTimestamp"]
    return obj


FINALIZER_MESSAGE = ('InferenceService.serving.kserve.io "iris" is invalid: metadata.finalizers: Forbidden: no new '
                     'finalizers can be added if the object is being deleted, found new finalizers []string{"x"}')


def assert_finalizer_refused(status: int, err: dict) -> None:
    assert status == 422, err
    assert err["reason"] == "Invalid"
    assert err["message"] == FINALIZER_MESSAGE
    assert err["details"]["kind"] == "InferenceService" and err["details"]["group"] == GROUP
    assert err["details"]["causes"] == [{
        "reason": "FieldValueForbidden", "field": "metadata.finalizers",
        "message": 'Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers '
                   '[]string{"x"}',
    }]


# --- 1. no new finalizers on an object being deleted ----------------------------------------------------


def test_put_adding_a_finalizer_to_a_deleting_object_is_invalid(fake_apiserver):
    obj = deleting_isvc(fake_apiserver)
    obj["metadata"]["finalizers"].append("x")
    assert_finalizer_refused(*call(fake_apiserver, "PUT", f"{ISVCS}/iris", obj)[:2])
    assert fake_apiserver.store.get("isvc", "default", "iris")["metadata"]["finalizers"] == ["example.com/keep"]


@pytest.mark.parametrize(("content_type", "patch"), [
    (MERGE, {"metadata": {"finalizers": ["example.com/keep", "x"]}}),
    (JSON_PATCH, [{"op": "add", "path": "/metadata/finalizers/-", "value": "x"}]),
])
def test_patch_adding_a_finalizer_to_a_deleting_object_is_invalid(fake_apiserver, content_type, patch):
    deleting_isvc(fake_apiserver)
    assert_finalizer_refused(*call(fake_apiserver, "PATCH", f"{ISVCS}/iris", patch, content_type=content_type)[:2])


def test_apply_adding_a_finalizer_to_a_deleting_object_is_invalid(fake_apiserver):
    deleting_isvc(fake_apiserver)
    body = isvc(finalizers=["x"])
    assert_finalizer_refused(*call(fake_apiserver, "PATCH", f"{ISVCS}/iris", body, content_type=APPLY,
                                   fieldManager="tester")[:2])


def test_strategic_patch_adding_a_finalizer_to_a_deleting_core_object_is_invalid(fake_apiserver):
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "finalizers": ["example.com/keep"]}}
    assert call(fake_apiserver, "POST", SECRETS, secret)[0] == 201
    assert call(fake_apiserver, "DELETE", f"{SECRETS}/s")[0] == 200
    status, err, _ = call(fake_apiserver, "PATCH", f"{SECRETS}/s", {"metadata": {"finalizers": ["a.io/b", "a.io/a"]}},
                          content_type=STRATEGIC)
    assert status == 422
    # Go prints the sorted set of new finalizers with %#v.
    assert err["message"] == ('Secret "s" is invalid: metadata.finalizers: Forbidden: no new finalizers can be added '
                              'if the object is being deleted, found new finalizers []string{"a.io/a", "a.io/b"}')


def test_keeping_or_removing_finalizers_of_a_deleting_object_stays_allowed(fake_apiserver):
    deleting_isvc(fake_apiserver)
    status, obj, _ = call(fake_apiserver, "PATCH", f"{ISVCS}/iris", {"metadata": {"labels": {"a": "b"}}},
                          content_type=MERGE)
    assert status == 200 and obj["metadata"]["finalizers"] == ["example.com/keep"]
    status, _, _ = call(fake_apiserver, "PATCH", f"{ISVCS}/iris", {"metadata": {"finalizers": None}},
                        content_type=MERGE)
    assert status == 200
    assert fake_apiserver.store.get("isvc", "default", "iris") is None


def test_kubectl_patch_adding_a_finalizer_to_a_deleting_object_fails(fake_apiserver, tmp_path: Path):
    deleting_isvc(fake_apiserver)
    kubectl = make_kubectl(fake_apiserver, tmp_path / "home")
    result = kubectl("patch", "isvc", "iris", "--type=json",
                     "-p", '[{"op":"add","path":"/metadata/finalizers/-","value":"x"}]', check=False)
    assert result.returncode != 0
    # kubectl rewrites the head of an Invalid message ("The <Kind> ... is invalid") and keeps the causes.
    assert result.stderr.strip() == 'The InferenceService "iris" is invalid: ' + FINALIZER_MESSAGE.split("is invalid: ")[1]


# --- 2. managedFields in an applied configuration --------------------------------------------------------


@pytest.mark.parametrize("managed", [
    [{"manager": "someone", "operation": "Apply", "apiVersion": f"{GROUP}/{VERSION}", "fieldsType": "FieldsV1",
      "fieldsV1": {"f:spec": {}}}],
    [],  # any non-nil value: the real accessor returns an empty, non-nil slice for []
])
def test_apply_with_managed_fields_is_a_bad_request(fake_apiserver, managed):
    status, err, _ = call(fake_apiserver, "PATCH", f"{ISVCS}/iris", isvc(managedFields=managed), content_type=APPLY,
                          fieldManager="tester")
    assert status == 400
    assert err["reason"] == "BadRequest" and err["message"] == "metadata.managedFields must be nil"
    assert fake_apiserver.store.get("isvc", "default", "iris") is None


def test_apply_with_null_managed_fields_is_accepted(fake_apiserver):
    status, obj, _ = call(fake_apiserver, "PATCH", f"{ISVCS}/iris", isvc(managedFields=None), content_type=APPLY,
                          fieldManager="tester")
    assert status == 201
    assert [m["manager"] for m in obj["metadata"]["managedFields"]] == ["tester"]


def test_kubectl_server_side_apply_of_output_with_managed_fields_fails(fake_apiserver, tmp_path: Path):
    """kubectl sends managedFields as they are; a real server refuses them, and so does the fake one.
    Without them (kubectl's default output) the same apply goes through."""
    kubectl = make_kubectl(fake_apiserver, tmp_path / "home")
    assert call(fake_apiserver, "POST", ISVCS, isvc())[0] == 201
    with_fields = kubectl("get", "isvc", "iris", "-o", "json", "--show-managed-fields").stdout
    assert "managedFields" in with_fields
    result = kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input=with_fields, check=False)
    assert result.returncode != 0
    assert result.stderr.strip() == "Error from server (BadRequest): metadata.managedFields must be nil"
    kubectl("apply", "--server-side", "--force-conflicts", "-f", "-",
            input=kubectl("get", "isvc", "iris", "-o", "json").stdout)


# --- 3. repeated keys in request bodies ------------------------------------------------------------------

DUPLICATED = """{
  "apiVersion": "serving.kserve.io/v1beta1",
  "kind": "InferenceService",
  "metadata": {"name": "first", "name": "iris", "namespace": "default"},
  "spec": {"predictor": {"model": {"modelFormat": {"name": "sklearn"},
    "storageUri": "gs://bucket/old", "storageUri": "gs://bucket/new"}}}
}"""
DUPLICATE_FIELDS = ['duplicate field "metadata.name"', 'duplicate field "spec.predictor.model.storageUri"']


def test_create_with_repeated_keys_strict_is_a_bad_request(fake_apiserver):
    status, err, _ = call(fake_apiserver, "POST", ISVCS, DUPLICATED, fieldValidation="Strict")
    assert status == 400 and err["reason"] == "BadRequest"
    assert err["message"] == ('InferenceService in version "v1beta1" cannot be handled as a InferenceService: '
                              "strict decoding error: " + ", ".join(DUPLICATE_FIELDS))
    assert fake_apiserver.store.list("isvc") == []


def test_create_with_repeated_keys_and_unknown_fields_strict_lists_duplicates_first(fake_apiserver):
    body = DUPLICATED.replace('"kind": "InferenceService",', '"kind": "InferenceService", "bogus": 1,')
    status, err, _ = call(fake_apiserver, "POST", ISVCS, body, fieldValidation="Strict")
    assert status == 400
    assert err["message"].endswith("strict decoding error: " + ", ".join(DUPLICATE_FIELDS) + ', unknown field "bogus"')


@pytest.mark.parametrize("validation", ["Warn", None])
def test_create_with_repeated_keys_warns_and_the_last_value_wins(fake_apiserver, validation):
    query = {"fieldValidation": validation} if validation else {}
    status, obj, headers = call(fake_apiserver, "POST", ISVCS, DUPLICATED, **query)
    assert status == 201
    assert warnings_of(headers) == DUPLICATE_FIELDS
    assert obj["metadata"]["name"] == "iris"
    assert obj["spec"]["predictor"]["model"]["storageUri"] == "gs://bucket/new"


def test_create_with_repeated_keys_ignore_is_silent(fake_apiserver):
    status, obj, headers = call(fake_apiserver, "POST", ISVCS, DUPLICATED, fieldValidation="Ignore")
    assert status == 201 and warnings_of(headers) == []
    assert obj["spec"]["predictor"]["model"]["storageUri"] == "gs://bucket/new"


def test_put_with_repeated_keys_strict_is_a_bad_request(fake_apiserver):
    _, created, _ = call(fake_apiserver, "POST", ISVCS, isvc())
    body = DUPLICATED.replace('"namespace": "default"',
                              f'"namespace": "default", "resourceVersion": "{created["metadata"]["resourceVersion"]}"')
    status, err, _ = call(fake_apiserver, "PUT", f"{ISVCS}/iris", body, fieldValidation="Strict")
    assert status == 400
    assert err["message"].endswith("strict decoding error: " + ", ".join(DUPLICATE_FIELDS))


def test_core_kind_create_with_repeated_keys_strict(fake_apiserver):
    body = '{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "type": "Opaque", "type": "x/y"}'
    status, err, _ = call(fake_apiserver, "POST", SECRETS, body, fieldValidation="Strict")
    assert status == 400
    assert err["message"] == ('Secret in version "v1" cannot be handled as a Secret: strict decoding error: '
                              'duplicate field "type"')
    status, obj, headers = call(fake_apiserver, "POST", SECRETS, body)
    assert status == 201 and obj["type"] == "x/y" and warnings_of(headers) == ['duplicate field "type"']


def test_merge_patch_with_repeated_keys_strict_is_invalid_on_field_patch(fake_apiserver):
    call(fake_apiserver, "POST", ISVCS, isvc())
    patch = '{"metadata": {"labels": {"a": "1", "a": "2"}}}'
    status, err, _ = call(fake_apiserver, "PATCH", f"{ISVCS}/iris", patch, content_type=MERGE,
                          fieldValidation="Strict")
    assert status == 422 and err["reason"] == "Invalid"
    assert err["message"].startswith(' "" is invalid: patch: Invalid value: "{')
    assert err["message"].endswith('strict decoding error: duplicate field "metadata.labels.a"')
    assert err["details"]["causes"][0]["field"] == "patch"
    status, obj, headers = call(fake_apiserver, "PATCH", f"{ISVCS}/iris", patch, content_type=MERGE)
    assert status == 200 and obj["metadata"]["labels"] == {"a": "2"}
    assert warnings_of(headers) == ['duplicate field "metadata.labels.a"']


def test_json_patch_reports_keys_repeated_inside_an_operation_only(fake_apiserver):
    call(fake_apiserver, "POST", ISVCS, isvc())
    patch = ('[{"op": "add", "path": "/metadata/labels", "path": "/metadata/annotations", '
             '"value": {"k": "1", "k": "2"}}]')
    status, err, _ = call(fake_apiserver, "PATCH", f"{ISVCS}/iris", patch, content_type=JSON_PATCH,
                          fieldValidation="Strict")
    assert status == 422
    assert err["message"].endswith('strict decoding error: json patch duplicate field "[0].path"')
    status, obj, headers = call(fake_apiserver, "PATCH", f"{ISVCS}/iris", patch, content_type=JSON_PATCH)
    assert status == 200 and obj["metadata"]["annotations"] == {"k": "2"}
    assert warnings_of(headers) == ['json patch duplicate field "[0].path"']


YAML_DUPLICATED = """apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: first
  name: iris
  namespace: default
spec:
  predictor:
    model:
      modelFormat: {name: sklearn}
      storageUri: gs://bucket/old
      storageUri: gs://bucket/new
"""
YAML_LINES = ['line 5: key "name" already set in map', 'line 12: key "storageUri" already set in map']


def test_yaml_create_with_repeated_keys(fake_apiserver):
    status, err, _ = call(fake_apiserver, "POST", ISVCS, YAML_DUPLICATED, content_type="application/yaml",
                          fieldValidation="Strict")
    assert status == 400
    assert err["message"].endswith("strict decoding error: yaml: unmarshal errors:\n  " + "\n  ".join(YAML_LINES))
    status, obj, headers = call(fake_apiserver, "POST", ISVCS, YAML_DUPLICATED, content_type="application/yaml")
    assert status == 201 and warnings_of(headers) == YAML_LINES
    assert obj["metadata"]["name"] == "iris" and obj["spec"]["predictor"]["model"]["storageUri"] == "gs://bucket/new"


@pytest.mark.parametrize("body", [YAML_DUPLICATED, "\n" + DUPLICATED])
def test_apply_with_repeated_keys(fake_apiserver, body):
    """Apply bodies are read as YAML whatever their syntax, so JSON bodies get go-yaml line messages too."""
    lines = YAML_LINES if body == YAML_DUPLICATED else ['line 5: key "name" already set in map',
                                                         'line 7: key "storageUri" already set in map']
    path = f"{ISVCS}/iris"
    status, err, _ = call(fake_apiserver, "PATCH", path, body, content_type=APPLY, fieldManager="t",
                          fieldValidation="Strict")
    assert status == 400 and err["reason"] == "BadRequest"
    assert err["message"] == ("error strict decoding YAML: error converting YAML to JSON: yaml: unmarshal errors:\n  "
                              + "\n  ".join(lines))
    status, obj, headers = call(fake_apiserver, "PATCH", path, body, content_type=APPLY, fieldManager="t")
    assert status == 201 and warnings_of(headers) == lines
    assert obj["spec"]["predictor"]["model"]["storageUri"] == "gs://bucket/new"
    status, _, headers = call(fake_apiserver, "PATCH", path, body, content_type=APPLY, fieldManager="t",
                              fieldValidation="Ignore")
    assert status == 200 and warnings_of(headers) == []


# --- 5. identity and immutable metadata --------------------------------------------------------------------


def test_put_with_another_uid_is_a_failed_precondition(fake_apiserver):
    _, obj, _ = call(fake_apiserver, "POST", ISVCS, isvc())
    uid = obj["metadata"]["uid"]
    obj["metadata"]["uid"] = "00000000-0000-0000-0000-000000000000"
    status, err, _ = call(fake_apiserver, "PUT", f"{ISVCS}/iris", obj)
    assert status == 409 and err["reason"] == "Conflict"
    assert err["message"] == (f'Operation cannot be fulfilled on inferenceservices.serving.kserve.io "iris": '
                              f"Precondition failed: UID in precondition: 00000000-0000-0000-0000-000000000000, "
                              f"UID in object meta: {uid}")


@pytest.mark.parametrize("content_type", [MERGE, APPLY])
def test_patch_or_apply_changing_the_uid_is_invalid(fake_apiserver, content_type):
    call(fake_apiserver, "POST", ISVCS, isvc())
    body = isvc(uid="other") if content_type == APPLY else {"metadata": {"uid": "other"}}
    status, err, _ = call(fake_apiserver, "PATCH", f"{ISVCS}/iris", body, content_type=content_type,
                          fieldManager="t")
    assert status == 422
    assert err["message"] == ('InferenceService.serving.kserve.io "iris" is invalid: metadata.uid: '
                              'Invalid value: "other": field is immutable')
    assert err["details"]["causes"] == [{"reason": "FieldValueInvalid", "field": "metadata.uid",
                                         "message": 'Invalid value: "other": field is immutable'}]


def test_apply_creating_with_a_uid_is_a_conflict(fake_apiserver):
    status, err, _ = call(fake_apiserver, "PATCH", f"{ISVCS}/iris", isvc(uid="abc"), content_type=APPLY,
                          fieldManager="t")
    assert status == 409
    assert err["message"] == ('Operation cannot be fulfilled on inferenceservices.serving.kserve.io "iris": uid '
                              "mismatch: the provided object specified uid abc, and no existing object was found")


def test_put_creation_timestamp_and_generation_are_silently_restored(fake_apiserver):
    """Like the real registry's BeforeUpdate: no error, the stored values win."""
    _, obj, _ = call(fake_apiserver, "POST", ISVCS, isvc())
    before = dict(obj["metadata"])
    obj["metadata"]["creationTimestamp"] = "2001-01-01T00:00:00Z"
    obj["metadata"]["generation"] = 42
    obj["metadata"]["labels"] = {"a": "b"}
    status, updated, _ = call(fake_apiserver, "PUT", f"{ISVCS}/iris", obj)
    assert status == 200
    assert updated["metadata"]["creationTimestamp"] == before["creationTimestamp"]
    assert updated["metadata"]["generation"] == before["generation"]


def test_put_without_a_name_does_not_match_the_url(fake_apiserver):
    _, obj, _ = call(fake_apiserver, "POST", ISVCS, isvc())
    del obj["metadata"]["name"]
    status, err, _ = call(fake_apiserver, "PUT", f"{ISVCS}/iris", obj)
    assert status == 400
    assert err["message"] == "the name of the object () does not match the name on the URL (iris)"


def test_put_with_another_name_does_not_match_the_url(fake_apiserver):
    _, obj, _ = call(fake_apiserver, "POST", ISVCS, isvc())
    obj["metadata"]["name"] = "other"
    status, err, _ = call(fake_apiserver, "PUT", f"{ISVCS}/iris", obj)
    assert status == 400 and err["reason"] == "BadRequest"
    assert err["message"] == "the name of the object (other) does not match the name on the URL (iris)"


def test_create_in_another_namespace_than_the_url(fake_apiserver):
    body = isvc()
    body["metadata"]["namespace"] = "kube-system"
    status, err, _ = call(fake_apiserver, "POST", ISVCS, body)
    assert status == 400
    assert err["message"] == "the namespace of the provided object does not match the namespace sent on the request"


def test_create_with_another_api_version(fake_apiserver):
    body = isvc()
    body["apiVersion"] = "example.com/v1"
    status, err, _ = call(fake_apiserver, "POST", ISVCS, body)
    assert status == 400
    assert err["message"] == ("the API version in the data (example.com/v1) does not match the expected API version "
                              "(serving.kserve.io/v1beta1)")


# --- 4. /openapi/v2 ---------------------------------------------------------------------------------------

PROTOBUF_V2 = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"


@pytest.mark.parametrize("accept", ["application/json", "*/*", f"{PROTOBUF_V2}, application/json"])
def test_openapi_v2_is_a_swagger_document_of_every_served_kind(fake_apiserver, accept):
    status, doc, headers = call(fake_apiserver, "GET", "/openapi/v2", accept=accept)
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert doc["swagger"] == "2.0" and doc["info"]["version"] == "v1.37.0-sandbox"
    isvc_def = doc["definitions"]["io.kserve.serving.v1beta1.InferenceService"]
    assert isvc_def["x-kubernetes-group-version-kind"] == [
        {"group": GROUP, "version": VERSION, "kind": "InferenceService"}]
    assert isvc_def["properties"]["metadata"] == {"$ref": "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}
    assert "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta" in doc["definitions"]
    assert doc["definitions"]["io.k8s.api.core.v1.Secret"]["x-kubernetes-group-version-kind"][0]["kind"] == "Secret"
    for kind_def in doc["definitions"].values():
        assert "nullable" not in json.dumps(kind_def).replace('"x-nullable"', "")  # not a Swagger 2.0 keyword
    item = doc["paths"][f"{ISVCS.replace('default', '{namespace}')}/{{name}}"]
    assert set(item) == {"get", "put", "patch", "delete"}
    assert item["get"]["responses"]["200"]["schema"] == {"$ref": "#/definitions/io.kserve.serving.v1beta1.InferenceService"}
    assert item["put"]["parameters"][0]["in"] == "body"
    assert item["patch"]["x-kubernetes-group-version-kind"] == {"group": GROUP, "version": VERSION,
                                                                "kind": "InferenceService"}
    assert "application/apply-patch+yaml" in item["patch"]["consumes"]


def test_openapi_v2_and_v3_describe_the_same_schemas(fake_apiserver):
    """Both documents come from the same builder: same definitions (modulo $ref style), same paths."""
    _, v2, _ = call(fake_apiserver, "GET", "/openapi/v2")
    _, v3, _ = call(fake_apiserver, "GET", f"/openapi/v3/apis/{GROUP}/{VERSION}")
    for name, schema in v3["components"]["schemas"].items():
        expected = json.loads(json.dumps(schema).replace("#/components/schemas/", "#/definitions/"))
        assert set(v2["definitions"][name]) <= set(expected), name
        assert v2["definitions"][name].get("x-kubernetes-group-version-kind") == expected.get(
            "x-kubernetes-group-version-kind")
    for path, ops in v3["paths"].items():
        assert set(v2["paths"][path]) == set(ops), path


def test_openapi_v2_in_protobuf_only_is_not_acceptable(fake_apiserver):
    status, err, _ = call(fake_apiserver, "GET", "/openapi/v2", accept=PROTOBUF_V2)
    assert status == 406 and err["reason"] == "NotAcceptable"


def test_kubectl_commands_that_read_openapi_v2_still_work(fake_apiserver, tmp_path: Path):
    """Client-side apply and diff of a custom resource ask for /openapi/v2 (protobuf); 406 does not stop them."""
    kubectl = make_kubectl(fake_apiserver, tmp_path / "home")
    kubectl("apply", "-f", "-", input=json.dumps(isvc()))
    changed = isvc()
    changed["spec"]["predictor"]["model"]["storageUri"] = "gs://bucket/v2"
    fake_apiserver.clear_requests()
    result = kubectl("diff", "-f", "-", input=json.dumps(changed), check=False)
    assert result.returncode == 1 and "gs://bucket/v2" in result.stdout  # 1: differences found
    kubectl("apply", "-f", "-", input=json.dumps(changed))
    assert fake_apiserver.store.get("isvc", "default", "iris")["spec"]["predictor"]["model"]["storageUri"] == \
        "gs://bucket/v2"
    assert [r.status for r in fake_apiserver.requests(path="/openapi/v2")] == [406, 406]


def test_create_of_a_custom_resource_with_another_kind_is_invalid(fake_apiserver):
    """The real CR validator (ValidateTypeMeta) answers 422 on the field ``kind``."""
    body = isvc()
    body["kind"] = "ServingRuntime"
    status, err, _ = call(fake_apiserver, "POST", ISVCS, body)
    assert status == 422
    assert err["message"] == ('InferenceService.serving.kserve.io "iris" is invalid: kind: Invalid value: '
                              '"ServingRuntime": must be InferenceService')
