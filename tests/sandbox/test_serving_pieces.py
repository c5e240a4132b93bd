"""The data plane's pieces on their own (no console): the gateway's ext_authz settings are
deploy/istio's; the agent logs like KServe's agent (compared with the captured logger events in
../shared/samples/kserve-logger/), fire-and-forget; the xgboost and lightgbm model servers answer
both protocols on 127.0.0.1 only; formats that cannot run here are marked simulated."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import textwrap
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from endpoints.sandbox.controller import SIMULATED_CONDITION, SandboxSettings
from endpoints.sandbox.run import start_data_plane, start_sandbox
from endpoints.sandbox.serving import gateway, runtimes
from endpoints.sandbox.serving.dataplane import DataPlaneSettings
from tests.audit import samples
from tests.fixtures.envoy import free_port, provider
from tests.fixtures.kube import wait_for

ROOT = Path(__file__).resolve().parents[2]


# --- the gateway's policy is deploy/istio's ----------------------------------------------------------
def test_the_gateways_ext_authz_settings_are_the_istio_providers():
    istio = provider("inference-console-authz")
    assert {k: v for k, v in istio.items() if k not in ("kind", "service", "port")} == gateway.AUTHZ_SETTINGS
    policy = next(yaml.safe_load_all((ROOT / "deploy/istio/authorization-policy.yaml").read_text()))
    operation = policy["spec"]["rules"][0]["to"][0]["operation"]
    assert {p.rstrip("*") for p in operation["paths"]} == {*gateway.CHECKED_PREFIXES, gateway.SERVING_PREFIX + "/"}
    assert set(operation["notPaths"]) == {*gateway.OPEN_EXACT, *(p + "*" for p in gateway.OPEN_PREFIXES)}


# --- the agent -------------------------------------------------------------------------------------------
class Receiver:
    """A logger sink that records every delivery; ``status`` is what it answers."""

    def __init__(self, status: int = 202):
        self.deliveries: list[tuple[dict, bytes]] = []
        deliveries = self.deliveries

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                deliveries.append(({k.lower(): v for k, v in self.headers.items()},
                                   self.rfile.read(int(self.headers.get("content-length") or 0))))
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            do_GET = do_POST  # noqa: N815 - the upstream model server stand-in answers GET too

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class Model(BaseHTTPRequestHandler):
    """The model server behind the agent (its answer is the sample's)."""

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("content-length") or 0))
        failed = "broken" in self.path
        body = b'{"error": "boom"}' if failed else b'{"predictions": [1, 1]}'
        self.send_response(500 if failed else 200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def agent(request):
    """An agent process in front of a model stand-in, logging to a receiver."""
    model = ThreadingHTTPServer(("127.0.0.1", 0), Model)
    model.daemon_threads = True
    threading.Thread(target=model.serve_forever, daemon=True).start()
    receiver = Receiver(getattr(request, "param", 202))
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "endpoints.sandbox.serving.agent", "--port", str(port),
                                "--upstream-port", str(model.server_address[1]), "--logger-url", receiver.url,
                                "--inference-service", "sklearn-iris", "--namespace", "default",
                                "--metadata-header", "X-Console-Principal",
                                "--annotation", "inference-console.io/model-version=iris:1"],
                               cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: _open(port), 20, "the agent to listen")
    yield port, receiver
    process.terminate()
    process.wait(timeout=10)
    receiver.close()
    model.shutdown()
    model.server_close()


def _open(port: int) -> bool:
    import socket
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def _post(port: int, body: bytes, headers: dict, path: str = "/v1/models/sklearn-iris:predict") -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("POST", path, body=body, headers=headers)
    answer = connection.getresponse()
    data = answer.read()
    connection.close()
    return answer.status, data


def test_the_agent_logs_request_and_response_like_kserves_agent(agent):
    port, receiver = agent
    captured = samples.event_display_deliveries("basic-logger-event_display.txt")
    sample_request, sample_response = captured
    status, answer = _post(port, sample_request.body, {"Content-Type": "application/json",
                                                       "X-Console-Principal": "alice"})
    assert (status, json.loads(answer)) == (200, {"predictions": [1, 1]})
    wait_for(lambda: len(receiver.deliveries) == 2, 10, "both events")
    (request_headers, request_body), (response_headers, response_body) = sorted(
        receiver.deliveries, key=lambda d: d[0]["ce-type"] != sample_request.attributes["type"])
    # What the captured agent sent, attribute for attribute (binary mode: ce-* headers).
    for sample, headers in ((sample_request, request_headers), (sample_response, response_headers)):
        for name in sample.attributes:
            if name in ("traceparent",):
                continue  # tracing is not part of the sandbox
            assert f"ce-{name}" in headers, name
        assert headers["ce-type"] == sample.attributes["type"]
        assert headers["ce-specversion"] == "1.0"
        assert headers["ce-inferenceservicename"] == "sklearn-iris" and headers["ce-namespace"] == "default"
        assert headers["ce-endpoint"] == "" and headers["ce-component"] == "predictor"
        assert headers["content-type"] == "application/json"
        assert json.loads(headers["ce-metadata"]) == {"X-Console-Principal": ["alice"]}
        assert json.loads(headers["ce-annotations"]) == {"inference-console.io/model-version": "iris:1"}
    assert request_headers["ce-id"] == response_headers["ce-id"]
    assert request_body == sample_request.body and json.loads(response_body) == {"predictions": [1, 1]}
    # A caller-given Ce-Id is the event id, as the agent does.
    _post(port, b'{"instances": [[1, 2, 3, 4]]}', {"Content-Type": "application/json", "Ce-Id": "given-1"})
    wait_for(lambda: len(receiver.deliveries) == 4, 10, "the second pair")
    assert {d[0]["ce-id"] for d in receiver.deliveries[2:]} == {"given-1"}
    assert json.loads(receiver.deliveries[2][0]["ce-metadata"]) == {}  # no metadata header: an empty object
    # A failed inference: the request is logged, the error answer is not (only a 200 is).
    status, _ = _post(port, b'{"instances": []}', {"Content-Type": "application/json", "Ce-Id": "failed-1"},
                      path="/v1/models/broken:predict")
    assert status == 500
    wait_for(lambda: len(receiver.deliveries) == 5, 10, "the failed call's request event")
    time.sleep(0.3)
    assert [d[0]["ce-type"].rsplit(".", 1)[1] for d in receiver.deliveries[4:]] == ["request"]


@pytest.mark.parametrize("agent", [500], indirect=True)
def test_a_failing_logger_never_fails_the_inference_and_is_not_retried(agent):
    port, receiver = agent
    for _ in range(3):
        status, answer = _post(port, b'{"instances": [[1, 2, 3, 4]]}', {"Content-Type": "application/json"})
        assert status == 200 and json.loads(answer) == {"predictions": [1, 1]}
    wait_for(lambda: len(receiver.deliveries) == 6, 10, "one delivery per event")
    time.sleep(0.5)
    assert len(receiver.deliveries) == 6  # refused with 500, each sent once


# --- the model servers -----------------------------------------------------------------------------------
TRAIN = textwrap.dedent("""
    import sys
    import numpy as np
    import lightgbm, xgboost
    from sklearn.datasets import load_iris
    x, y = load_iris(return_X_y=True)
    xgboost.train({"objective": "multi:softmax", "num_class": 3, "nthread": 1},
                  xgboost.DMatrix(x, label=y), num_boost_round=5).save_model(sys.argv[1] + "/xgb/model.bst")
    lightgbm.train({"objective": "multiclass", "num_class": 3, "verbose": -1, "num_threads": 1},
                   lightgbm.Dataset(x, label=y), num_boost_round=5).save_model(sys.argv[1] + "/lgb/model.bst")
""")


def _listening_addresses(port: int) -> set[str]:
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.rsplit(":", 1)
            if int(hex_port, 16) == port and state == "0A":  # LISTEN
                found.add(address)
    return found


def test_xgboost_and_lightgbm_answer_v1_and_v2_on_loopback_only(model_runtimes, tmp_path):
    for folder in ("xgb", "lgb"):
        (tmp_path / folder).mkdir()
    subprocess.run([str(model_runtimes), "-c", TRAIN, str(tmp_path)], check=True, timeout=300)
    setosa, virginica = [5.1, 3.5, 1.4, 0.2], [7.7, 3.0, 6.1, 2.3]
    for model_format, folder in (("xgboost", "xgb"), ("lightgbm", "lgb")):
        runtime = runtimes.start(python=model_runtimes, model_name="iris", model_format=model_format,
                                 model_dir=tmp_path / folder, port=free_port(), log_path=tmp_path / f"{folder}.log")
        try:
            assert _listening_addresses(runtime.port) == {"0100007F"}  # 127.0.0.1, not 0.0.0.0 or [::]
            connection = http.client.HTTPConnection("127.0.0.1", runtime.port, timeout=30)
            connection.request("POST", "/v1/models/iris:predict", body=json.dumps({"instances": [setosa, virginica]}),
                               headers={"Content-Type": "application/json"})
            v1 = json.loads(connection.getresponse().read())["predictions"]
            connection.request("POST", "/v2/models/iris/infer", body=json.dumps({"inputs": [
                {"name": "input-0", "shape": [1, 4], "datatype": "FP32", "data": virginica}]}),
                headers={"Content-Type": "application/json"})
            v2 = json.loads(connection.getresponse().read())["outputs"][0]["data"]
            connection.close()
        finally:
            runtime.stop()
        if model_format == "xgboost":  # multi:softmax answers the class
            assert v1 == [0, 2] and v2 == [2]
        else:  # lightgbm answers the class probabilities
            assert [max(range(3), key=row.__getitem__) for row in v1] == [0, 2]
            assert max(range(3), key=v2.__getitem__) == 2


def test_a_model_server_without_its_file_fails_with_the_reason(model_runtimes, tmp_path):
    with pytest.raises(runtimes.RuntimeStartError, match="no sklearn model file"):
        runtimes.start(python=model_runtimes, model_name="iris", model_format="sklearn", model_dir=tmp_path,
                       port=free_port(), log_path=tmp_path / "server.log")


# --- what stays simulated says so ------------------------------------------------------------------------
def test_formats_and_storage_that_cannot_run_here_are_marked_simulated(tmp_path):
    server, controller = start_sandbox(settings=SandboxSettings(storage_initializer=False, models_dir=tmp_path))
    plane = start_data_plane(controller, DataPlaneSettings(gateway_port=0, logs_dir=tmp_path / "rt"))
    try:
        store = server.store
        store.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "proj"}})
        for name, model_format, uri in (("llm", "huggingface", "hf://org/model"),
                                        ("tf", "tensorflow", "gs://bucket/tf"),
                                        ("remote", "sklearn", "gs://bucket/model")):
            store.create({"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
                          "metadata": {"name": name, "namespace": "proj"},
                          "spec": {"predictor": {"model": {"modelFormat": {"name": model_format},
                                                           "storageUri": uri}}}})

        def marker(name):
            obj = store.get("inferenceservices", "proj", name) or {}
            return next((c for c in (obj.get("status") or {}).get("conditions") or []
                         if c["type"] == SIMULATED_CONDITION), None)

        for name, reason, message in (
                ("llm", "NoCPURuntime", "simulated: no CPU runtime for huggingface"),
                ("tf", "NoCPURuntime", "simulated: no CPU runtime for tensorflow"),
                ("remote", "NotDownloadable", "simulated: the sandbox cannot download gs://bucket/model")):
            condition = wait_for(lambda n=name: marker(n), 10, f"{name} marked simulated")
            assert condition["status"] == "True" and condition["reason"] == reason
            assert condition["message"].startswith(message)
    finally:
        plane.stop()
        controller.stop()
        server.stop()


# --- a model that cannot load ----------------------------------------------------------------------------
def test_a_model_server_that_cannot_load_is_an_event_and_a_503_with_the_reason(
        kserve_storage, model_runtimes, tmp_path):
    """No model file where the sklearn server looks: a Warning event on the InferenceService with
    the server's words, and the gateway answers 503 with them instead of holding the caller."""
    class Allow(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - the console's check, allowing everything (not under test here)
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    class Files(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            body = b"not a model"
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    servers = [ThreadingHTTPServer(("127.0.0.1", 0), handler) for handler in (Allow, Files)]
    for server in servers:
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
    authz, web = (f"http://127.0.0.1:{s.server_address[1]}" for s in servers)
    cluster, controller = start_sandbox(settings=SandboxSettings(
        storage_initializer=True, storage_initializer_venv=kserve_storage.parent.parent, models_dir=tmp_path / "m"))
    plane = start_data_plane(controller, DataPlaneSettings(gateway_port=free_port(), authz_url=authz,
                                                           runtimes_venv=model_runtimes.parent.parent,
                                                           logs_dir=tmp_path / "rt"))
    try:
        store = cluster.store
        store.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "proj"}})
        store.create({"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
                      "metadata": {"name": "iris", "namespace": "proj"},
                      "spec": {"predictor": {"model": {"modelFormat": {"name": "sklearn"},
                                                       "storageUri": f"{web}/iris/model.txt"}}}})
        event = wait_for(lambda: next((e for e in store.list("events", "proj")
                                       if e.get("reason") == "ModelServerFailed"), None), 120, "the failure event")
        assert event["type"] == "Warning" and "no sklearn model file" in event["message"]
        connection = http.client.HTTPConnection("127.0.0.1", plane.gateway.port, timeout=60)
        connection.request("POST", "/v1/models/iris:predict", body=b'{"instances": [[1, 2, 3, 4]]}',
                           headers={"Host": "iris.proj.example.com", "Content-Type": "application/json"})
        answer = connection.getresponse()
        assert answer.status == 503 and b"no sklearn model file" in answer.read()
        connection.close()
    finally:
        plane.stop()
        controller.stop()
        cluster.stop()
        for server in servers:
            server.shutdown()
            server.server_close()
