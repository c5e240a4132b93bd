"""The sandbox runs KServe's own storage initializer (PyPI kserve-storage) against a real S3
server (SeaweedFS, signatures checked) and a loopback HTTP server, with the credentials KServe's
pod mutator would give it, and reports the outcome as KServe and the kubelet do. Everything is
read over HTTP with the console's ClusterClient, as the console reads a cluster."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from endpoints.cluster import ClusterClient
from endpoints.sandbox import storage_initializer
from endpoints.sandbox.controller import SandboxSettings
from endpoints.sandbox.run import start_sandbox
from tests.fixtures.kube import KUBECTL, Sandbox, make_kubectl, release_sandbox, wait_for
from tests.fixtures.storage import REGION, new_identity, s3_client

NS = "proj"
A = "serving.kserve.io/"
MODEL = b"not really a joblib file, but bytes KServe copies as they are\n"


# --- fixtures and helpers ------------------------------------------------------------------------
def storage_settings(tmp_path: Path, **overrides) -> dict:
    return {"storage_initializer": True, "models_dir": tmp_path / "models", "storage_initializer_backoff": 60.0,
            **overrides}


@pytest.fixture
def cluster(kserve_storage, tmp_path) -> Iterator[tuple[Sandbox, ClusterClient]]:
    """A sandbox (KServe 0.20) whose controller runs the real storage initializer."""
    server, controller = start_sandbox(settings=SandboxSettings(**storage_settings(tmp_path)))
    client = ClusterClient.for_url(server.url, timeout=10.0)
    client.ensure_namespace(NS)
    try:
        yield Sandbox(server, controller), client
    finally:
        client.close()
        controller.stop()
        server.stop()


def upload(server, bucket: str, files: dict[str, bytes]) -> None:
    s3 = s3_client(server)
    for key, body in files.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body)


def connect(client: ClusterClient, server, *, name: str = "s3-conn", account: str = "models",
            access_key: str | None = None, secret_key: str | None = None, endpoint: str | None = None,
            annotations: dict | None = None, data: dict | None = None) -> None:
    """What the console writes for an S3 storage connection: a Secret in KServe's keys and a
    ServiceAccount listing it."""
    identity = server.identities[0]
    client.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {
        "name": name, "namespace": NS, "annotations": {
            A + "s3-endpoint": endpoint or f"127.0.0.1:{server.s3_port}", A + "s3-usehttps": "0",
            A + "s3-region": REGION, **(annotations or {})}},
        "type": "Opaque", "stringData": data if data is not None else {
            "AWS_ACCESS_KEY_ID": access_key or identity.access_key,
            "AWS_SECRET_ACCESS_KEY": secret_key or identity.secret_key}})
    client.apply({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": account, "namespace": NS},
                  "secrets": [{"name": name}]})


def deploy(client: ClusterClient, name: str, uri: str, *, account: str | None = "models", env=None) -> None:
    predictor: dict = {"model": {"modelFormat": {"name": "sklearn"}, "storageUri": uri}}
    if account:
        predictor["serviceAccountName"] = account
    if env:
        predictor["model"]["env"] = [{"name": k, "value": v} for k, v in env.items()]
    client.apply({"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
                  "metadata": {"name": name, "namespace": NS}, "spec": {"predictor": predictor}})


def condition(obj: dict | None, kind: str = "Ready") -> dict:
    return next((c for c in ((obj or {}).get("status") or {}).get("conditions") or [] if c["type"] == kind), {})


def wait_ready(client: ClusterClient, name: str, timeout: float = 60) -> dict:
    return wait_for(lambda: (lambda o: o if condition(o).get("status") == "True" else None)(
        client.get("InferenceService", NS, name)), timeout, f"{name} Ready")


def wait_failure(client: ClusterClient, name: str, timeout: float = 60) -> dict:
    def failed():
        obj = client.get("InferenceService", NS, name)
        info = ((obj or {}).get("status") or {}).get("modelStatus", {}).get("lastFailureInfo")
        return info if info and info.get("reason") == "ModelLoadFailed" else None

    return wait_for(failed, timeout, f"{name} to fail loading")


def init_status(pod: dict) -> dict:
    return pod["status"]["initContainerStatuses"][0]


def pods_of(client: ClusterClient, name: str, revision: int | None = None) -> list[dict]:
    pods = client.pods_for(NS, name)
    if revision is not None:
        pods = [p for p in pods if p["metadata"]["name"].startswith(f"{name}-predictor-{revision:05d}-")]
    return pods


def initializer_log(client: ClusterClient, pod: dict) -> str:
    return client.pod_logs(NS, pod["metadata"]["name"], "storage-initializer", tail_lines=200)


class Files(http.server.BaseHTTPRequestHandler):
    """A loopback web server: /public/* for anyone, /private/* with the bearer token,
    /slow/* never answers in time."""

    token = "t0k3n"
    calls: dict[str, int] = {}

    def do_GET(self):  # noqa: N802 - http.server's name
        if self.path.startswith("/slow/"):
            time.sleep(5)
        if self.path.startswith("/flaky/"):  # refused once, then slow, then there
            self.calls[self.path] = self.calls.get(self.path, 0) + 1
            if self.calls[self.path] == 1:
                self.send_response(403)
                self.end_headers()
                return
            time.sleep(2.5)
        if self.path.startswith("/private/") and self.headers.get("Authorization") != f"Bearer {self.token}":
            self.send_response(401)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(MODEL)))
        self.end_headers()
        self.wfile.write(MODEL)

    def log_message(self, *args):
        pass


class QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # a client killed mid-answer (the timeout test) is expected


@pytest.fixture
def web() -> Iterator[str]:
    server = QuietServer(("127.0.0.1", 0), Files)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


# --- S3 ------------------------------------------------------------------------------------------
def test_the_right_keys_download_the_model_and_the_isvc_becomes_ready(cluster, s3_server, s3_bucket):
    sandbox, client = cluster
    upload(s3_server, s3_bucket, {"iris/model.joblib": MODEL, "iris/meta/schema.json": b"{}"})
    connect(client, s3_server)
    states = []
    sandbox.store.on_change(lambda e: states.append(json.dumps(init_status(e.object)["state"]))
                            if e.resource == "pods" and e.object.get("status") else None)
    deploy(client, "iris", f"s3://{s3_bucket}/iris")
    isvc = wait_ready(client, "iris")
    assert isvc["status"]["modelStatus"]["states"] == {"activeModelState": "Loaded", "targetModelState": "Loaded"}
    folder = sandbox.controller.model_dir(NS, "iris", "iris-predictor-00001")
    assert (folder / "model.joblib").read_bytes() == MODEL and (folder / "meta" / "schema.json").read_bytes() == b"{}"
    # Init:0/1 while it ran, then Completed; the pod spec holds what KServe's mutator wrote.
    running = next(i for i, state in enumerate(states) if "running" in json.loads(state))
    done = next(i for i, state in enumerate(states) if json.loads(state).get("terminated", {}).get("reason") == "Completed")
    assert running < done
    (pod,) = pods_of(client, "iris")
    assert pod["status"]["phase"] == "Running" and pod["spec"]["serviceAccountName"] == "models"
    init = pod["spec"]["initContainers"][0]
    assert init["args"] == [f"s3://{s3_bucket}/iris", "/mnt/models"]
    assert {"name": "AWS_SECRET_ACCESS_KEY",
            "valueFrom": {"secretKeyRef": {"name": "s3-conn", "key": "AWS_SECRET_ACCESS_KEY"}}} in init["env"]
    assert {"name": "AWS_ENDPOINT_URL", "value": s3_server.endpoint_url} in init["env"]
    log = initializer_log(client, pod)
    assert f"Successfully copied s3://{s3_bucket}/iris to {folder}" in log
    assert "Found S3 object: iris/model.joblib" in log


def test_a_wrong_secret_fails_with_the_servers_403(cluster, s3_server, s3_bucket, tmp_path):
    sandbox, client = cluster
    upload(s3_server, s3_bucket, {"iris/model.joblib": MODEL})
    connect(client, s3_server, secret_key="not-the-secret")
    deploy(client, "iris", f"s3://{s3_bucket}/iris")
    info = wait_failure(client, "iris")
    # KServe's message is the init container's termination message: the tail of its log,
    # the server's 403 as botocore reports it and kserve-storage's verdict.
    assert "An error occurred (403) when calling the HeadBucket operation: Forbidden" in info["message"]
    assert info["message"].rstrip().endswith("Storage initialization failed: S3 error [403]: Forbidden")
    assert info["exitCode"] == 1 and info["modelRevisionName"] == "iris-predictor-00001"
    isvc = client.get("InferenceService", NS, "iris")
    assert condition(isvc)["status"] == "False" and condition(isvc, "PredictorReady")["reason"] == "RevisionFailed"
    assert isvc["status"]["modelStatus"]["transitionStatus"] == "BlockedByFailedLoad"
    # The kubelet restarts it once at once, then backs off: Init:CrashLoopBackOff.
    pod = wait_for(lambda: next((p for p in pods_of(client, "iris")
                                 if init_status(p)["state"].get("waiting", {}).get("reason") == "CrashLoopBackOff"),
                                None), 30, "CrashLoopBackOff")
    assert init_status(pod)["lastState"]["terminated"]["exitCode"] == 1
    assert init_status(pod)["restartCount"] == 1
    assert "HeadBucket operation: Forbidden" in initializer_log(client, pod)
    if KUBECTL.is_file():  # what an operator sees
        listing = make_kubectl(sandbox.server, tmp_path / "kubectl")("get", "pods", "-n", NS).stdout
        assert "Init:CrashLoopBackOff" in listing
    assert not (sandbox.controller.model_dir(NS, "iris", "iris-predictor-00001") / "model.joblib").exists()
    events = client.events_for(NS, "iris")
    assert any(e["reason"] == "InferenceServiceNotReady" and e["type"] == "Warning"
               and "S3 error [403]: Forbidden" in e["message"] for e in events)
    assert any(e["reason"] == "BackOff" for e in client.events_for(NS, pod["metadata"]["name"], kind="Pod"))


@pytest.mark.parametrize(("uri", "message"), [
    ("s3://missing-bucket-{n}/iris", "S3 resource 'missing-bucket-{n}' not found."),
    ("s3://{bucket}/nothing-here", "Failed to fetch model. No model found in nothing-here."),
])
def test_a_missing_bucket_or_object_gives_kserves_message(cluster, s3_server, s3_bucket, uri, message):
    _, client = cluster
    upload(s3_server, s3_bucket, {"iris/model.joblib": MODEL})
    connect(client, s3_server)
    n = s3_bucket[2:]
    deploy(client, "iris", uri.format(bucket=s3_bucket, n=n))
    info = wait_failure(client, "iris")
    # The real initializer decides here, not the sandbox's "missing…" naming rule.
    assert info["message"].rstrip().endswith(f"Storage initialization failed: {message.format(n=n)}")


def test_keys_changed_on_the_server_spare_the_running_revision_and_fail_the_next(kserve_storage, own_s3_server,
                                                                                    tmp_path):
    server, controller = start_sandbox(settings=SandboxSettings(**storage_settings(tmp_path)))
    client = ClusterClient.for_url(server.url, timeout=10.0)
    try:
        client.ensure_namespace(NS)
        s3_client(own_s3_server).create_bucket(Bucket="models")
        upload(own_s3_server, "models", {"iris/model.joblib": MODEL})
        connect(client, own_s3_server)
        deploy(client, "iris", "s3://models/iris")
        wait_ready(client, "iris")
        own_s3_server.reload_identities([new_identity()])  # the console's keys are refused from now on
        time.sleep(1.0)
        # KServe downloads only when pods start: the running revision keeps serving.
        isvc = client.get("InferenceService", NS, "iris")
        assert condition(isvc)["status"] == "True"
        (pod,) = pods_of(client, "iris")
        assert init_status(pod)["state"]["terminated"]["reason"] == "Completed"
        assert (controller.model_dir(NS, "iris", "iris-predictor-00001") / "model.joblib").is_file()
        deploy(client, "iris", "s3://models/iris", env={"WORKERS": "2"})  # a new revision
        info = wait_failure(client, "iris")
        assert "HeadBucket operation: Forbidden" in info["message"] and info["modelRevisionName"] == \
            "iris-predictor-00002"
        predictor = client.get("InferenceService", NS, "iris")["status"]["components"]["predictor"]
        assert predictor["latestCreatedRevision"] == "iris-predictor-00002"
        assert predictor["latestReadyRevision"] == predictor["latestRolledoutRevision"] == "iris-predictor-00001"
        (old,) = pods_of(client, "iris", 1)
        assert old["status"]["phase"] == "Running" and init_status(old)["state"]["terminated"]["exitCode"] == 0
        assert {"name": "AWS_ENDPOINT_URL", "value": own_s3_server.endpoint_url} in old["spec"]["initContainers"][0]["env"]
        assert (controller.model_dir(NS, "iris", "iris-predictor-00001") / "model.joblib").is_file()
    finally:
        client.close()
        controller.stop()
        server.stop()


def test_fixing_the_secret_lets_the_next_restart_succeed(kserve_storage, s3_server, s3_bucket, tmp_path):
    """The kubelet reads the secret again at every restart: no new revision is needed."""
    server, controller = start_sandbox(settings=SandboxSettings(**storage_settings(
        tmp_path, storage_initializer_backoff=0.3)))
    client = ClusterClient.for_url(server.url, timeout=10.0)
    try:
        client.ensure_namespace(NS)
        upload(s3_server, s3_bucket, {"iris/model.joblib": MODEL})
        connect(client, s3_server, secret_key="wrong")
        deploy(client, "iris", f"s3://{s3_bucket}/iris")
        wait_failure(client, "iris")
        connect(client, s3_server)  # the right keys now
        isvc = wait_ready(client, "iris")
        model = isvc["status"]["modelStatus"]
        assert model["transitionStatus"] == "UpToDate" and model["states"]["targetModelState"] == "Loaded"
        assert model["lastFailureInfo"]["reason"] == "ModelLoadFailed"  # KServe never clears it
        (pod,) = pods_of(client, "iris")
        assert init_status(pod)["restartCount"] >= 1 and pod["metadata"]["name"].startswith("iris-predictor-00001")
    finally:
        client.close()
        controller.stop()
        server.stop()


def test_a_missing_secret_refuses_the_pods_until_it_exists(cluster, s3_server, s3_bucket):
    _, client = cluster
    upload(s3_server, s3_bucket, {"iris/model.joblib": MODEL})
    client.apply({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "models", "namespace": NS},
                  "secrets": [{"name": "s3-conn"}]})
    deploy(client, "iris", f"s3://{s3_bucket}/iris")
    denial = ('admission webhook "inferenceservice.kserve-webhook-server.pod-mutator" denied the request: '
              'secrets "s3-conn" not found')
    isvc = wait_for(lambda: (lambda o: o if condition(o, "PredictorReady").get("status") == "False" else None)(
        client.get("InferenceService", NS, "iris")), 30, "the pods to be refused")
    assert condition(isvc, "PredictorReady")["message"] == \
        f'Revision "iris-predictor-00001" failed with message: {denial}.'
    assert pods_of(client, "iris") == []
    # The event is recorded just after the status (a busy machine can read between the two).
    wait_for(lambda: any(e["reason"] == "FailedCreate" and e["message"] == f"Error creating: {denial}"
                         for e in client.events_for(NS, "iris")), 10, "the FailedCreate event")
    connect(client, s3_server)  # the secret arrives: the ReplicaSet's next try gets through
    wait_ready(client, "iris")


def test_a_missing_key_is_create_container_config_error(cluster, s3_server, s3_bucket):
    _, client = cluster
    upload(s3_server, s3_bucket, {"iris/model.joblib": MODEL})
    identity = s3_server.identities[0]
    connect(client, s3_server, data={"AWS_SECRET_ACCESS_KEY": identity.secret_key})
    deploy(client, "iris", f"s3://{s3_bucket}/iris")
    pod = wait_for(lambda: next((p for p in pods_of(client, "iris") if init_status(p)["state"].get("waiting", {})
                                 .get("reason") == "CreateContainerConfigError"), None), 30, "the config error")
    assert init_status(pod)["state"]["waiting"]["message"] == \
        f"couldn't find key AWS_ACCESS_KEY_ID in Secret {NS}/s3-conn"
    isvc = wait_for(lambda: (lambda o: o if condition(o).get("status") else None)(
        client.get("InferenceService", NS, "iris")), 10, "a Ready condition")  # pods are written first
    assert condition(isvc)["status"] == "Unknown"
    assert isvc["status"]["modelStatus"]["states"]["targetModelState"] == "Pending"
    connect(client, s3_server)  # the key is added
    wait_ready(client, "iris")


def test_anonymous_requests_get_the_private_buckets_403(cluster, s3_server, s3_bucket):
    _, client = cluster
    upload(s3_server, s3_bucket, {"iris/model.joblib": MODEL})
    connect(client, s3_server, annotations={A + "s3-useanoncredential": "true"},
            data={"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""})
    deploy(client, "iris", f"s3://{s3_bucket}/iris")
    info = wait_failure(client, "iris")
    assert info["message"].rstrip().endswith("S3 error [403]: Forbidden")


@pytest.mark.parametrize("account", ["none", "without-secrets"])
def test_without_credentials_an_s3_download_is_not_one_the_sandbox_can_make(cluster, account):
    """No ServiceAccount, or one listing no secret: KServe gives the initializer no S3 settings at
    all, so it would talk to AWS. That cannot happen here: the simulation decides, as before."""
    sandbox, client = cluster
    if account == "without-secrets":
        client.apply({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "models", "namespace": NS}})
    deploy(client, "iris", "s3://some-bucket/iris", account="models" if account != "none" else None)
    wait_ready(client, "iris")
    (pod,) = pods_of(client, "iris")
    assert "env" not in pod["spec"]["initContainers"][0] and initializer_log(client, pod) == ""
    assert not sandbox.controller.model_dir(NS, "iris", "iris-predictor-00001").exists()


@pytest.mark.parametrize(("release", "ready"), [("0.16.0", False), ("0.17.1", True)])
def test_an_endpoint_with_its_scheme_per_release(kserve_storage, s3_server, s3_bucket, tmp_path, release, ready):
    """Before 0.17 KServe keeps ``http://`` in S3_ENDPOINT and puts ``https://`` in front of it."""
    upload(s3_server, s3_bucket, {"iris/model.joblib": MODEL})
    with release_sandbox(release, **storage_settings(tmp_path)) as sandbox:
        client = ClusterClient.for_url(sandbox.url, timeout=10.0)
        try:
            client.ensure_namespace(NS)
            connect(client, s3_server, endpoint=s3_server.endpoint_url)
            deploy(client, "iris", f"s3://{s3_bucket}/iris")
            if ready:
                wait_ready(client, "iris")
            else:
                info = wait_failure(client, "iris")
                # boto3 reads host "http" out of https://http://127.0.0.1:port and cannot reach it.
                assert info["message"].rstrip().endswith(
                    f'Unexpected error during storage initialization: Could not connect to the endpoint URL: '
                    f'"http://http:/127.0.0.1%3A{s3_server.s3_port}/{s3_bucket}"')
        finally:
            client.close()


# --- HTTP(S) -------------------------------------------------------------------------------------
def test_http_headers_from_the_secret_and_anonymous_downloads(cluster, web):
    sandbox, client = cluster
    deploy(client, "public", f"{web}/public/model.joblib", account=None)  # no account: anonymous
    deploy(client, "private", f"{web}/private/model.joblib", account=None)
    wait_ready(client, "public")
    assert (sandbox.controller.model_dir(NS, "public", "public-predictor-00001") / "model.joblib").read_bytes() == MODEL
    info = wait_failure(client, "private")
    assert info["message"].rstrip().endswith(
        f"HTTP authentication failed for '{web}/private/model.joblib'. Verify credentials.")
    client.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "web", "namespace": NS},
                  "stringData": {"https-host": "127.0.0.1",
                                 "headers": json.dumps({"Authorization": f"Bearer {Files.token}"})}})
    client.apply({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "web", "namespace": NS},
                  "secrets": [{"name": "web"}]})
    deploy(client, "private", f"{web}/private/model.joblib", account="web")
    wait_ready(client, "private")
    (pod,) = pods_of(client, "private", 2)
    assert {"name": "127.0.0.1-headers", "value": json.dumps({"Authorization": f"Bearer {Files.token}"})} \
        in pod["spec"]["initContainers"][0]["env"]


@pytest.mark.parametrize(("release", "while_restarting"), [("0.14.1", "Loading"), ("0.15.2", "FailedToLoad")])
def test_the_model_state_while_a_failed_download_runs_again(kserve_storage, web, tmp_path, release, while_restarting):
    with release_sandbox(release, **storage_settings(tmp_path)) as sandbox:
        client = ClusterClient.for_url(sandbox.url, timeout=10.0)
        try:
            client.ensure_namespace(NS)
            deploy(client, "flaky", f"{web}/flaky/{release}/model.joblib", account=None)
            wait_failure(client, "flaky")
            pod = wait_for(lambda: next((p for p in pods_of(client, "flaky")
                                         if "running" in init_status(p)["state"]), None), 10, "the restart")
            assert init_status(pod)["lastState"]["terminated"]["exitCode"] == 1
            model = wait_for(lambda: (lambda o: o["status"]["modelStatus"] if o["status"]["modelStatus"]["states"][
                "targetModelState"] == while_restarting else None)(client.get("InferenceService", NS, "flaky")),
                2, f"{while_restarting} while it runs again")
            assert model["lastFailureInfo"]["reason"] == "ModelLoadFailed"  # kept either way
            wait_ready(client, "flaky")
        finally:
            client.close()


def test_a_download_that_hangs_is_killed_after_the_timeout(kserve_storage, web, tmp_path):
    server, controller = start_sandbox(settings=SandboxSettings(**storage_settings(
        tmp_path, storage_initializer_timeout=2.0)))
    client = ClusterClient.for_url(server.url, timeout=10.0)
    try:
        client.ensure_namespace(NS)
        deploy(client, "slow", f"{web}/slow/model.joblib", account=None)
        info = wait_failure(client, "slow")
        assert info["exitCode"] == 137 and "did not finish within 2 s" in info["message"]
    finally:
        client.close()
        controller.stop()
        server.stop()


def test_stopping_removes_the_download_and_starting_again_downloads_again(cluster, web):
    sandbox, client = cluster
    deploy(client, "public", f"{web}/public/model.joblib", account=None)
    wait_ready(client, "public")
    folder = sandbox.controller.model_dir(NS, "public", "public-predictor-00001")
    assert folder.is_dir()
    obj = client.get("InferenceService", NS, "public")
    obj["metadata"].setdefault("annotations", {})[A + "stop"] = "true"
    client.apply({"apiVersion": obj["apiVersion"], "kind": obj["kind"],
                  "metadata": {"name": "public", "namespace": NS, "annotations": {A + "stop": "true"}},
                  "spec": obj["spec"]})
    wait_for(lambda: not pods_of(client, "public") and not folder.exists(), 30, "the pods and their download to go")
    client.apply({"apiVersion": obj["apiVersion"], "kind": obj["kind"],
                  "metadata": {"name": "public", "namespace": NS, "annotations": {A + "stop": "false"}},
                  "spec": obj["spec"]})
    wait_ready(client, "public")
    # Ready comes first; the stopped revision's pods are gone a moment later on a busy machine,
    # and the annotation made a new revision, whose pod is the one left (seen in CI: a pod of
    # the first revision still listed right after Ready).
    def revisions() -> list[str]:
        return [p["metadata"]["name"].split("-deployment-")[0] for p in pods_of(client, "public")]

    wait_for(lambda: len(revisions()) == 1 and revisions()[0] != "public-predictor-00001", 30,
             "one pod, of a new revision, for the started endpoint")
    (revision,) = revisions()
    assert (sandbox.controller.model_dir(NS, "public", revision) / "model.joblib").is_file()
    # The pod listed may be one that a later revision replaces on a busy machine: read the log of
    # whichever pod the endpoint has once the copy is logged.
    wait_for(lambda: any("Successfully copied" in initializer_log(client, p) for p in pods_of(client, "public")),
             30, "the storage initializer's log of the started endpoint")
    client.delete("InferenceService", NS, "public")
    wait_for(lambda: not folder.parent.exists(), 30, "the download to go with the InferenceService")


# --- the pieces ----------------------------------------------------------------------------------
def test_termination_message_is_the_kubelets_tail():
    log = "".join(f"line {i:03d} " + "x" * 30 + "\n" for i in range(200))  # 40 bytes a line
    message = storage_initializer.termination_message(log)
    assert len(message.encode()) == 2048 and message.endswith(f"line 199 {'x' * 30}\n")
    short = "".join(f"{i}\n" for i in range(100))
    assert storage_initializer.termination_message(short) == "".join(f"{i}\n" for i in range(20, 100))


@pytest.mark.parametrize(("uri", "env", "here"), [
    ("s3://b/m", {"AWS_ENDPOINT_URL": "http://127.0.0.1:9000"}, True),
    ("s3://b/m", {"AWS_ENDPOINT_URL": "http://localhost:9000"}, True),
    ("s3://b/m", {"AWS_ENDPOINT_URL": "https://http://127.0.0.1:9000", "S3_ENDPOINT": "http://127.0.0.1:9000"}, True),
    ("s3://b/m", {"AWS_ENDPOINT_URL": "https://minio.example.com"}, False),
    ("s3://b/m", {}, False),
    ("http://127.0.0.1:8080/m.joblib", {}, True),
    ("https://[::1]:8443/m.joblib", {}, True),
    ("https://example.com/m.joblib", {}, False),
    ("gs://b/m", {}, False),
    ("hf://org/model", {}, False),
])
def test_what_can_be_downloaded_here(uri, env, here):
    assert storage_initializer.runnable_here(uri, env) is here


def test_a_virtualenv_that_cannot_be_made_says_why(tmp_path):
    with pytest.raises(storage_initializer.StorageInitializerUnavailable) as error:
        storage_initializer.ensure_venv(tmp_path / "venv", python="/bin/false")
    assert f"cannot install {storage_initializer.REQUIREMENT} into {tmp_path / 'venv'}" in str(error.value)


def test_without_kserve_storage_the_default_falls_back_to_the_simulation(monkeypatch, tmp_path, web):
    def unavailable(*args, **kwargs):
        raise storage_initializer.StorageInitializerUnavailable("pip could not reach an index")

    monkeypatch.setattr(storage_initializer, "ensure_venv", unavailable)
    monkeypatch.setattr(storage_initializer, "installed_version", lambda venv: None)
    server, controller = start_sandbox(settings=SandboxSettings(models_dir=tmp_path / "models"))
    client = ClusterClient.for_url(server.url, timeout=10.0)
    try:
        client.ensure_namespace(NS)
        deploy(client, "public", f"{web}/public/model.joblib", account=None)
        wait_ready(client, "public")
        assert controller._storage_off_reason == "pip could not reach an index"
        assert not controller.model_dir(NS, "public", "public-predictor-00001").exists()
    finally:
        client.close()
        controller.stop()
        server.stop()


def test_a_directory_the_sandbox_did_not_make_is_never_replaced(tmp_path):
    mine = tmp_path / "someone-elses"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(storage_initializer.StorageInitializerUnavailable, match="is not a virtualenv the sandbox made"):
        storage_initializer.ensure_venv(mine)
    assert (mine / "notes.txt").read_text() == "keep me"


@pytest.mark.parametrize(("init", "shown"), [
    ({"waiting": {"reason": "PodInitializing"}}, ("Init:0/1", 0)),
    ({"running": {}}, ("Init:0/1", 0)),
    ({"waiting": {"reason": "CrashLoopBackOff"}}, ("Init:CrashLoopBackOff", 2)),
    ({"terminated": {"exitCode": 1, "reason": "Error"}}, ("Init:Error", 2)),
    ({"waiting": {"reason": "CreateContainerConfigError"}}, ("Init:CreateContainerConfigError", 2)),
    ({"terminated": {"exitCode": 0, "reason": "Completed"}}, ("Running", 0)),
])
def test_the_pod_status_column_reads_the_init_container_like_kubectl(init, shown):
    from endpoints.sandbox.resources import _pod_status_and_restarts

    pod = {"spec": {"initContainers": [{"name": "storage-initializer"}], "containers": [{"name": "kserve-container"}]},
           "status": {"phase": "Running" if shown[0] == "Running" else "Pending",
                      "initContainerStatuses": [{"name": "storage-initializer", "state": init,
                                                 "restartCount": 0 if shown[1] == 0 else 2}],
                      "containerStatuses": [{"name": "kserve-container", "restartCount": 0,
                                             "state": {"running": {}} if shown[0] == "Running"
                                             else {"waiting": {"reason": "PodInitializing"}}}]}}
    assert _pod_status_and_restarts(pod) == shown
