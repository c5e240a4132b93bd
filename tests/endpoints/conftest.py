"""Fixtures for reconciler tests: a sandbox cluster (fake API server + simulated KServe
controller with no delays) and a deploy setup pointing at it."""

from __future__ import annotations

import time

import pytest

from endpoints.sandbox.controller import SandboxSettings
from endpoints.sandbox.run import start_sandbox


class Sandbox:
    def __init__(self, server, controller):
        self.server = server
        self.controller = controller
        self.store = server.store

    @property
    def url(self) -> str:
        return self.server.url

    def isvc(self, namespace: str, name: str) -> dict | None:
        return self.store.get("inferenceservices", namespace, name)

    def wait_for(self, predicate, timeout: float = 10.0, message: str = "condition"):
        """Poll (the simulated controller runs in its own thread) until ``predicate()`` is truthy."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.02)
        raise AssertionError(f"timed out waiting for {message}")

    def wait_ready(self, namespace: str, name: str, timeout: float = 10.0) -> dict:
        def ready():
            obj = self.isvc(namespace, name)
            conditions = ((obj or {}).get("status") or {}).get("conditions") or []
            return obj if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions) else None

        return self.wait_for(ready, timeout, f"{namespace}/{name} to be Ready")


@pytest.fixture
def sandbox():
    server, controller = start_sandbox(settings=SandboxSettings())
    try:
        yield Sandbox(server, controller)
    finally:
        controller.stop()
        server.stop()
