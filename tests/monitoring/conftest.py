"""Monitoring tests: each starts with an empty per-worker reference-profile cache."""

import pytest


@pytest.fixture(autouse=True)
def _fresh_profile_cache():
    from monitoring import services

    services._PROFILE_CACHE.clear()
    yield
    services._PROFILE_CACHE.clear()
