"""What the authorization benchmarks share: the database and cache they run on (PostgreSQL and
Redis whenever ``DATABASE_URL``/``REDIS_URL`` — or ``BENCH_DATABASE_URL``/``BENCH_REDIS_URL`` —
are set, SQLite and per-process LocMem otherwise, labelled as such), and the seeded world of
``test_bench_authz`` (10,000 endpoints, 1,000 principals with ``infer`` tokens)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable


def configured_database_url() -> str:
    return os.environ.get("BENCH_DATABASE_URL") or os.environ.get("DATABASE_URL") or ""


def configured_redis_url() -> str:
    return os.environ.get("BENCH_REDIS_URL") or os.environ.get("REDIS_URL") or ""


@contextlib.contextmanager
def bench_database() -> Iterator[str | None]:
    """A fresh PostgreSQL database on the configured server (dropped afterwards), or None for
    SQLite. Never the configured database itself: the benchmark fills it with 10,000 endpoints."""
    url = configured_database_url()
    if not url.startswith(("postgres://", "postgresql://")):
        yield None
        return
    import psycopg

    parts = urlsplit(url)
    name = f"bench_authz_{os.getpid()}"
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}"')
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def labels(database_url: str | None) -> dict:
    return {"database": "postgresql" if database_url else "sqlite",
            "decision_cache": "redis" if configured_redis_url() else "locmem (per process)"}


def seed_world(folder: Path, env: dict) -> list[list[str]]:
    """Migrate and seed (test_bench_authz's world); returns the (authorization, host) pairs."""
    subprocess.run([PYTHON, "manage.py", "migrate", "--no-input", "-v", "0"], cwd=ROOT, env=env, check=True)
    subprocess.run([PYTHON, "-m", "tests.benchmarks.test_bench_authz", "seed", str(folder)], cwd=ROOT,
                   env={**env, "BENCH_SEED_ONLY": "1"}, check=True)
    return json.loads((folder / "pairs.json").read_text())
