"""Shared pieces of the end-to-end journeys: numbered step screenshots under
test-output/e2e/<journey>/ and a sandbox cluster (fake API server plus the simulated KServe
controller, with no delays) for journeys that watch an endpoint become Ready.

Each journey is one long browser test (``console_page`` from tests/fixtures/browser.py), so
it fails on console errors, uncaught page errors, CSP violations and non-loopback requests.
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import pytest

from endpoints.sandbox.controller import SandboxSettings
from endpoints.sandbox.run import start_sandbox
from tests.fixtures.browser import REPO_ROOT

E2E_OUTPUT = REPO_ROOT / "test-output" / "e2e"


class Journey:
    """Saves one full-page screenshot per step: ``NN-<step>.png`` in the journey's folder."""

    def __init__(self, page, name: str):
        self.page = page
        self.folder = E2E_OUTPUT / name
        # A fresh folder per run, so the screenshots always tell the last run's story.
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.count = 0

    def step(self, name: str) -> Path:
        self.count += 1
        slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
        path = self.folder / f"{self.count:02d}-{slug}.png"
        self.page.screenshot(path=str(path), full_page=True, timeout=30_000)
        return path


@pytest.fixture
def journey(console_page):
    """``journey(name)`` → a Journey writing to test-output/e2e/<name>/."""
    return lambda name: Journey(console_page, name)


class SandboxCluster:
    """The fake API server with the simulated KServe controller running against its store."""

    def __init__(self, server, controller):
        self.server, self.controller = server, controller

    @property
    def url(self) -> str:
        return self.server.url

    def isvc(self, namespace: str, name: str) -> dict | None:
        return self.server.store.get("inferenceservices", namespace, name)

    def wait_for(self, predicate, *, timeout: float = 10.0, message: str = "condition"):
        """Poll (the controller runs in its own thread) until ``predicate()`` is truthy."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.02)
        raise AssertionError(f"timed out waiting for {message}")


@pytest.fixture
def sandbox_cluster():
    server, controller = start_sandbox(settings=SandboxSettings(load_seconds=0.0, ready_seconds=0.0))
    try:
        yield SandboxCluster(server, controller)
    finally:
        controller.stop()
        server.stop()
