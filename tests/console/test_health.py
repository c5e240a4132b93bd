"""Liveness and readiness probes."""

import pytest
from django.db import OperationalError

from console import health
from console.celery import app as celery_app

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _background_alive(db):
    """A worker and beat that just sent their heartbeats (tests/console/test_heartbeats.py
    covers the stale and missing cases)."""
    from console.heartbeats import record

    record(component="worker", name="celery@test")
    record(component="beat", name="test:1")


def test_healthz_answers_without_touching_dependencies(client, monkeypatch):
    monkeypatch.setitem(health.CHECKS, "database", lambda: (_ for _ in ()).throw(OperationalError("down")))
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_is_ok_when_database_and_broker_answer(client):
    response = client.get("/readyz")
    assert response.status_code == 200, response.json()
    assert response.json()["checks"] == {"database": "ok", "broker": "ok", "worker": "ok", "beat": "ok"}


def test_readyz_is_503_naming_the_broker_when_it_is_unreachable(client, monkeypatch):
    # Port 1 on loopback: nothing listens there, the connection is refused at once.
    monkeypatch.setattr(celery_app.conf, "broker_url", "redis://127.0.0.1:1/0")
    monkeypatch.setitem(celery_app.conf, "broker_transport", None)  # SQLite runs name the filesystem one
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["broker"]
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["broker"].startswith("error:")


def test_readyz_is_503_naming_the_database_when_it_fails(client, monkeypatch):
    def broken():
        raise OperationalError("could not connect to server")

    monkeypatch.setitem(health.CHECKS, "database", broken)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["failing"] == ["database"]
    assert "could not connect" in response.json()["checks"]["database"]


def test_probes_are_not_cached(client):
    assert "no-cache" in client.get("/healthz")["Cache-Control"]
    assert "no-cache" in client.get("/readyz")["Cache-Control"]
