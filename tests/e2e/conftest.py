"""Shared pieces of the end-to-end journeys: numbered step screenshots under
test-output/e2e/<journey>/. Journeys that watch an endpoint become Ready use the ``sandbox``
fixture (tests/fixtures/kube.py: fake API server plus the simulated KServe controller).

Each journey is one long browser test (``console_page`` from tests/fixtures/browser.py), so
it fails on console errors, uncaught page errors, CSP violations and non-loopback requests.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

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
