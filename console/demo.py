"""Demo content for ``make run`` (idempotent): the sandbox cluster, hardware profiles, two
projects, registered models with reference data and endpoints in the sandbox.

Everything is created through the apps' services, so the demo's audit trail is real.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

from django.contrib.auth import get_user_model

from endpoints import services as endpoint_services
from endpoints.models import Cluster, Endpoint, HardwareProfile, Project, RegisteredModel, ServingRuntime

IRIS_FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")


def _iris_sample(rows: int = 300, seed: int = 7) -> bytes:
    rng = random.Random(seed)
    centres = {0: (5.0, 3.4, 1.5, 0.2), 1: (5.9, 2.8, 4.3, 1.3), 2: (6.6, 3.0, 5.6, 2.0)}
    lines = [",".join((*IRIS_FEATURES, "prediction"))]
    for _ in range(rows):
        label = rng.randrange(3)
        values = [max(0.1, rng.gauss(mu, 0.35)) for mu in centres[label]]
        lines.append(",".join([*(f"{v:.2f}" for v in values), str(label)]))
    return ("\n".join(lines) + "\n").encode()


def _sandbox_cluster() -> Cluster:
    url = os.environ.get("SANDBOX_URL", "http://127.0.0.1:8001")
    token_file = os.environ.get("SANDBOX_TOKEN_FILE")
    token = Path(token_file).read_text().strip() if token_file else ""
    cluster = Cluster.objects.filter(name="sandbox").first()
    if cluster is None:
        return endpoint_services.cluster_create(
            actor=None, name="sandbox", description="Simulated cluster with KServe (make run)",
            kind=Cluster.Kind.SANDBOX, connection=Cluster.Connection.URL, api_url=url, api_token=token,
            ingress_domain="example.com")
    if cluster.api_url != url or cluster.api_token != token:
        endpoint_services.cluster_update(actor=None, cluster=cluster, api_url=url, api_token=token)
    return cluster


def _ensure_grant(*, role: str, target, user=None, group=None, reason: str) -> None:
    """A live grant of ``role`` on ``target`` (created once; reruns leave it alone)."""
    from console import grants
    from console.models import Grant

    principal = {"user": user} if user is not None else {"group": group}
    field = {"project": "project", "endpoint": "endpoint", "registeredmodel": "registered_model"}[
        target._meta.model_name]
    if not Grant.objects.filter(grants.live_q(), role=role, **principal, **{field: target}).exists():
        grants.grant_create(actor=None, role=role, target=target, reason=reason, **principal)


def _seed_access(*, alice, bob, projects) -> None:
    """The demo's access: a data-science team (alice) deploys and calls in both projects,
    bob views fraud detection, and a service account may call fraud detection's endpoints."""
    from django.contrib.auth.models import Group

    from console import services as console_services

    team = Group.objects.filter(name="data-science").first() or console_services.team_create(
        actor=None, name="data-science")
    if not team.user_set.filter(pk=alice.pk).exists():
        console_services.team_add_member(actor=None, team=team, user=alice)
    for project in projects:
        _ensure_grant(role="deployer", target=project, group=team, reason="Demo: the team ships its models")
        _ensure_grant(role="caller", target=project, group=team, reason="Demo: the team tests its endpoints")
    _ensure_grant(role="viewer", target=projects[0], user=bob, reason="Demo: read-only reviewer")
    User = get_user_model()
    robot = User.objects.filter(username="fraud-scorer-client").first() or console_services.user_create(
        actor=None, username="fraud-scorer-client", is_service_account=True,
        description="Demo: the payment service calling the fraud endpoints")
    _ensure_grant(role="caller", target=projects[0], user=robot, reason="Demo: production caller")


def seed(stdout=None) -> None:
    User = get_user_model()
    alice = User.objects.get(username="alice")
    bob = User.objects.get(username="bob")
    endpoint_services.sync_builtin_runtimes()
    cluster = _sandbox_cluster()

    cpu = HardwareProfile.objects.filter(name="cpu-small").first() or endpoint_services.hardware_profile_create(
        actor=None, name="cpu-small", display_name="CPU small", description="2 vCPU / 4 GiB, no accelerator",
        default_cpu="1", default_memory="2Gi", max_cpu="2", max_memory="4Gi")
    a100 = HardwareProfile.objects.filter(name="a100").first() or endpoint_services.hardware_profile_create(
        actor=None, name="a100", display_name="NVIDIA A100 80GB", description="For LLM serving",
        accelerator_resource="nvidia.com/gpu", accelerator_product="NVIDIA-A100-SXM4-80GB",
        node_selector={"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"},
        tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        default_cpu="4", default_memory="32Gi", max_cpu="16", max_memory="128Gi",
        max_accelerators_per_replica=4, capacity=8)

    fraud = Project.objects.filter(name="fraud-detection").first() or endpoint_services.project_create(
        actor=None, name="fraud-detection", cluster=cluster, display_name="Fraud detection",
        description="Tabular models scoring card transactions.")
    llm = Project.objects.filter(name="llm-apps").first() or endpoint_services.project_create(
        actor=None, name="llm-apps", cluster=cluster, display_name="LLM applications",
        description="Assistants served through OpenAI-compatible endpoints.", quotas={a100: 4})
    _seed_access(alice=alice, bob=bob, projects=(fraud, llm))

    iris = RegisteredModel.objects.filter(project=fraud, name="iris-classifier").first()
    if iris is None:
        iris = endpoint_services.model_register(actor=alice, project=fraud, name="iris-classifier",
                                                task="classification",
                                                description="Species classifier (scikit-learn).")
        endpoint_services.model_version_create(
            actor=alice, model=iris, storage_uri="gs://kfserving-examples/models/sklearn/1.0/model",
            model_format="sklearn", format_version="1", prediction_column="prediction",
            reference_file=_iris_sample(), reference_filename="iris-reference.csv", aliases=["champion"])
        endpoint_services.model_version_create(
            actor=alice, model=iris, storage_uri="gs://kfserving-examples/models/sklearn/1.0/model-2",
            model_format="sklearn", format_version="1", prediction_column="prediction",
            reference_file=_iris_sample(seed=11), reference_filename="iris-reference-v2.csv",
            aliases=["challenger"])
    chat = RegisteredModel.objects.filter(project=llm, name="support-assistant").first()
    if chat is None:
        chat = endpoint_services.model_register(actor=alice, project=llm, name="support-assistant",
                                                task="llm-chat", description="Llama 3.1 8B Instruct.")
        endpoint_services.model_version_create(
            actor=alice, model=chat, storage_uri="hf://meta-llama/Llama-3.1-8B-Instruct",
            model_format="huggingface")

    v1, v2 = iris.versions.order_by("version")[:2]
    if not Endpoint.objects.filter(project=fraud, name="iris").exists():
        endpoint_services.endpoint_create(
            actor=alice, project=fraud, name="iris", model_version=v1, protocol="v1", deployment_mode="Knative",
            min_replicas=1, max_replicas=3, scale_metric="concurrency", scale_target=10, hardware_profile=cpu,
            description="Production iris classifier")
    if not Endpoint.objects.filter(project=fraud, name="iris-batch").exists():
        endpoint_services.endpoint_create(
            actor=alice, project=fraud, name="iris-batch", model_version=v2, protocol="v2",
            deployment_mode="Knative", min_replicas=0, max_replicas=2, hardware_profile=cpu,
            runtime=ServingRuntime.objects.get(name="kserve-sklearnserver"),
            description="Scales to zero between nightly batches")
    if not Endpoint.objects.filter(project=llm, name="assistant").exists():
        endpoint_services.endpoint_create(
            actor=alice, project=llm, name="assistant", model_version=chat.versions.get(version=1),
            protocol="openai", deployment_mode="Knative", min_replicas=1, max_replicas=2,
            hardware_profile=a100, accelerator_count=1, runtime=ServingRuntime.objects.get(name="kserve-huggingfaceserver"),
            description="Support chat assistant")
    if stdout is not None:
        stdout.write("Demo projects, models and endpoints ready.")
