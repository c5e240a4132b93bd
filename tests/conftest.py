"""Shared test setup: personas, service availability rules, Celery eager mode, and the
audit-table teardown bypass.

Availability rule: a test needing something absent (PostgreSQL, Redis, the browser, the
KServe reference data in ../shared) is skipped with a visible reason on a developer's
machine and FAILS when CI=true — CI never skips silently.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.db.backends.base.operations import BaseDatabaseOperations

from tests.factories import UserFactory

ROOT = Path(__file__).resolve().parent.parent
SHARED_DIR = Path(os.environ.get("CONSOLE_SHARED_DIR", ROOT.parent / "shared"))

pytest_plugins = [
    f"tests.fixtures.{name}"
    for name in ("kube", "browser", "storage", "emulators", "receivers", "ldap", "oidc", "serving", "gateway")
    if (Path(__file__).parent / "fixtures" / f"{name}.py").exists()
]


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def require(condition: bool, reason: str) -> None:
    """Skip (developer machine) or fail (CI) when a prerequisite is missing."""
    if condition:
        return
    if in_ci():
        pytest.fail(f"required in CI: {reason}", pytrace=False)
    pytest.skip(reason)


def shared_path(*parts: str) -> Path:
    """A file under ../shared (KServe CRDs, runtimes, examples, logger samples)."""
    path = SHARED_DIR.joinpath(*parts)
    require(path.exists(), f"KServe reference data not found at {path} (a user's clone has no ../shared)")
    return path


# --- audit teardown bypass -------------------------------------------------------------------
# Transactional tests (live server, browser) end with a flush of every table. The audit
# tables refuse deletes (audit/db.py), so the flush runs inside the documented teardown
# bypass — the only place besides retention pruning that uses it.
_original_execute_sql_flush = BaseDatabaseOperations.execute_sql_flush


def _execute_sql_flush_with_audit_bypass(self, sql_list):
    from audit.db import TEARDOWN, bypass

    with bypass(TEARDOWN, using=self.connection.alias):
        return _original_execute_sql_flush(self, sql_list)


BaseDatabaseOperations.execute_sql_flush = _execute_sql_flush_with_audit_bypass


# --- markers ---------------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def _service_requirements(request):
    if request.node.get_closest_marker("postgres"):
        require(os.environ.get("DATABASE_URL", "").startswith("postgres"), "needs PostgreSQL: set DATABASE_URL")
    if request.node.get_closest_marker("redis"):
        require(bool(os.environ.get("REDIS_URL")), "needs Redis: set REDIS_URL")


@pytest.fixture(autouse=True)
def _celery_eager(request):
    """Tasks run inline unless a test starts a real worker (marker ``celery_worker``)."""
    if request.node.get_closest_marker("celery_worker"):
        yield
        return
    from console.celery import app

    previous = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager = True
    app.conf.task_eager_propagates = True
    yield
    app.conf.task_always_eager, app.conf.task_eager_propagates = previous


# --- personas --------------------------------------------------------------------------------
PASSWORD = "correct horse battery staple"


@pytest.fixture
def admin_user(db):
    from console.access import roles

    roles.ensure_global_roles()
    return UserFactory(username="admin", is_superuser=True, is_staff=True, roles=[roles.PLATFORM_ADMIN])


@pytest.fixture
def alice(db):
    """A data scientist."""
    return UserFactory(username="alice")


@pytest.fixture
def bob(db):
    """A viewer."""
    return UserFactory(username="bob")


@pytest.fixture
def auditor(db):
    from console.access import roles

    roles.ensure_global_roles()
    return UserFactory(username="carol", roles=[roles.AUDITOR])


@pytest.fixture
def outsider(db):
    return UserFactory(username="mallory")


@pytest.fixture
def service_account(db):
    return UserFactory(username="ci-deployer", is_service_account=True, password=None)
