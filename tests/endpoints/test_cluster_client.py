"""ClusterClient against the fake API server: plain dicts, SSA, timeouts and error classification."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import pytest

from endpoints.cluster import (
    FIELD_MANAGER,
    ClusterClient,
    ClusterError,
    PermanentClusterError,
    TransientClusterError,
)
from endpoints.sandbox import FakeApiServer


def isvc(name: str = "iris", namespace: str = "default", **predictor: Any) -> dict[str, Any]:
    spec = {"model": {"modelFormat": {"name": "sklearn"}, "storageUri": "gs://bucket/iris", "protocolVersion": "v1"}}
    spec.update(predictor)
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": name, "namespace": namespace,
                     "labels": {"app.kubernetes.io/managed-by": "inference-console"}},
        "spec": {"predictor": spec},
    }


# --- happy paths ----------------------------------------------------------------------------------


def test_apply_that_creates_returns_the_created_object_not_none(cluster_client, fake_apiserver):
    obj = cluster_client.apply(isvc(minReplicas=1))
    assert obj["metadata"]["uid"] and obj["spec"]["predictor"]["minReplicas"] == 1
    created = fake_apiserver.requests(verb="patch")[0]
    assert created.status == 201
    assert created.field_manager == FIELD_MANAGER and created.query["force"] == "true"
    assert created.query["fieldValidation"] == "Strict"
    assert created.content_type == "application/apply-patch+yaml"


def test_apply_updates_and_returns_the_stored_object(cluster_client):
    cluster_client.apply(isvc(minReplicas=1))
    obj = cluster_client.apply(isvc(minReplicas=3))
    assert obj["spec"]["predictor"]["minReplicas"] == 3 and obj["metadata"]["generation"] == 2


def test_apply_forces_ownership_over_an_out_of_band_edit(cluster_client, fake_apiserver):
    cluster_client.apply(isvc(minReplicas=1))
    fake_apiserver.store.patch("isvc", "default", "iris", {"spec": {"predictor": {"minReplicas": 9}}},
                               manager="kubectl-edit")
    obj = cluster_client.apply(isvc(minReplicas=1))
    assert obj["spec"]["predictor"]["minReplicas"] == 1
    owners = {m["manager"] for m in obj["metadata"]["managedFields"]}
    assert FIELD_MANAGER in owners


def test_dry_run_apply_returns_would_be_object_and_persists_nothing(cluster_client, fake_apiserver):
    preview = cluster_client.dry_run_apply(isvc(minReplicas=2))
    assert preview["spec"]["predictor"]["minReplicas"] == 2 and preview["metadata"]["name"] == "iris"
    assert cluster_client.get("InferenceService", "default", "iris") is None
    cluster_client.apply(isvc(minReplicas=1))
    preview = cluster_client.dry_run_apply(isvc(minReplicas=5))
    assert preview["spec"]["predictor"]["minReplicas"] == 5 and preview["metadata"]["generation"] == 2
    assert cluster_client.get("isvc", "default", "iris")["spec"]["predictor"]["minReplicas"] == 1
    assert all(r.dry_run for r in fake_apiserver.requests(verb="patch") if r.query.get("dryRun"))


def test_get_missing_object_returns_none(cluster_client):
    assert cluster_client.get("InferenceService", "default", "missing") is None
    assert cluster_client.get_namespace("missing") is None


def test_list_returns_items_and_resource_version_filtered_by_label(cluster_client):
    cluster_client.apply(isvc("a"))
    unmanaged = isvc("b")
    unmanaged["metadata"]["labels"] = {}
    cluster_client.apply(unmanaged)
    items, rv = cluster_client.list("default", "app.kubernetes.io/managed-by=inference-console")
    assert [i["metadata"]["name"] for i in items] == ["a"]
    assert rv and int(rv) >= int(items[0]["metadata"]["resourceVersion"])
    everywhere, _ = cluster_client.list(None)
    assert {i["metadata"]["name"] for i in everywhere} == {"a", "b"}


def test_delete_returns_false_when_already_gone_and_respects_finalizers(cluster_client, fake_apiserver):
    manifest = isvc()
    cluster_client.apply(manifest)
    fake_apiserver.store.patch("isvc", "default", "iris", {"metadata": {"finalizers": ["inferenceservice.finalizers"]}})
    assert cluster_client.delete("InferenceService", "default", "iris") is True
    assert cluster_client.get("isvc", "default", "iris")["metadata"]["deletionTimestamp"]
    fake_apiserver.store.remove_finalizer("isvc", "default", "iris", "inferenceservice.finalizers")
    assert cluster_client.get("isvc", "default", "iris") is None
    assert cluster_client.delete("InferenceService", "default", "iris") is False


def test_events_and_pods_for_an_inference_service(cluster_client, fake_apiserver):
    obj = cluster_client.apply(isvc())
    other = cluster_client.apply(isvc("other"))
    store = fake_apiserver.store
    store.add_event(obj, "InferenceServiceNotReady", "PredictorReady=False")
    store.add_event(other, "InternalError", "not mine")
    store.set_pod({"metadata": {"name": "iris-predictor-abc", "namespace": "default",
                                "labels": {"serving.kserve.io/inferenceservice": "iris", "component": "predictor"}},
                   "spec": {"containers": [{"name": "kserve-container", "image": "x"}]},
                   "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
                                                                  "reason": "Unschedulable"}]}})
    events = cluster_client.events_for("default", "iris")
    assert [(e["reason"], e["involvedObject"]["name"]) for e in events] == [("InferenceServiceNotReady", "iris")]
    assert events[0]["kind"] == "Event"
    pods = cluster_client.pods_for("default", "iris")
    assert [p["metadata"]["name"] for p in pods] == ["iris-predictor-abc"]
    assert pods[0]["status"]["conditions"][0]["reason"] == "Unschedulable"
    requested = fake_apiserver.requests(resource="events")[-1].query["fieldSelector"]
    assert "involvedObject.name=iris" in requested and "involvedObject.kind=InferenceService" in requested


def test_ensure_namespace_creates_once_and_is_idempotent(cluster_client, fake_apiserver):
    ns = cluster_client.ensure_namespace("team-a", {"console.example/project": "a"})
    assert ns["metadata"]["labels"] == {"console.example/project": "a"} and ns["status"]["phase"] == "Active"
    rv = ns["metadata"]["resourceVersion"]
    again = cluster_client.ensure_namespace("team-a", {"console.example/project": "a"})
    assert again["metadata"]["resourceVersion"] == rv
    assert cluster_client.get_namespace("team-a")["metadata"]["name"] == "team-a"
    cluster_client.apply(isvc(namespace="team-a"))


def test_apply_serving_runtime_and_cluster_serving_runtime(cluster_client):
    runtime = {
        "apiVersion": "serving.kserve.io/v1alpha1",
        "kind": "ServingRuntime",
        "metadata": {"name": "custom-sklearn", "namespace": "default"},
        "spec": {"supportedModelFormats": [{"name": "sklearn", "version": "1", "autoSelect": True, "priority": 1}],
                 "protocolVersions": ["v1", "v2"],
                 "containers": [{"name": "kserve-container", "image": "kserve/sklearnserver:v0.20.0"}]},
    }
    assert cluster_client.apply_serving_runtime(runtime)["metadata"]["uid"]
    cluster = dict(runtime, kind="ClusterServingRuntime", metadata={"name": "cluster-sklearn"})
    assert cluster_client.apply_serving_runtime(cluster)["metadata"].get("namespace") is None
    assert cluster_client.get("ClusterServingRuntime", None, "cluster-sklearn") is not None
    with pytest.raises(ValueError):
        cluster_client.apply_serving_runtime(isvc())


def test_server_version(cluster_client):
    assert cluster_client.server_version()["gitVersion"].startswith("v1.")


def test_secrets_and_service_accounts_use_the_core_api(cluster_client, fake_apiserver):
    secret = cluster_client.apply({"apiVersion": "v1", "kind": "Secret",
                                   "metadata": {"name": "hf-token", "namespace": "default"},
                                   "stringData": {"HF_TOKEN": "abc"}})
    assert secret["data"] == {"HF_TOKEN": "YWJj"}
    sa = cluster_client.apply({"apiVersion": "v1", "kind": "ServiceAccount",
                               "metadata": {"name": "hf-sa", "namespace": "default"},
                               "secrets": [{"name": "hf-token"}]})
    assert sa["secrets"] == [{"name": "hf-token"}]
    assert cluster_client.get("Secret", "default", "hf-token")["kind"] == "Secret"
    assert [r.verb for r in fake_apiserver.requests(resource="secrets")] == ["patch", "get"]


def test_manifest_without_namespace_is_rejected_before_any_request(cluster_client, fake_apiserver):
    manifest = isvc()
    del manifest["metadata"]["namespace"]
    fake_apiserver.clear_requests()
    with pytest.raises(ValueError):
        cluster_client.apply(manifest)
    assert fake_apiserver.requests() == []


def test_constructors_build_independent_clients_from_kubeconfig_text_and_file(fake_apiserver, tmp_path):
    from kubernetes import client as k8s

    default_host = k8s.Configuration.get_default_copy().host
    path = fake_apiserver.write_kubeconfig(tmp_path / "kubeconfig")
    from_file = ClusterClient.from_kubeconfig(str(path))
    from_text = ClusterClient.from_kubeconfig(fake_apiserver.kubeconfig(context="other"), context="other")
    for client in (from_file, from_text):
        assert client.server_version()["major"] == "1"
        assert client.api_client.configuration.retries is False
        client.close()
    assert k8s.Configuration.get_default_copy().host == default_host


def test_in_cluster_constructor_reads_service_account_environment(monkeypatch, tmp_path, fake_apiserver):
    from kubernetes.config import incluster_config

    token, ca = tmp_path / "token", tmp_path / "ca.crt"
    token.write_text("in-cluster-token")
    ca.write_text("not a real CA")
    monkeypatch.setattr(incluster_config, "SERVICE_TOKEN_FILENAME", str(token))
    monkeypatch.setattr(incluster_config, "SERVICE_CERT_FILENAME", str(ca))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(fake_apiserver.port))
    client = ClusterClient.in_cluster()
    assert client.api_client.configuration.host == f"https://127.0.0.1:{fake_apiserver.port}"
    assert client.api_client.configuration.api_key["BearerToken"].endswith("in-cluster-token")


# --- error classification -------------------------------------------------------------------------


def test_invalid_spec_is_a_permanent_error_with_field_causes(cluster_client):
    with pytest.raises(PermanentClusterError) as info:
        cluster_client.apply(isvc(minReplicas="two", scaleMetric="gpu"))
    err = info.value
    assert err.status == 422 and err.reason == "Invalid"
    assert {c.field for c in err.causes} == {"spec.predictor.minReplicas", "spec.predictor.scaleMetric"}
    assert "is invalid" in err.message and isinstance(err, ClusterError)


def test_unknown_field_is_rejected_not_silently_pruned(cluster_client):
    manifest = isvc()
    manifest["spec"]["predictor"]["model"]["storageURI"] = "gs://typo"
    with pytest.raises(PermanentClusterError) as info:
        cluster_client.apply(manifest)
    assert info.value.status == 422
    assert info.value.causes[0].field == "spec.predictor.model.storageURI"


@pytest.mark.parametrize(("status", "reason"), [(500, "InternalError"), (503, "ServiceUnavailable"),
                                                (429, "TooManyRequests"), (504, "Timeout")])
def test_server_errors_and_throttling_are_transient(cluster_client, fake_apiserver, status, reason):
    fake_apiserver.faults.fail_next(1, status=status)
    with pytest.raises(TransientClusterError) as info:
        cluster_client.apply(isvc())
    assert info.value.status == status and info.value.reason == reason
    if status == 429:
        assert info.value.retry_after == 1
    assert cluster_client.apply(isvc())["metadata"]["name"] == "iris"  # the next call succeeds: no hidden retry


def test_failures_are_not_retried_by_urllib3(cluster_client, fake_apiserver):
    fake_apiserver.faults.fail_next(1, status=503)
    with pytest.raises(TransientClusterError):
        cluster_client.get("isvc", "default", "iris")
    assert len(fake_apiserver.requests(verb="get")) == 1


def test_dropped_connection_is_transient(cluster_client, fake_apiserver):
    fake_apiserver.faults.drop_next(1, verb="patch")
    with pytest.raises(TransientClusterError) as info:
        cluster_client.apply(isvc())
    assert info.value.status is None and info.value.reason == "ConnectionError"
    assert fake_apiserver.requests(fault="drop")[0].verb == "patch"


def test_paused_server_times_out_as_transient(fake_apiserver):
    client = ClusterClient.for_url(fake_apiserver.url, timeout=0.5)
    fake_apiserver.faults.pause()
    started = time.monotonic()
    try:
        with pytest.raises(TransientClusterError) as info:
            client.get("isvc", "default", "iris")
    finally:
        fake_apiserver.faults.resume()
    assert info.value.reason == "Timeout" and time.monotonic() - started < 3
    assert client.get("isvc", "default", "iris") is None


def test_latency_below_timeout_is_tolerated_and_above_it_is_transient(fake_apiserver):
    client = ClusterClient.for_url(fake_apiserver.url, timeout=0.4)
    fake_apiserver.faults.latency(0.1)
    assert client.get("isvc", "default", "iris") is None
    fake_apiserver.faults.latency(0.8)
    with pytest.raises(TransientClusterError):
        client.get("isvc", "default", "iris")
    fake_apiserver.faults.clear()


def test_connection_refused_is_transient():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = ClusterClient.for_url(f"http://127.0.0.1:{port}", timeout=1)
    with pytest.raises(TransientClusterError) as info:
        client.server_version()
    assert info.value.reason == "ConnectionError"


def test_wrong_token_is_a_permanent_401():
    server = FakeApiServer(token="right").start()
    try:
        with pytest.raises(PermanentClusterError) as info:
            ClusterClient.for_url(server.url, token="wrong").get("isvc", "default", "iris")
        assert info.value.status == 401 and info.value.reason == "Unauthorized"
        assert ClusterClient.for_url(server.url, token="right").get("isvc", "default", "iris") is None
    finally:
        server.stop()


def test_missing_namespace_on_apply_is_a_permanent_404(cluster_client):
    with pytest.raises(PermanentClusterError) as info:
        cluster_client.apply(isvc(namespace="nowhere"))
    assert info.value.status == 404


def test_conflict_outside_apply_is_permanent(cluster_client, fake_apiserver):
    cluster_client.apply(isvc())
    fake_apiserver.faults.fail_next(1, status=409, verb="delete")
    with pytest.raises(PermanentClusterError) as info:
        cluster_client.delete("isvc", "default", "iris")
    assert info.value.status == 409


def test_conflict_during_apply_is_transient(cluster_client, fake_apiserver):
    fake_apiserver.faults.fail_next(1, status=409, verb="patch")
    with pytest.raises(TransientClusterError):
        cluster_client.apply(isvc())


def test_concurrent_applies_from_threads_all_succeed(cluster_client):
    errors: list[Exception] = []

    def worker(i: int) -> None:
        try:
            cluster_client.apply(isvc(f"m{i}", minReplicas=i))
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(cluster_client.list("default")[0]) == 8


def test_pod_logs_returns_the_tail_of_a_containers_log(cluster_client, fake_apiserver):
    store = fake_apiserver.store
    store.set_pod({"metadata": {"name": "iris-predictor-0", "namespace": "default"},
                   "spec": {"containers": [{"name": "kserve-container"}, {"name": "queue-proxy"}]}})
    store.set_pod_log("default", "iris-predictor-0", "".join(f"line {i}\n" for i in range(100)),
                      container="kserve-container")
    text = cluster_client.pod_logs("default", "iris-predictor-0", "kserve-container", tail_lines=3)
    assert text == "line 97\nline 98\nline 99\n"
    with pytest.raises(PermanentClusterError) as info:
        cluster_client.pod_logs("default", "iris-predictor-0")  # two containers: must name one
    assert info.value.status == 400 and "choose one of" in info.value.message
    log_reads = fake_apiserver.requests(resource="pods", subresource="log")
    assert [r.verb for r in log_reads] == ["get", "get"]
