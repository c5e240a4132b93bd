"""Factories and helpers for registry and platform-admin tests.

Rows are created directly (test data, not user actions): no audit events, no namespace
onboarding. Tests that exercise the services' own rules call the services.
"""

from __future__ import annotations

import factory
from guardian.shortcuts import assign_perm

from endpoints.models import (
    Cluster,
    Endpoint,
    EndpointStatus,
    HardwareProfile,
    ModelAlias,
    ModelVersion,
    Project,
    RegisteredModel,
    ServingRuntime,
)

CSV_SAMPLE = (
    "amount,country,score\n"
    + "".join(f"{10 + i * 3.5},{['fr', 'de', 'nl'][i % 3]},{i % 2}\n" for i in range(40))
).encode()


class ClusterFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Cluster

    name = factory.Sequence(lambda n: f"cluster-{n}")
    kind = Cluster.Kind.SANDBOX
    connection = Cluster.Connection.URL
    api_url = "http://127.0.0.1:9"
    ingress_domain = "example.com"


class HardwareProfileFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = HardwareProfile

    name = factory.Sequence(lambda n: f"gpu-{n}")
    display_name = factory.LazyAttribute(lambda o: f"GPU {o.name}")
    accelerator_resource = "nvidia.com/gpu"
    accelerator_product = "NVIDIA-A100-SXM4-80GB"
    max_accelerators_per_replica = 2
    capacity = 8


class ProjectFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Project

    name = factory.Sequence(lambda n: f"project-{n}")
    cluster = factory.SubFactory(ClusterFactory)
    namespace = factory.LazyAttribute(lambda o: o.name)


class RegisteredModelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RegisteredModel

    project = factory.SubFactory(ProjectFactory)
    name = factory.Sequence(lambda n: f"model-{n}")
    task = RegisteredModel.Task.CLASSIFICATION


def _next_version(version) -> int:
    last = ModelVersion.objects.filter(model=version.model).order_by("-version").first()
    return (last.version if last else 0) + 1


class ModelVersionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ModelVersion

    model = factory.SubFactory(RegisteredModelFactory)
    version = factory.LazyAttribute(_next_version)
    storage_uri = factory.LazyAttribute(lambda o: f"s3://models/{o.model.name}/v{o.version}")
    model_format = "sklearn"
    format_version = "1"


class ModelAliasFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ModelAlias

    version = factory.SubFactory(ModelVersionFactory)
    model = factory.LazyAttribute(lambda o: o.version.model)
    name = "champion"


class ServingRuntimeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ServingRuntime

    name = factory.Sequence(lambda n: f"custom-runtime-{n}")
    supported_formats = factory.LazyFunction(lambda: [{"name": "custom", "version": "1", "autoSelect": True}])
    protocols = factory.LazyFunction(lambda: ["v1"])
    container_image = "registry.example.com/runtime:1"


class EndpointFactory(factory.django.DjangoModelFactory):
    """An endpoint row with its status row (as endpoint_create leaves it)."""

    class Meta:
        model = Endpoint
        skip_postgeneration_save = True

    model_version = factory.SubFactory(ModelVersionFactory)
    project = factory.LazyAttribute(lambda o: o.model_version.model.project)
    name = factory.Sequence(lambda n: f"endpoint-{n}")

    @factory.post_generation
    def status(self, create, extracted, **kwargs):
        if create:
            EndpointStatus.objects.get_or_create(endpoint=self)


def grant(user, action: str, obj) -> None:
    """Give ``user`` the object permission ``<action>_<model>`` on ``obj`` (a grant without
    the Grant record, which comes with the access issue)."""
    assign_perm(f"endpoints.{action}_{obj._meta.model_name}", user, obj)


def grant_project(user, project, *actions: str) -> None:
    for action in actions or ("view",):
        grant(user, action, project)
