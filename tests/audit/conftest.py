"""Fixtures of the audit tests: a project with an endpoint named like the captured samples'
InferenceService, ingest posting helpers, and an Ingester with a token."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.endpoints.endpoint_factories import EndpointFactory, ProjectFactory


@pytest.fixture
def project(db):
    """Namespace ``default`` and an endpoint ``sklearn-iris``, as in the logger captures."""
    return ProjectFactory(name="iris-team", namespace="default")


@pytest.fixture
def iris_endpoint(project):
    return EndpointFactory(project=project, name="sklearn-iris")


@pytest.fixture(autouse=True)
def _fresh_ingest_caches():
    """The receiver caches keys and the buffer depth per process: start each test without."""
    from audit import buffer

    buffer.reset_caches()
    yield
    buffer.reset_caches()


@pytest.fixture
def post_kserve(client, django_capture_on_commit_callbacks):
    """POST a delivery to a project's logger URL, then let an ingest worker drain the buffer
    (``drain=False`` leaves it waiting)."""
    from audit import buffer

    def post(project, delivery, *, drain=True, **extra):
        url = reverse("ingest:kserve", kwargs={"ingest_key": project.ingest_key})
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(url, data=delivery.body, content_type=delivery.content_type,
                                   **delivery.headers, **extra)
            if drain:
                buffer.buffer_drain()
        return response

    return post


@pytest.fixture
def ingester(db):
    from console.access import roles
    from tests.factories import UserFactory

    roles.ensure_global_roles()
    return UserFactory(username="k8s-audit", is_service_account=True, password=None, roles=[roles.INGESTER])


@pytest.fixture
def ingest_token(ingester):
    from console.access import tokens

    _, plaintext = tokens.token_create(actor=ingester, user=ingester, name="apiserver", scopes=["ingest"])
    return plaintext


@pytest.fixture
def post_k8s(client, django_capture_on_commit_callbacks):
    def post(body: bytes, token: str | None, *, query: str = "", **extra):
        url = reverse("ingest:kubernetes") + query
        headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(url, data=body, content_type="application/json", **headers, **extra)

    return post
