"""Small builders for the access-control tests (rows only: no reconcile side effects)."""

from __future__ import annotations

from tests.endpoints.endpoint_factories import (
    ClusterFactory,
    EndpointFactory,
    ModelVersionFactory,
    ProjectFactory,
    RegisteredModelFactory,
)


def project_with_model(name: str = "fraud"):
    cluster = ClusterFactory(name=f"c-{name}", ingress_domain="example.com")
    project = ProjectFactory(name=name, namespace=name, cluster=cluster)
    return project, RegisteredModelFactory(project=project, name=f"{name}-model")


def endpoint_in(project, name: str, *, url: str | None = None, address_url: str = ""):
    """An endpoint of ``project`` whose observed status URL is KServe's Knative form."""
    model = RegisteredModelFactory(project=project, name=f"{name}-m")
    version = ModelVersionFactory(model=model, version=1)
    domain = project.cluster.ingress_domain
    status = {"url": url if url is not None else f"http://{name}.{project.namespace}.{domain}",
              "address_url": address_url, "phase": "Ready"}
    return EndpointFactory(project=project, name=name, model_version=version, status=status)
