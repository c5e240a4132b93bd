"""Broker down after a commit (issue #25): the change is saved, so the page and the API answer
success saying it is queued for the periodic pass — never a 500 a client would retry into a
duplicate — and the periodic pass does apply it. The broker is a redis-server this module
starts and kills itself."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse
from prometheus_client import REGISTRY
from rest_framework.test import APIClient

from audit.models import AuditEvent
from console.middleware import QUEUED_NOTICE
from endpoints.models import Endpoint, EndpointStatus, NotificationDelivery
from endpoints.services.endpoints import endpoint_create
from endpoints.services.reconciler import reconcile_all
from tests.endpoints.endpoint_factories import deploy_setup, grant
from tests.fixtures.servers import RedisServer

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.celery_worker]


def reset_broker_pools() -> None:
    """Celery keeps connection and producer pools for the broker it met first: forget them."""
    from console.celery import app

    app._pool = None
    app.amqp._producer_pool = None


@pytest.fixture
def broker(tmp_path):
    """Celery publishes to a redis-server of this test's own (no eager mode, no worker)."""
    from console.celery import app

    server = RedisServer(tmp_path / "redis")
    names = ("broker_url", "broker_transport", "broker_transport_options", "task_always_eager")
    previous = {name: app.conf[name] for name in names}
    app.conf.update(broker_url=server.url, broker_transport=None, task_always_eager=False,
                    broker_transport_options={"visibility_timeout": 3600})
    reset_broker_pools()
    yield server
    server.stop()
    reset_broker_pools()
    app.conf.update(previous)


@pytest.fixture
def live(sandbox, alice):
    setup = deploy_setup(actor=alice, api_url=sandbox.url, project_name="fraud")
    grant(alice, setup.project, "view", "deploy")
    return setup


def _queued(server: RedisServer) -> int:
    import redis

    return redis.Redis(port=server.port).llen("celery")


def _failures(task: str) -> float:
    return REGISTRY.get_sample_value("console_task_enqueue_failures_total", {"task": task}) or 0.0


def test_api_change_with_the_broker_down_is_saved_and_answered_as_queued(broker, live, alice):
    endpoint = endpoint_create(actor=alice, project=live.project, name="scorer", model_version=live.v1,
                               deployment_mode="Knative")
    assert _queued(broker) == 1  # the broker works: the apply task is queued
    api = APIClient()
    api.force_authenticate(alice)
    before = _failures("endpoints.tasks.reconcile_endpoint_task")

    broker.kill()
    response = api.patch(f"/api/v1/endpoints/{endpoint.pk}/", {"max_replicas": 4}, format="json")

    assert response.status_code == 200, response.content
    assert response["Console-Queued"] == "periodic-pass"
    body = response.json()
    assert body["queued"] == QUEUED_NOTICE
    assert (body["generation"], body["max_replicas"]) == (2, 4)
    assert Endpoint.objects.get(pk=endpoint.pk).generation == 2
    assert AuditEvent.objects.filter(action="endpoint.update", target_id=str(endpoint.pk)).count() == 1
    assert _failures("endpoints.tasks.reconcile_endpoint_task") == before + 1

    # Nothing waits for the broker: the periodic pass applies the saved generation.
    reconcile_all()
    assert EndpointStatus.objects.get(pk=endpoint.pk).applied_generation == 2


def test_page_change_with_the_broker_down_says_queued_on_the_next_page(broker, live, alice, client):
    endpoint = endpoint_create(actor=alice, project=live.project, name="scorer", model_version=live.v1,
                               deployment_mode="Knative")
    client.force_login(alice)
    edit = reverse("endpoints:endpoint-edit", kwargs={"project": "fraud", "name": "scorer"})
    data = {"project": live.project.pk, "name": "scorer", "description": "", "model_version": live.v1.pk,
            "protocol": "v1", "runtime": "", "env": "", "args": "", "deployment_mode": "Knative",
            "min_replicas": 1, "max_replicas": 3, "scale_metric": "", "scale_target": "",
            "container_concurrency": "", "timeout_seconds": "", "hardware_profile": "", "accelerator_count": 0,
            "cpu_request": "", "cpu_limit": "", "memory_request": "", "memory_limit": "", "canary_version": "",
            "canary_traffic_percent": "", "logging_mode": "all"}
    plan_url = client.post(edit, data)["Location"]
    generation = re.search(r'name="generation" value="(\d*)"', client.get(plan_url).content.decode()).group(1)

    broker.kill()
    response = client.post(plan_url, {"generation": generation}, follow=True)

    assert response.status_code == 200
    assert QUEUED_NOTICE in response.content.decode()
    assert Endpoint.objects.get(pk=endpoint.pk).generation == 2
    reconcile_all()
    assert EndpointStatus.objects.get(pk=endpoint.pk).applied_generation == 2


def test_with_the_broker_up_nothing_says_queued(broker, live, alice):
    endpoint = endpoint_create(actor=alice, project=live.project, name="scorer", model_version=live.v1,
                               deployment_mode="Knative")
    api = APIClient()
    api.force_authenticate(alice)
    response = api.patch(f"/api/v1/endpoints/{endpoint.pk}/", {"max_replicas": 4}, format="json")
    assert response.status_code == 200
    assert "Console-Queued" not in response and "queued" not in response.json()
    assert _queued(broker) == 2


def test_a_notification_whose_task_was_never_published_is_sent_by_the_sweep(broker, live):
    from datetime import timedelta

    from django.utils import timezone

    from endpoints.models import Notification, NotificationChannel
    from endpoints.services.notifications import LOST_DELIVERY_AFTER, deliveries_requeue_lost, notify

    NotificationChannel.objects.create(name="ops", kind=NotificationChannel.Kind.EMAIL,
                                       target="ops@example.com", all_projects=True)
    broker.kill()
    notify(key="test:lost", event=Notification.Event.RECONCILE_ALERT, subject="s", body="b")
    delivery = NotificationDelivery.objects.get()
    assert delivery.status == NotificationDelivery.Status.PENDING and delivery.attempts == 0

    broker.start()
    assert deliveries_requeue_lost() == 0  # too recent: its task may still be on its way
    later = timezone.now() + LOST_DELIVERY_AFTER + timedelta(seconds=1)
    assert deliveries_requeue_lost(now=later) == 1
    assert _queued(broker) == 1
