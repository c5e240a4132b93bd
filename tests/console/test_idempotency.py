"""Idempotency-Key on API writes: a client's retry never makes the change twice."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from audit.models import AuditEvent
from console.access import tokens
from console.api.idempotency import idempotency_keys_prune
from console.models import IdempotencyKey

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_api(admin_user):
    _, plaintext = tokens.token_create(actor=admin_user, user=admin_user, name="script", scopes=["read", "deploy"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    return client


def _create_team(client, name: str, key: str | None = "retry-1"):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    return client.post("/api/v1/teams/", {"name": name}, format="json", **headers)


def test_a_retry_with_the_same_key_and_body_replays_the_first_answer_and_changes_nothing(admin_api):
    first = _create_team(admin_api, "fraud")
    assert first.status_code == 201 and "Idempotent-Replayed" not in first
    events = AuditEvent.objects.count()

    again = _create_team(admin_api, "fraud")
    assert again.status_code == 201 and again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert Group.objects.filter(name="fraud").count() == 1
    assert AuditEvent.objects.count() == events  # no second change, no second audit event


def test_the_same_key_with_another_body_is_a_422_and_runs_nothing(admin_api):
    assert _create_team(admin_api, "fraud").status_code == 201
    response = _create_team(admin_api, "risk")
    assert response.status_code == 422
    assert "Idempotency-Key" in response.json()["errors"]
    assert not Group.objects.filter(name="risk").exists()


def test_a_duplicate_while_the_first_is_still_answered_is_a_409(admin_api, admin_user):
    # What a concurrent first request leaves while it runs: the claimed key, no answer yet.
    from console.api.idempotency import _fingerprint

    class Pending:
        method, path, META = "POST", "/api/v1/teams/", {"QUERY_STRING": ""}

    IdempotencyKey.objects.create(user=admin_user, key="retry-1", method="POST", path="/api/v1/teams/",
                                  fingerprint=_fingerprint(Pending, b'{"name":"fraud"}'), created_at=timezone.now())
    response = _create_team(admin_api, "fraud")
    assert response.status_code == 409 and "still being answered" in response.json()["detail"]
    assert not Group.objects.filter(name="fraud").exists()


def test_a_first_request_that_never_finished_stops_blocking_its_retry(admin_api, admin_user, settings):
    IdempotencyKey.objects.create(user=admin_user, key="retry-1", method="POST", path="/api/v1/teams/",
                                  fingerprint="x" * 64,
                                  created_at=timezone.now() - timedelta(seconds=settings.IDEMPOTENCY_PENDING_SECONDS + 1))
    assert _create_team(admin_api, "fraud").status_code == 201


def test_keys_belong_to_one_user(admin_api, db):
    from console.access import roles
    from tests.factories import UserFactory

    other_admin = UserFactory(username="admin2", roles=[roles.PLATFORM_ADMIN])
    _, plaintext = tokens.token_create(actor=other_admin, user=other_admin, name="s", scopes=["read", "deploy"])
    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    assert _create_team(admin_api, "fraud").status_code == 201
    response = _create_team(other, "risk")  # same key, another user: a request of its own
    assert response.status_code == 201 and "Idempotent-Replayed" not in response


def test_refusals_a_retry_could_change_are_not_kept(admin_api, alice):
    _, plaintext = tokens.token_create(actor=alice, user=alice, name="s", scopes=["read", "deploy"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    assert _create_team(client, "fraud").status_code == 403  # not an admin
    assert not IdempotencyKey.objects.filter(user=alice).exists()


def test_a_validation_error_is_kept_and_replayed(admin_api):
    first = _create_team(admin_api, "")
    assert first.status_code == 400
    again = _create_team(admin_api, "")
    assert again.status_code == 400 and again["Idempotent-Replayed"] == "true" and again.json() == first.json()


@pytest.mark.parametrize("key", ["", "has space", "x" * 256, "caf\u00e9"])
def test_a_malformed_key_is_a_400_on_the_header(admin_api, key):
    response = admin_api.post("/api/v1/teams/", {"name": "fraud"}, format="json", HTTP_IDEMPOTENCY_KEY=key)
    assert response.status_code == 400 and "Idempotency-Key" in response.json()["errors"]
    assert not Group.objects.filter(name="fraud").exists()


def test_without_the_header_every_request_runs(admin_api):
    assert _create_team(admin_api, "fraud", key=None).status_code == 201
    assert _create_team(admin_api, "fraud", key=None).status_code == 400  # the name is taken: it ran again


def test_expired_keys_are_pruned_and_the_key_can_be_used_again(admin_api, admin_user, settings):
    assert _create_team(admin_api, "fraud").status_code == 201
    later = timezone.now() + timedelta(seconds=settings.IDEMPOTENCY_KEY_TTL_SECONDS + 1)
    assert idempotency_keys_prune(now=timezone.now()) == 0
    assert idempotency_keys_prune(now=later) == 1
    assert not IdempotencyKey.objects.exists()


def test_the_periodic_prune_is_scheduled(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["idempotency-prune"]
    assert entry["task"] == "console.tasks.prune_idempotency_keys_task"
    from console import tasks

    assert tasks.prune_idempotency_keys_task() == 0


def test_the_schema_documents_the_header_and_the_answers(admin_api):
    schema = admin_api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    operation = schema["paths"]["/api/v1/teams/"]["post"]
    assert any(p["name"] == "Idempotency-Key" and p["in"] == "header" for p in operation["parameters"])
    assert {"201", "400", "401", "403", "409", "422", "429"} <= set(operation["responses"])
    assert "Idempotent-Replayed" in operation["responses"]["201"]["headers"]
    assert "Idempotency-Key" not in str(schema["paths"]["/api/v1/teams/"]["get"].get("parameters", []))


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgres
def test_concurrent_duplicates_run_the_change_once(admin_user):
    """Two clients send the same key and body at once (PostgreSQL: real concurrent transactions)."""
    _, plaintext = tokens.token_create(actor=admin_user, user=admin_user, name="s", scopes=["read", "deploy"])
    answers, barrier = [], threading.Barrier(4)

    def send():
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
        barrier.wait()
        try:
            answers.append(_create_team(client, "fraud", key="same").status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=send) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers.count(201) >= 1 and set(answers) <= {201, 409}
    assert Group.objects.filter(name="fraud").count() == 1
