"""Factories and helpers for the endpoint UI/API/service tests.

Row factories (``EndpointFactory`` and friends) write models directly: they set up data for
list pages and query counts without the services' side effects. Tests of behaviour create
endpoints through ``endpoints.services`` (see ``deploy_setup``).
"""

from __future__ import annotations

from dataclasses import dataclass

import factory
from guardian.shortcuts import assign_perm

from endpoints.cluster import ClusterClient
from endpoints.models import (
    Cluster,
    Endpoint,
    EndpointStatus,
    HardwareProfile,
    ModelVersion,
    Project,
    ProjectQuota,
    RegisteredModel,
)
from endpoints.services.platform import sync_builtin_runtimes
from endpoints.services.projects import project_create
from endpoints.services.registry import model_register, model_version_create

UNREACHABLE_API = "http://127.0.0.1:9"  # discard port: nothing listens, connections fail at once


class ClusterFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Cluster
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"cluster-{n}")
    kind = Cluster.Kind.KUBERNETES
    connection = Cluster.Connection.URL
    api_url = UNREACHABLE_API
    ingress_domain = "example.com"


class ProjectFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Project
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"team-{n}")
    cluster = factory.SubFactory(ClusterFactory)
    namespace = factory.LazyAttribute(lambda o: o.name)


class HardwareProfileFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = HardwareProfile
        django_get_or_create = ("name",)

    name = "a100"
    display_name = "NVIDIA A100"
    accelerator_resource = "nvidia.com/gpu"
    accelerator_product = "NVIDIA-A100-SXM4-80GB"
    node_selector = factory.LazyFunction(lambda: {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"})
    tolerations = factory.LazyFunction(
        lambda: [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}])
    max_accelerators_per_replica = 4
    capacity = 8


class RegisteredModelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RegisteredModel

    project = factory.SubFactory(ProjectFactory)
    name = factory.Sequence(lambda n: f"model-{n}")
    task = RegisteredModel.Task.CLASSIFICATION


class ModelVersionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ModelVersion

    model = factory.SubFactory(RegisteredModelFactory)
    version = factory.Sequence(lambda n: n + 1)
    storage_uri = factory.LazyAttribute(lambda o: f"s3://models/{o.model.name}/{o.version}")
    model_format = "sklearn"
    format_version = ""
    input_signature = factory.LazyFunction(
        lambda: [{"name": "sepal_length", "type": "numeric"}, {"name": "sepal_width", "type": "numeric"}])


class EndpointFactory(factory.django.DjangoModelFactory):
    """An endpoint row with a status row (no revision, nothing enqueued)."""

    class Meta:
        model = Endpoint
        skip_postgeneration_save = True

    project = factory.SubFactory(ProjectFactory)
    name = factory.Sequence(lambda n: f"endpoint-{n}")
    model_version = factory.SubFactory(ModelVersionFactory, model__project=factory.SelfAttribute("...project"))

    @factory.post_generation
    def status(self, create, extracted, **kwargs):
        if create:
            EndpointStatus.objects.create(endpoint=self, **(extracted or {}))


def grant(user, project: Project, *actions: str) -> None:
    """Object permissions on a project (what the Deployer/Viewer roles will bundle)."""
    for action in actions:
        assign_perm(f"endpoints.{action}_project", user, project)


@dataclass
class DeploySetup:
    """A project on a cluster (the fake API server when given), built-in runtimes, a GPU
    profile with a quota, and a model with two versions."""

    cluster: Cluster
    project: Project
    profile: HardwareProfile
    model: RegisteredModel
    v1: ModelVersion
    v2: ModelVersion

    def client(self) -> ClusterClient:
        return self.cluster.client()

    def live_isvc(self, name: str) -> dict | None:
        with self.client() as client:
            return client.get("InferenceService", self.project.namespace, name)


def deploy_setup(*, actor, api_url: str = UNREACHABLE_API, quota: int | None = 8, capacity: int = 8,
                 project_name: str = "fraud", onboard: bool | None = None) -> DeploySetup:
    """Everything a deploy needs, created through the services where they exist."""
    sync_builtin_runtimes()
    cluster = ClusterFactory(name=f"c-{project_name}", api_url=api_url)
    profile = HardwareProfileFactory(capacity=capacity)
    if onboard is None:
        onboard = api_url != UNREACHABLE_API
    project = project_create(actor=actor, name=project_name, cluster=cluster, onboard=onboard,
                             quotas={profile: quota} if quota is not None else None)
    model = model_register(actor=actor, project=project, name="scorer", task="classification")
    signature = [{"name": "amount", "type": "numeric"}, {"name": "country", "type": "categorical"}]
    v1 = model_version_create(actor=actor, model=model, storage_uri="s3://models/scorer/1",
                              model_format="sklearn", input_signature=signature)
    v2 = model_version_create(actor=actor, model=model, storage_uri="s3://models/scorer/2",
                              model_format="sklearn", input_signature=signature)
    return DeploySetup(cluster, project, profile, model, v1, v2)


def set_quota(project: Project, profile: HardwareProfile, limit: int) -> None:
    ProjectQuota.objects.update_or_create(project=project, hardware_profile=profile,
                                          defaults={"max_accelerators": limit})
