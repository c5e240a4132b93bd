"""Behaviour of the fake Kubernetes API server, exercised through the real ``kubernetes`` client over HTTP."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes import watch as k8s_watch

from endpoints.sandbox import FakeApiServer
from tests.fixtures.kube import KSERVE_EXAMPLES_DIR, REPO_ROOT

GROUP, VERSION, PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"
APPLY = "application/apply-patch+yaml"


def isvc(name: str = "iris", namespace: str = "default", **predictor: Any) -> dict[str, Any]:
    spec = {"model": {"modelFormat": {"name": "sklearn"}, "storageUri": "gs://bucket/iris"}}
    spec.update(predictor)
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "InferenceService",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"predictor": spec},
    }


class Api:
    """The official client, raw: every call returns (status, body-as-dict, headers)."""

    def __init__(self, server: FakeApiServer, token: str | None = None, user_agent: str | None = None):
        cfg = k8s.Configuration(host=server.url)
        cfg.retries = False
        if token:
            cfg.api_key = {"BearerToken": token}
            cfg.api_key_prefix = {"BearerToken": "Bearer"}
        self.client = k8s.ApiClient(cfg)
        if user_agent:
            self.client.user_agent = user_agent
        self.custom = k8s.CustomObjectsApi(self.client)
        self.core = k8s.CoreV1Api(self.client)
        self.server = server
        self.token = token

    def _run(self, fn, *args, **kwargs) -> tuple[int, dict, Any]:
        try:
            resp = fn(*args, _preload_content=False, _request_timeout=(5, 10), **kwargs)
            return resp.status, json.loads(resp.data or b"{}"), resp.headers
        except k8s.ApiException as exc:
            return exc.status, json.loads(exc.body or "{}"), exc.headers

    def raw(self, method: str, path: str, body: Any = None, headers: dict | None = None) -> tuple[int, Any, Any]:
        hdrs = {"Accept": "application/json", **(headers or {})}
        if self.token:
            hdrs["Authorization"] = f"Bearer {self.token}"
        if body is not None:
            hdrs.setdefault("Content-Type", "application/json")
        resp = self.client.call_api(method, self.server.url + path, header_params=hdrs, body=body,
                                    _request_timeout=(5, 10))
        data = resp.read()
        try:
            parsed = json.loads(data) if data else None
        except ValueError:
            parsed = data
        return resp.status, parsed, resp.headers

    # custom resources
    def apply(self, body: dict, manager: str = "console", force: bool = False, **kwargs) -> tuple[int, dict, Any]:
        meta = body["metadata"]
        return self._run(self.custom.patch_namespaced_custom_object, GROUP, VERSION, meta["namespace"], PLURAL,
                         meta["name"], body, field_manager=manager, force=force or None, _content_type=APPLY,
                         **kwargs)

    def create(self, body: dict, **kwargs) -> tuple[int, dict, Any]:
        return self._run(self.custom.create_namespaced_custom_object, GROUP, VERSION,
                         body["metadata"]["namespace"], PLURAL, body, **kwargs)

    def get(self, name: str, namespace: str = "default") -> tuple[int, dict, Any]:
        return self._run(self.custom.get_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, name)

    def replace(self, body: dict, **kwargs) -> tuple[int, dict, Any]:
        meta = body["metadata"]
        return self._run(self.custom.replace_namespaced_custom_object, GROUP, VERSION, meta["namespace"], PLURAL,
                         meta["name"], body, **kwargs)

    def replace_status(self, body: dict) -> tuple[int, dict, Any]:
        meta = body["metadata"]
        return self._run(self.custom.replace_namespaced_custom_object_status, GROUP, VERSION, meta["namespace"],
                         PLURAL, meta["name"], body)

    def merge_patch(self, name: str, patch: Any, namespace: str = "default", **kwargs) -> tuple[int, dict, Any]:
        return self._run(self.custom.patch_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, name, patch,
                         **kwargs)

    def delete(self, name: str, namespace: str = "default", **kwargs) -> tuple[int, dict, Any]:
        return self._run(self.custom.delete_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, name,
                         **kwargs)

    def list(self, namespace: str = "default", **kwargs) -> tuple[int, dict, Any]:
        return self._run(self.custom.list_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, **kwargs)


@pytest.fixture
def api(fake_apiserver: FakeApiServer) -> Api:
    return Api(fake_apiserver)


def managers(obj: dict) -> dict[tuple[str, str], dict]:
    return {(m["manager"], m["operation"]): m["fieldsV1"] for m in obj["metadata"].get("managedFields", [])}


# --- discovery, version, openapi ------------------------------------------------------------------


def test_discovery_lists_kserve_resources_with_short_names_and_status_subresource(api):
    status, body, _ = api.raw("GET", "/apis/serving.kserve.io/v1beta1")
    assert status == 200 and body["kind"] == "APIResourceList"
    resources = {r["name"]: r for r in body["resources"]}
    assert resources["inferenceservices"]["shortNames"] == ["isvc"]
    assert resources["inferenceservices"]["namespaced"] is True
    assert resources["inferenceservices"]["singularName"] == "inferenceservice"
    assert {"create", "get", "list", "watch", "patch", "update", "delete"} <= set(resources["inferenceservices"]["verbs"])
    assert resources["inferenceservices/status"]["verbs"] == ["get", "patch", "update"]

    _, alpha, _ = api.raw("GET", "/apis/serving.kserve.io/v1alpha1")
    scopes = {r["name"]: r["namespaced"] for r in alpha["resources"]}
    assert scopes == {"clusterservingruntimes": False, "servingruntimes": True}

    _, core, _ = api.raw("GET", "/api/v1")
    assert {"namespaces", "secrets", "serviceaccounts", "events", "pods"} <= {r["name"] for r in core["resources"]}
    _, groups, _ = api.raw("GET", "/apis")
    by_name = {g["name"]: g for g in groups["groups"]}
    assert by_name["serving.kserve.io"]["preferredVersion"]["groupVersion"] == "serving.kserve.io/v1beta1"
    assert by_name["apiextensions.k8s.io"]["preferredVersion"]["groupVersion"] == "apiextensions.k8s.io/v1"
    _, versions, _ = api.raw("GET", "/api")
    assert versions["versions"] == ["v1"]


def test_aggregated_discovery_only_accept_gets_406_but_fallback_accept_gets_legacy_form(api):
    aggregated = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    status, _, _ = api.raw("GET", "/apis", headers={"Accept": aggregated})
    assert status == 406
    status, body, _ = api.raw("GET", "/apis", headers={"Accept": aggregated + ",application/json"})
    assert status == 200 and body["kind"] == "APIGroupList"


def test_version_and_openapi_v3_advertise_field_validation(api):
    _, version, _ = api.raw("GET", "/version")
    assert version["major"] == "1" and version["gitVersion"].startswith("v1.")
    _, index, _ = api.raw("GET", "/openapi/v3")
    url = index["paths"]["apis/serving.kserve.io/v1beta1"]["serverRelativeURL"]
    status, doc, _ = api.raw("GET", url)
    assert status == 200
    patch = doc["paths"]["/apis/serving.kserve.io/v1beta1/namespaces/{namespace}/inferenceservices/{name}"]["patch"]
    assert {"fieldValidation", "fieldManager", "dryRun", "force"} <= {p["name"] for p in patch["parameters"]}
    schema = doc["components"]["schemas"]["io.kserve.serving.v1beta1.InferenceService"]
    assert schema["x-kubernetes-group-version-kind"] == [{"group": GROUP, "version": VERSION, "kind": "InferenceService"}]


# --- CRUD, errors, resourceVersion, generation ------------------------------------------------------


def test_create_sets_uid_resource_version_generation_and_creation_timestamp(api):
    status, obj, _ = api.create(isvc())
    assert status == 201
    meta = obj["metadata"]
    assert meta["uid"] and meta["creationTimestamp"].endswith("Z")
    assert meta["generation"] == 1 and int(meta["resourceVersion"]) > 0
    assert managers(obj)[("OpenAPI-Generator", "Update")]["f:spec"]["f:predictor"]["f:model"]["f:storageUri"] == {}


def test_resource_version_is_one_global_counter_and_lists_report_it(api):
    _, first, _ = api.create(isvc("a"))
    _, secret, _ = api._run(api.core.create_namespaced_secret, "default",
                            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"k": "v"}})
    _, second, _ = api.create(isvc("b"))
    rvs = [int(o["metadata"]["resourceVersion"]) for o in (first, secret, second)]
    assert rvs == [rvs[0], rvs[0] + 1, rvs[0] + 2]
    _, listed, _ = api.list()
    assert listed["metadata"]["resourceVersion"] == str(rvs[2])
    assert [i["metadata"]["name"] for i in listed["items"]] == ["a", "b"]
    assert secret["data"] == {"k": "dg=="} and "stringData" not in secret


def test_create_twice_returns_409_already_exists_status(api):
    api.create(isvc())
    status, body, _ = api.create(isvc())
    assert status == 409
    assert body["kind"] == "Status" and body["status"] == "Failure" and body["reason"] == "AlreadyExists"
    assert body["details"] == {"name": "iris", "group": GROUP, "kind": PLURAL}
    assert body["message"] == 'inferenceservices.serving.kserve.io "iris" already exists'


def test_get_missing_returns_404_not_found_status(api):
    status, body, _ = api.get("nope")
    assert status == 404
    assert body == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": 'inferenceservices.serving.kserve.io "nope" not found', "reason": "NotFound",
                    "details": {"name": "nope", "group": GROUP, "kind": PLURAL}, "code": 404}


def test_create_in_missing_namespace_returns_404(api):
    status, body, _ = api.create(isvc(namespace="ghost"))
    assert status == 404 and body["message"] == 'namespaces "ghost" not found'


def test_replace_with_stale_resource_version_returns_409_and_without_one_422(api):
    _, obj, _ = api.create(isvc())
    obj["spec"]["predictor"]["minReplicas"] = 2
    status, updated, _ = api.replace(obj)
    assert status == 200 and updated["metadata"]["generation"] == 2
    status, body, _ = api.replace(obj)  # obj still carries the old resourceVersion
    assert status == 409 and body["reason"] == "Conflict"
    assert "the object has been modified" in body["message"]
    del obj["metadata"]["resourceVersion"]
    status, body, _ = api.replace(obj)
    assert status == 422 and body["details"]["causes"][0]["field"] == "metadata.resourceVersion"


def test_generation_bumps_on_spec_changes_only(api):
    _, obj, _ = api.create(isvc())
    _, obj, _ = api.merge_patch("iris", {"metadata": {"labels": {"team": "a"}}})
    assert obj["metadata"]["generation"] == 1
    obj["status"] = {"url": "http://iris"}
    status, obj, _ = api.replace_status(obj)
    assert status == 200 and obj["metadata"]["generation"] == 1 and obj["status"]["url"] == "http://iris"
    _, obj, _ = api.merge_patch("iris", {"spec": {"predictor": {"minReplicas": 3}}})
    assert obj["metadata"]["generation"] == 2
    _, obj, _ = api.apply(isvc(minReplicas=3), manager="console", force=True)
    assert obj["metadata"]["generation"] == 2


def test_status_subresource_writes_only_status_and_main_writes_ignore_status(api):
    _, obj, _ = api.create(isvc())
    obj["status"] = {"url": "http://x"}
    obj["spec"]["predictor"]["minReplicas"] = 5
    _, after_status, _ = api.replace_status(obj)
    assert after_status["status"] == {"url": "http://x"}
    assert "minReplicas" not in after_status["spec"]["predictor"]
    after_status["status"] = {"url": "http://hijacked"}
    after_status["spec"]["predictor"]["minReplicas"] = 5
    _, after_main, _ = api.replace(after_status)
    assert after_main["status"] == {"url": "http://x"}
    assert after_main["spec"]["predictor"]["minReplicas"] == 5
    status, _, _ = api.merge_patch("iris", {"status": {"url": "http://patched"}})
    assert api.get("iris")[1]["status"]["url"] == "http://x"
    status, patched, _ = api._run(api.custom.patch_namespaced_custom_object_status, GROUP, VERSION, "default",
                                  PLURAL, "iris", {"status": {"url": "http://patched"}})
    assert status == 200 and patched["status"]["url"] == "http://patched"
    assert managers(patched)[("OpenAPI-Generator", "Update")]  # status write recorded too
    assert any(m.get("subresource") == "status" for m in patched["metadata"]["managedFields"])


def test_json_patch_and_merge_patch_with_null_delete(api):
    api.create(isvc(minReplicas=1, maxReplicas=3))
    status, obj, _ = api.merge_patch("iris", [{"op": "replace", "path": "/spec/predictor/minReplicas", "value": 2},
                                             {"op": "test", "path": "/spec/predictor/maxReplicas", "value": 3}],
                                     _content_type="application/json-patch+json")
    assert status == 200 and obj["spec"]["predictor"]["minReplicas"] == 2
    status, body, _ = api.merge_patch("iris", [{"op": "test", "path": "/spec/predictor/maxReplicas", "value": 9}],
                                      _content_type="application/json-patch+json")
    assert status == 422
    status, obj, _ = api.merge_patch("iris", {"spec": {"predictor": {"maxReplicas": None}}})
    assert "maxReplicas" not in obj["spec"]["predictor"]


def test_strategic_merge_patch_merges_pod_containers_by_name_and_is_refused_for_custom_resources(api, fake_apiserver):
    fake_apiserver.store.set_pod({"metadata": {"name": "p", "namespace": "default"},
                                  "spec": {"containers": [{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}]}})
    status, pod, _ = api._run(api.core.patch_namespaced_pod, "p", "default",
                              {"spec": {"containers": [{"name": "b", "image": "b:2"}]}},
                              _content_type="application/strategic-merge-patch+json")
    assert status == 200
    assert [(c["name"], c["image"]) for c in pod["spec"]["containers"]] == [("a", "a:1"), ("b", "b:2")]
    api.create(isvc())
    status, body, _ = api.merge_patch("iris", {"spec": {}}, _content_type="application/strategic-merge-patch+json")
    assert status == 415


# --- dry run ------------------------------------------------------------------------------------------


def test_dry_run_create_apply_patch_and_delete_persist_nothing(api, fake_apiserver):
    rv_before = fake_apiserver.store.resource_version
    status, obj, _ = api.create(isvc("dry"), dry_run="All")
    assert status == 201 and obj["metadata"]["uid"] and api.get("dry")[0] == 404
    status, obj, _ = api.apply(isvc("dry", minReplicas=2), dry_run="All")
    assert status == 201 and obj["spec"]["predictor"]["minReplicas"] == 2 and api.get("dry")[0] == 404
    assert fake_apiserver.store.resource_version == rv_before

    _, real, _ = api.create(isvc("real"))
    rv_before = fake_apiserver.store.resource_version
    status, obj, _ = api.merge_patch("real", {"spec": {"predictor": {"minReplicas": 4}}}, dry_run="All")
    assert status == 200 and obj["spec"]["predictor"]["minReplicas"] == 4 and obj["metadata"]["generation"] == 2
    status, obj, _ = api.apply(isvc("real", minReplicas=7), dry_run="All", force=True)
    assert obj["spec"]["predictor"]["minReplicas"] == 7
    status, _, _ = api.delete("real", dry_run="All")
    assert status == 200
    assert api.get("real")[1]["spec"] == real["spec"]
    assert fake_apiserver.store.resource_version == rv_before
    assert not [r for r in fake_apiserver.requests(verb="patch") if not r.dry_run and r.status == 200 and r.name == "real"]


def test_invalid_dry_run_value_is_rejected(api):
    status, body, _ = api.create(isvc(), dry_run="Some")
    assert status == 400 and "dryRun" in body["message"]


# --- field validation and schema validation ----------------------------------------------------------


def test_field_validation_strict_rejects_unknown_fields_warn_warns_and_ignore_drops(api):
    body = isvc()
    body["spec"]["predictor"]["model"]["storageURI"] = "typo"
    status, err, _ = api.create(body, field_validation="Strict")
    assert status == 400 and 'unknown field "spec.predictor.model.storageURI"' in err["message"]
    assert err["details"]["causes"][0]["field"] == "spec.predictor.model.storageURI"

    status, obj, headers = api.create(body, field_validation="Warn")
    assert status == 201 and "storageURI" not in obj["spec"]["predictor"]["model"]
    assert 'unknown field \\"spec.predictor.model.storageURI\\"' in headers.get("Warning", "")

    body["metadata"]["name"] = "quiet"
    status, obj, headers = api.create(body, field_validation="Ignore")
    assert status == 201 and "Warning" not in headers and "storageURI" not in obj["spec"]["predictor"]["model"]


def test_apply_with_unknown_field_and_strict_validation_returns_422_field_not_declared(api):
    body = isvc()
    body["spec"]["predictor"]["model"]["storageURI"] = "typo"
    status, err, _ = api.apply(body, field_validation="Strict")
    assert status == 422 and err["reason"] == "Invalid"
    assert err["details"]["causes"] == [{"reason": "FieldValueInvalid", "message": "field not declared in schema",
                                         "field": "spec.predictor.model.storageURI"}]


def test_builtin_crd_rejects_wrong_types_enums_patterns_and_missing_required_with_one_cause_each(api):
    # The built-in schema is KServe 0.20's CRD (endpoints/sandbox/crdgen.py): it has enums for
    # scaleMetric and logger.mode, but no bound on canaryTrafficPercent and no enum for
    # protocolVersion (the old hand-written schema had both; the real CRD accepts 150 and "v3").
    body = isvc(minReplicas="two", scaleMetric="gpu", canaryTrafficPercent=150,
                logger={"mode": "everything", "url": "http://x"},
                storageUris=[{"mountPath": "relative/path"}])
    body["spec"]["predictor"]["model"]["modelFormat"] = {"version": "1"}
    body["spec"]["predictor"]["model"]["protocolVersion"] = "v3"
    status, err, _ = api.create(body)
    assert status == 422 and err["reason"] == "Invalid" and err["code"] == 422
    causes = {c["field"]: c for c in err["details"]["causes"]}
    assert causes["spec.predictor.minReplicas"]["reason"] == "FieldValueTypeInvalid"
    assert "must be of type integer" in causes["spec.predictor.minReplicas"]["message"]
    assert causes["spec.predictor.scaleMetric"]["reason"] == "FieldValueNotSupported"
    assert causes["spec.predictor.logger.mode"]["message"].startswith('Unsupported value: "everything"')
    assert causes["spec.predictor.model.modelFormat.name"]["reason"] == "FieldValueRequired"
    assert causes["spec.predictor.storageUris[0].uri"]["reason"] == "FieldValueRequired"
    assert causes["spec.predictor.storageUris[0].mountPath"]["message"].endswith("should match '^/.*'")
    assert "spec.predictor.canaryTrafficPercent" not in causes
    assert "spec.predictor.model.protocolVersion" not in causes
    assert err["details"]["kind"] == "InferenceService" and err["details"]["name"] == "iris"
    assert err["message"].startswith('InferenceService.serving.kserve.io "iris" is invalid: [')


def test_bad_object_names_and_label_values_are_rejected(api):
    status, err, _ = api.create(isvc("Bad_Name"))
    assert status == 422 and err["details"]["causes"][0]["field"] == "metadata.name"
    body = isvc()
    body["metadata"]["labels"] = {"team": "not ok!"}
    status, err, _ = api.create(body)
    assert status == 422 and err["details"]["causes"][0]["field"] == "metadata.labels"


@pytest.mark.shared
def test_full_crd_schema_rejects_typo_and_wrong_type_naming_the_field(fake_apiserver_with_crds):
    api = Api(fake_apiserver_with_crds)
    example = yaml.safe_load((KSERVE_EXAMPLES_DIR / "sklearn-v1-iris.yaml").read_text())
    example["metadata"]["namespace"] = "default"
    bad = json.loads(json.dumps(example).replace("storageUri", "storageURI"))
    status, err, _ = api.apply(bad, field_validation="Strict")
    assert status == 422 and err["details"]["causes"][0]["field"] == "spec.predictor.sklearn.storageURI"
    example["spec"]["predictor"]["minReplicas"] = "two"
    status, err, _ = api.apply(example, field_validation="Strict")
    assert status == 422
    assert err["details"]["causes"][0]["field"] == "spec.predictor.minReplicas"
    assert err["details"]["causes"][0]["reason"] == "FieldValueTypeInvalid"


@pytest.mark.shared
def test_full_crd_schema_applies_defaults_and_accepts_int_or_string_quantities(fake_apiserver_with_crds):
    api = Api(fake_apiserver_with_crds)
    body = isvc(containers=[{"name": "kserve-container", "image": "x", "ports": [{"containerPort": 8080}]}])
    del body["spec"]["predictor"]["model"]
    body["spec"]["predictor"]["containers"][0]["resources"] = {"limits": {"nvidia.com/gpu": 1, "memory": "2Gi"}}
    status, obj, _ = api.apply(body, field_validation="Strict")
    assert status == 201, obj
    assert obj["spec"]["predictor"]["containers"][0]["ports"][0]["protocol"] == "TCP"


# --- server-side apply -------------------------------------------------------------------------------


def test_apply_creates_object_with_201_and_records_apply_manager_in_fields_v1(api):
    body = isvc()
    body["metadata"]["labels"] = {"app": "iris"}
    body["spec"]["predictor"]["model"]["env"] = [{"name": "A", "value": "1"}]
    status, obj, _ = api.apply(body, manager="inference-console")
    assert status == 201
    entry = obj["metadata"]["managedFields"][0]
    assert entry["manager"] == "inference-console" and entry["operation"] == "Apply"
    assert entry["apiVersion"] == f"{GROUP}/{VERSION}" and entry["fieldsType"] == "FieldsV1" and entry["time"]
    assert entry["fieldsV1"] == {
        "f:metadata": {"f:labels": {"f:app": {}}},
        "f:spec": {"f:predictor": {"f:model": {
            "f:env": {'k:{"name":"A"}': {".": {}, "f:name": {}, "f:value": {}}},
            "f:modelFormat": {"f:name": {}},
            "f:storageUri": {},
        }}},
    }
    status, _, _ = api.apply(body, manager="inference-console")
    assert status == 200


def test_apply_without_field_manager_is_rejected(api):
    status, err, _ = api._run(api.custom.patch_namespaced_custom_object, GROUP, VERSION, "default", PLURAL, "iris",
                              isvc(), _content_type=APPLY)
    assert status == 400 and "fieldManager" in err["message"]


def test_apply_conflict_without_force_returns_409_naming_owner(api):
    api.apply(isvc(minReplicas=1), manager="console")
    status, err, _ = api.apply(isvc(minReplicas=2), manager="ops-script")
    assert status == 409 and err["reason"] == "Conflict"
    assert err["message"] == ('Apply failed with 1 conflict: conflict with "console" using serving.kserve.io/v1beta1: '
                              ".spec.predictor.minReplicas")
    assert err["details"]["causes"] == [{"reason": "FieldManagerConflict", "field": ".spec.predictor.minReplicas",
                                         "message": 'conflict with "console" using serving.kserve.io/v1beta1'}]
    assert api.get("iris")[1]["spec"]["predictor"]["minReplicas"] == 1


def test_apply_conflicts_list_every_field_and_same_values_do_not_conflict(api):
    api.apply(isvc(minReplicas=1, maxReplicas=2), manager="console")
    status, ok, _ = api.apply(isvc(minReplicas=1), manager="other")  # same value: shared ownership, no conflict
    assert status == 200
    assert ("other", "Apply") in managers(ok)
    status, err, _ = api.apply(isvc(minReplicas=3, maxReplicas=4), manager="third")
    assert status == 409
    assert {c["field"] for c in err["details"]["causes"]} == {".spec.predictor.minReplicas", ".spec.predictor.maxReplicas"}
    assert err["message"].startswith("Apply failed with 3 conflicts: conflicts with")


def test_apply_with_force_moves_ownership_to_the_applier(api):
    api.apply(isvc(minReplicas=1), manager="console")
    status, obj, _ = api.apply(isvc(minReplicas=2), manager="ops-script", force=True)
    assert status == 200 and obj["spec"]["predictor"]["minReplicas"] == 2
    owners = managers(obj)
    assert "f:minReplicas" in owners[("ops-script", "Apply")]["f:spec"]["f:predictor"]
    assert "f:minReplicas" not in owners[("console", "Apply")]["f:spec"]["f:predictor"]


def test_field_dropped_from_next_apply_is_removed_unless_another_manager_owns_it(api):
    api.apply(isvc(minReplicas=1, maxReplicas=5, timeout=60), manager="console")
    api.apply(isvc(timeout=60), manager="ops")  # co-owns timeout with the same value
    status, obj, _ = api.apply(isvc(), manager="console")
    predictor = obj["spec"]["predictor"]
    assert "minReplicas" not in predictor and "maxReplicas" not in predictor
    assert predictor["timeout"] == 60


def test_update_manager_steals_fields_and_apply_then_conflicts_with_it(api):
    api.apply(isvc(minReplicas=1), manager="console")
    status, obj, _ = api.merge_patch("iris", {"spec": {"predictor": {"minReplicas": 4}}}, field_manager="kubectl-edit")
    owners = managers(obj)
    assert "f:minReplicas" in owners[("kubectl-edit", "Update")]["f:spec"]["f:predictor"]
    assert "f:minReplicas" not in owners[("console", "Apply")]["f:spec"]["f:predictor"]
    status, err, _ = api.apply(isvc(minReplicas=1), manager="console")
    assert status == 409 and 'conflict with "kubectl-edit"' in err["message"]
    status, obj, _ = api.apply(isvc(minReplicas=1), manager="console", force=True)
    assert obj["spec"]["predictor"]["minReplicas"] == 1


def test_update_without_field_manager_uses_user_agent_prefix(fake_apiserver):
    api = Api(fake_apiserver, user_agent="reconciler/2.1 (linux)")
    _, obj, _ = api.create(isvc())
    assert [m["manager"] for m in obj["metadata"]["managedFields"]] == ["reconciler"]


def test_env_list_merges_by_name_between_managers(api):
    body = isvc()
    body["spec"]["predictor"]["model"]["env"] = [{"name": "A", "value": "1"}]
    api.apply(body, manager="console")
    other = isvc()
    other["spec"]["predictor"]["model"]["env"] = [{"name": "B", "value": "2"}]
    _, obj, _ = api.apply(other, manager="ops")
    assert obj["spec"]["predictor"]["model"]["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
    _, obj, _ = api.apply(isvc(), manager="console")  # console drops A; B stays (owned by ops)
    assert obj["spec"]["predictor"]["model"]["env"] == [{"name": "B", "value": "2"}]


def test_atomic_args_list_is_replaced_whole_and_owned_as_one_field(api):
    body = isvc()
    body["spec"]["predictor"]["model"]["args"] = ["--a", "--b"]
    _, obj, _ = api.apply(body, manager="console")
    assert managers(obj)[("console", "Apply")]["f:spec"]["f:predictor"]["f:model"]["f:args"] == {}
    body["spec"]["predictor"]["model"]["args"] = ["--c"]
    _, obj, _ = api.apply(body, manager="console")
    assert obj["spec"]["predictor"]["model"]["args"] == ["--c"]


def test_reapplying_the_same_manifest_is_a_no_op_without_a_new_resource_version(api, fake_apiserver):
    _, first, _ = api.apply(isvc(minReplicas=1), manager="console")
    _, second, _ = api.apply(isvc(minReplicas=1), manager="console")
    assert second["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
    assert second["metadata"]["managedFields"] == first["metadata"]["managedFields"]


# --- delete and finalizers -----------------------------------------------------------------------------


def test_delete_with_finalizers_sets_deletion_timestamp_and_removes_when_finalizers_cleared(api, fake_apiserver):
    body = isvc()
    body["metadata"]["finalizers"] = ["inferenceservice.finalizers"]
    api.create(body)
    status, obj, _ = api.delete("iris")
    assert status == 200 and obj["metadata"]["deletionTimestamp"]
    status, still, _ = api.get("iris")
    assert status == 200 and still["metadata"]["finalizers"] == ["inferenceservice.finalizers"]
    fake_apiserver.store.remove_finalizer("isvc", "default", "iris", "inferenceservice.finalizers")
    assert api.get("iris")[0] == 404


def test_delete_precondition_on_uid_mismatch_returns_409(api):
    api.create(isvc())
    status, err, _ = api.delete("iris", body={"preconditions": {"uid": "not-the-uid"}})
    assert status == 409 and err["message"].startswith("Precondition failed: UID in precondition")


def test_deleting_an_owner_garbage_collects_dependents(api, fake_apiserver):
    _, owner, _ = api.create(isvc())
    fake_apiserver.store.set_pod({"metadata": {"name": "iris-predictor-1", "namespace": "default",
                                               "ownerReferences": [{"apiVersion": f"{GROUP}/{VERSION}",
                                                                    "kind": "InferenceService", "name": "iris",
                                                                    "uid": owner["metadata"]["uid"]}]},
                                  "spec": {"containers": [{"name": "kserve-container"}]}})
    api.delete("iris")
    assert fake_apiserver.store.get("pods", "default", "iris-predictor-1") is None


def test_namespace_deletion_removes_its_objects(api, fake_apiserver):
    api._run(api.core.create_namespace, {"metadata": {"name": "team-x"}})
    api.create(isvc(namespace="team-x"))
    api._run(api.core.delete_namespace, "team-x")
    assert fake_apiserver.store.get("namespaces", None, "team-x") is None
    assert fake_apiserver.store.list("isvc", "team-x") == []


# --- selectors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("tier=gold", ["a"]),
        ("tier==gold", ["a"]),
        ("tier!=gold", ["b", "c"]),
        ("tier in (gold,silver)", ["a", "b"]),
        ("tier notin (gold)", ["b", "c"]),
        ("tier", ["a", "b"]),
        ("!tier", ["c"]),
        ("tier,team=ml", ["b"]),
    ],
)
def test_label_selectors_support_every_operator(api, selector, expected):
    for name, labels in (("a", {"tier": "gold"}), ("b", {"tier": "silver", "team": "ml"}), ("c", {})):
        body = isvc(name)
        body["metadata"]["labels"] = labels
        api.create(body)
    _, listed, _ = api.list(label_selector=selector)
    assert [i["metadata"]["name"] for i in listed["items"]] == expected


def test_malformed_label_selector_returns_400(api):
    status, _, _ = api.list(label_selector="tier in (")
    assert status == 400


def test_field_selectors_filter_by_name_and_events_by_involved_object(api, fake_apiserver):
    _, a, _ = api.create(isvc("a"))
    _, b, _ = api.create(isvc("b"))
    _, listed, _ = api.list(field_selector="metadata.name=b")
    assert [i["metadata"]["name"] for i in listed["items"]] == ["b"]
    _, listed, _ = api.list(field_selector="metadata.name!=b,metadata.namespace=default")
    assert [i["metadata"]["name"] for i in listed["items"]] == ["a"]
    fake_apiserver.store.add_event(a, "InferenceServiceReady", "ready")
    fake_apiserver.store.add_event(b, "InternalError", "boom", type="Warning")
    fake_apiserver.store.add_event(b, "InternalError", "boom", type="Warning")  # aggregated: count 2
    selector = f"involvedObject.name=b,involvedObject.kind=InferenceService,involvedObject.uid={b['metadata']['uid']}"
    _, events, _ = api._run(api.core.list_namespaced_event, "default", field_selector=selector)
    assert [(e["reason"], e["count"]) for e in events["items"]] == [("InternalError", 2)]
    status, err, _ = api.list(field_selector="spec.predictor=x")
    assert status == 400


def test_limit_and_continue_page_through_a_list(api):
    for name in ("a", "b", "c"):
        api.create(isvc(name))
    _, page1, _ = api.list(limit=2)
    assert [i["metadata"]["name"] for i in page1["items"]] == ["a", "b"] and page1["metadata"]["continue"]
    _, page2, _ = api.list(limit=2, _continue=page1["metadata"]["continue"])
    assert [i["metadata"]["name"] for i in page2["items"]] == ["c"] and "continue" not in page2["metadata"]


# --- watch -------------------------------------------------------------------------------------------


def _watch_lines(server: FakeApiServer, query: str, count: int, timeout: float = 3.0) -> list[dict]:
    """Open a raw watch and read ``count`` events (or until the server ends the stream)."""
    api = Api(server)
    path = f"/apis/{GROUP}/{VERSION}/namespaces/default/{PLURAL}?watch=true&{query}"
    resp = api.client.rest_client.pool_manager.request(
        "GET", server.url + path, headers={"Accept": "application/json"}, preload_content=False, timeout=timeout)
    assert resp.status == 200
    events, buffer = [], b""
    for chunk in resp.stream(1024):
        buffer += chunk
        while b"\n" in buffer and len(events) < count:
            line, buffer = buffer.split(b"\n", 1)
            if line.strip():
                events.append(json.loads(line))
        if len(events) >= count:
            break
    resp.close()
    return events


def test_watch_streams_added_modified_deleted_and_ends_at_timeout(api, fake_apiserver):
    _, listed, _ = api.list()
    rv = listed["metadata"]["resourceVersion"]
    received: list[tuple[str, str]] = []

    def consume() -> None:
        w = k8s_watch.Watch()
        for event in w.stream(api.custom.list_namespaced_custom_object, GROUP, VERSION, "default", PLURAL,
                              resource_version=rv, timeout_seconds=2):
            received.append((event["type"], event["object"]["metadata"]["name"]))
            if event["type"] == "DELETED":
                w.stop()

    thread = threading.Thread(target=consume)
    thread.start()
    time.sleep(0.3)
    api.create(isvc())
    api.merge_patch("iris", {"spec": {"predictor": {"minReplicas": 2}}})
    api.delete("iris")
    thread.join(timeout=5)
    assert received == [("ADDED", "iris"), ("MODIFIED", "iris"), ("DELETED", "iris")]


def test_watch_resumes_from_resource_version_replaying_later_events(api, fake_apiserver):
    _, first, _ = api.create(isvc("a"))
    api.create(isvc("b"))
    api.merge_patch("a", {"metadata": {"labels": {"x": "y"}}})
    events = _watch_lines(fake_apiserver, f"resourceVersion={first['metadata']['resourceVersion']}&timeoutSeconds=5", 2)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "b"), ("MODIFIED", "a")]


def test_watch_without_resource_version_starts_with_synthetic_added_events(api, fake_apiserver):
    api.create(isvc("a"))
    events = _watch_lines(fake_apiserver, "timeoutSeconds=1", 1)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "a")]


def test_watch_from_compacted_resource_version_gets_410_expired_error_event():
    server = FakeApiServer(history_limit=3).start()
    try:
        api = Api(server)
        for i in range(6):
            api.create(isvc(f"m{i}"))
        events = _watch_lines(server, "resourceVersion=2&timeoutSeconds=5", 5)
        assert len(events) == 1 and events[0]["type"] == "ERROR"
        status = events[0]["object"]
        assert status["kind"] == "Status" and status["code"] == 410 and status["reason"] == "Expired"
        assert status["message"].startswith("too old resource version: 2")
        with pytest.raises(k8s.ApiException) as info:
            for _ in k8s_watch.Watch().stream(api.custom.list_namespaced_custom_object, GROUP, VERSION, "default",
                                              PLURAL, resource_version="2", timeout_seconds=1):
                pass
        assert info.value.status == 410
    finally:
        server.stop()


def test_watch_sends_bookmarks_when_allowed(api, fake_apiserver):
    api.create(isvc("a"))
    rv = api.list()[1]["metadata"]["resourceVersion"]
    events = _watch_lines(fake_apiserver, f"resourceVersion={rv}&allowWatchBookmarks=true&timeoutSeconds=5", 1)
    bookmarks = [e for e in events if e["type"] == "BOOKMARK"]
    assert bookmarks and bookmarks[0]["object"]["metadata"]["resourceVersion"] == rv
    assert bookmarks[0]["object"]["kind"] == "InferenceService"


def test_watch_with_label_selector_reports_objects_leaving_the_selection_as_deleted(api, fake_apiserver):
    body = isvc("a")
    body["metadata"]["labels"] = {"managed": "yes"}
    _, created, _ = api.create(body)
    api.merge_patch("a", {"metadata": {"labels": {"managed": None}}})
    events = _watch_lines(fake_apiserver, f"resourceVersion={int(created['metadata']['resourceVersion']) - 1}"
                                          "&labelSelector=managed%3Dyes&timeoutSeconds=5", 2)
    assert [e["type"] for e in events] == ["ADDED", "DELETED"]


def test_send_initial_events_ends_with_initial_events_end_bookmark(api, fake_apiserver):
    api.create(isvc("a"))
    events = _watch_lines(fake_apiserver, "sendInitialEvents=true&resourceVersionMatch=NotOlderThan"
                                          "&allowWatchBookmarks=true&timeoutSeconds=5", 2)
    assert events[0]["type"] == "ADDED"
    assert events[1]["type"] == "BOOKMARK"
    assert events[1]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}


# --- auth, request log, faults -----------------------------------------------------------------------


def test_bearer_token_is_required_when_configured():
    server = FakeApiServer(token="s3cret").start()
    try:
        status, body, _ = Api(server).raw("GET", "/api/v1/namespaces")
        assert status == 401 and body["reason"] == "Unauthorized" and body["kind"] == "Status"
        status, _, _ = Api(server, token="wrong").raw("GET", "/api/v1/namespaces")
        assert status == 401
        status, body, _ = Api(server, token="s3cret").list()
        assert status == 200
    finally:
        server.stop()


def test_request_log_records_rbac_verbs_resources_and_subresources(api, fake_apiserver):
    fake_apiserver.clear_requests()
    _, obj, _ = api.create(isvc())
    api.get("iris")
    api.list()
    api.merge_patch("iris", {"metadata": {"labels": {"a": "b"}}})
    api.apply(isvc(), manager="console")
    obj = api.get("iris")[1]
    api.replace(obj)
    api.replace_status(obj)
    api.delete("iris")
    api._run(api.custom.delete_collection_namespaced_custom_object, GROUP, VERSION, "default", PLURAL)
    api._run(api.custom.list_cluster_custom_object, GROUP, VERSION, PLURAL)
    seen = [(r.verb, r.resource, r.subresource, r.namespace, r.name) for r in fake_apiserver.requests()]
    assert seen == [
        ("create", PLURAL, "", "default", ""),
        ("get", PLURAL, "", "default", "iris"),
        ("list", PLURAL, "", "default", ""),
        ("patch", PLURAL, "", "default", "iris"),
        ("patch", PLURAL, "", "default", "iris"),
        ("get", PLURAL, "", "default", "iris"),
        ("update", PLURAL, "", "default", "iris"),
        ("update", PLURAL, "status", "default", "iris"),
        ("delete", PLURAL, "", "default", "iris"),
        ("deletecollection", PLURAL, "", "default", ""),
        ("list", PLURAL, "", "", ""),
    ]
    assert all(r.group == GROUP for r in fake_apiserver.requests())
    assert fake_apiserver.requests(verb="patch")[1].field_manager == "console"


def test_fail_next_only_hits_matching_verb_and_path(api, fake_apiserver):
    api.create(isvc())
    fake_apiserver.faults.fail_next(1, status=503, verb="patch", path=r"/inferenceservices/iris$")
    assert api.get("iris")[0] == 200
    status, body, headers = api.merge_patch("iris", {"metadata": {"labels": {"a": "b"}}})
    assert status == 503 and body["reason"] == "ServiceUnavailable" and headers["Retry-After"] == "1"
    assert api.merge_patch("iris", {"metadata": {"labels": {"a": "b"}}})[0] == 200
    assert fake_apiserver.requests(fault="fail:503")[0].verb == "patch"


def test_table_output_has_printer_columns_for_kubectl(api):
    body = isvc()
    api.create(body)
    obj = api.get("iris")[1]
    obj["status"] = {"url": "http://iris.default.example.com",
                     "conditions": [{"type": "PredictorReady", "status": "True"}, {"type": "Ready", "status": "True"}]}
    api.replace_status(obj)
    status, table, _ = api.raw("GET", f"/apis/{GROUP}/{VERSION}/namespaces/default/{PLURAL}",
                               headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"})
    assert status == 200 and table["kind"] == "Table"
    names = [c["name"] for c in table["columnDefinitions"]]
    assert names[:3] == ["Name", "URL", "Ready"]
    assert table["rows"][0]["cells"][:3] == ["iris", "http://iris.default.example.com", "True"]
    assert table["rows"][0]["object"]["kind"] == "PartialObjectMetadata"


# --- the Python store API used by the simulated controller -----------------------------------------------


def test_store_on_change_callbacks_see_committed_writes_in_order(api, fake_apiserver):
    seen: list[tuple[str, str, str]] = []
    unsubscribe = fake_apiserver.store.on_change(lambda e: seen.append((e.type, e.resource, e.name)))
    api.create(isvc())
    fake_apiserver.store.update_status("isvc", "default", "iris", {"url": "http://x"})
    api.delete("iris")
    unsubscribe()
    api.create(isvc("later"))
    assert seen == [("ADDED", PLURAL, "iris"), ("MODIFIED", PLURAL, "iris"), ("DELETED", PLURAL, "iris")]


def test_controller_thread_can_react_to_writes_through_the_store(api, fake_apiserver):
    store = fake_apiserver.store

    def controller(event) -> None:
        if event.resource == PLURAL and event.type == "ADDED":
            store.patch("isvc", event.namespace, event.name, {"metadata": {"finalizers": ["inferenceservice.finalizers"]}},
                        manager="kserve-controller")
            store.update_status("isvc", event.namespace, event.name, {"url": f"http://{event.name}"})
            store.set_pod({"metadata": {"name": f"{event.name}-predictor-0", "namespace": event.namespace,
                                        "labels": {"serving.kserve.io/inferenceservice": event.name}},
                           "spec": {"containers": [{"name": "kserve-container"}]},
                           "status": {"phase": "Running"}})

    store.on_change(controller)
    api.create(isvc())
    obj = api.get("iris")[1]
    assert obj["status"]["url"] == "http://iris" and obj["metadata"]["finalizers"] == ["inferenceservice.finalizers"]
    pods = store.list("pods", "default", label_selector="serving.kserve.io/inferenceservice=iris")
    assert [p["status"]["phase"] for p in pods] == ["Running"]
    assert store.seed([{"apiVersion": "serving.kserve.io/v1alpha1", "kind": "ClusterServingRuntime",
                        "metadata": {"name": "kserve-sklearnserver"},
                        "spec": {"containers": [{"name": "kserve-container", "image": "x"}]}}])


def test_entry_point_serves_and_writes_a_kubeconfig(tmp_path):
    kubeconfig = tmp_path / "kubeconfig"
    proc = subprocess.Popen(
        [sys.executable, "-m", "endpoints.sandbox.apiserver", "--port", "0", "--token", "t0k",
         "--kubeconfig-out", str(kubeconfig)],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = proc.stdout.readline()
        assert "listening on http://127.0.0.1:" in line
        config = yaml.safe_load(kubeconfig.read_text())
        assert config["users"][0]["user"]["token"] == "t0k"
        assert config["clusters"][0]["cluster"]["server"] == line.split()[-1]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert proc.returncode == 0


def test_server_refuses_non_loopback_addresses():
    with pytest.raises(ValueError):
        FakeApiServer(host="0.0.0.0")  # noqa: S104 - the point is that it is refused


def test_apply_to_status_subresource_owns_status_fields_separately(api):
    api.apply(isvc(), manager="console")
    body = isvc()
    body["status"] = {"url": "http://iris", "conditions": [{"type": "Ready", "status": "True"}]}
    status, obj, _ = api._run(api.custom.patch_namespaced_custom_object_status, GROUP, VERSION, "default", PLURAL,
                              "iris", body, field_manager="kserve-controller", force=True, _content_type=APPLY)
    assert status == 200 and obj["status"]["url"] == "http://iris"
    entry = next(m for m in obj["metadata"]["managedFields"] if m["manager"] == "kserve-controller")
    assert entry["subresource"] == "status" and entry["operation"] == "Apply"
    assert set(entry["fieldsV1"]) == {"f:status"}
    assert obj["metadata"]["generation"] == 1
    _, again, _ = api.apply(isvc(minReplicas=1), manager="console")  # the console's apply leaves status alone
    assert again["status"]["url"] == "http://iris"


def test_missing_field_validation_parameter_defaults_to_warn(api):
    body = isvc()
    body["spec"]["predictor"]["bogus"] = 1
    status, obj, headers = api.create(body)
    assert status == 201 and "bogus" not in obj["spec"]["predictor"]
    assert 'unknown field \\"spec.predictor.bogus\\"' in headers["Warning"]


@pytest.mark.shared
def test_full_crd_schema_validates_serving_runtimes(fake_apiserver_with_crds):
    api = Api(fake_apiserver_with_crds)
    runtime = {"apiVersion": "serving.kserve.io/v1alpha1", "kind": "ServingRuntime",
               "metadata": {"name": "rt", "namespace": "default"},
               "spec": {"supportedModelFormats": [{"name": "sklearn", "priority": 0}]}}
    status, err, _ = api._run(api.custom.create_namespaced_custom_object, GROUP, "v1alpha1", "default",
                              "servingruntimes", runtime)
    assert status == 422
    fields = {c["field"] for c in err["details"]["causes"]}
    assert {"spec.containers", "spec.supportedModelFormats[0].priority"} <= fields
