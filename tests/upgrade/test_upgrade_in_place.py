"""Upgrade in place: demo databases made by the last pre-layering commit (233a705) migrate
forward; afterwards every table keeps its row count, every persona gets the same answers from
the permission layer, and the migrated audit trail still verifies against its seals.

The fixtures in data/ are ``seed_demo``'s real output at 233a705 (tests/upgrade/make_fixtures.py
records how they were made): the SQLite file ``make run`` leaves in var/ and a plain-SQL
PostgreSQL dump, with data/expected.json holding tests/upgrade/snapshot.py's output for each,
taken at 233a705 at a recorded instant. Each case restores its fixture somewhere fresh, then in
subprocesses (this checkout's code, as an operator would run it): ``manage.py migrate``, the
snapshot at the recorded instant, and ``manage.py audit_verify``.

Models that moved app keep their rows under a new label (``RENAMED_MODELS``); a label is only
mapped when the old one no longer exists, so the test passes before the move too. Models new
since 233a705 have no expectation. The seals were signed with the fixtures' key, recorded in
expected.json with the rest of the environment the commands need; nothing here uses Redis,
the network or ../shared. Content types and permissions grow by what the new models bring.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.conftest import require

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parent / "data"
SNAPSHOT = Path(__file__).resolve().parent / "snapshot.py"
EXPECTED = json.loads((DATA / "expected.json").read_text())

# Models that left the console app in the layering (old label -> new label).
RENAMED_MODELS = {
    "console.Grant": "access.Grant",
    "console.ApiToken": "access.ApiToken",
    "console.AccessVersion": "access.AccessVersion",
}

# Settings that would tie the run to the caller's database, cache, state directory or keys;
# each may also come from <NAME>_FILE (console/env.py), which is cleared too.
CLEARED = ("DATABASE_URL", "REDIS_URL", "CONSOLE_VAR_DIR", "SECRET_KEY", "AUDIT_SIGNING_KEY",
           "AUDIT_SIGNING_KEY_ID", "AUDIT_SIGNING_KEYS", "AUDIT_ARCHIVE_CATALOG_URI", "AUDIT_ARCHIVE_WAREHOUSE",
           "CELERY_TASK_ALWAYS_EAGER", "CONSOLE_TESTING", "DEBUG", "PYTEST_CURRENT_TEST")
SUBPROCESS_TIMEOUT = 600

pytestmark = pytest.mark.slow


def fixture_environment(var_dir: Path, database_url: str | None = None) -> dict[str, str]:
    """The environment of the upgrade commands: the fixtures' settings (signing key included),
    state under ``var_dir`` and, for PostgreSQL, ``DATABASE_URL``; without it the settings use
    ``var_dir/console.sqlite3``, the file ``make run`` uses."""
    env = {name: value for name, value in os.environ.items() if name.removesuffix("_FILE") not in CLEARED}
    env.update(EXPECTED["environment"], CONSOLE_VAR_DIR=str(var_dir))
    if database_url:
        env["DATABASE_URL"] = database_url
    return env


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=SUBPROCESS_TIMEOUT)
    assert result.returncode == 0, (
        f"{' '.join(args)} exited with {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}")
    return result


# --- comparison -----------------------------------------------------------------------------

# Rows every new model adds by itself: its content type and Django's four default permissions.
def rows_per_new_model(table: str, model_label: str) -> int:
    """What one model new since the fixture adds to a bookkeeping table: a content type, and its
    default permissions (four, unless its Meta names fewer)."""
    if table == "contenttypes.ContentType":
        return 1
    if table == "auth.Permission":
        from django.apps import apps

        return len(apps.get_model(model_label)._meta.default_permissions)
    return 0


def count_differences(expected: dict[str, int], actual: dict[str, int]) -> list[str]:
    """One line per model whose row count changed or which disappeared (content types and
    permissions may grow by exactly what the models new since the fixture bring)."""
    known = {RENAMED_MODELS.get(label, label) for label in expected} | set(expected)
    new_models = [label for label in actual if label not in known]
    lines = []
    for label, before in sorted(expected.items()):
        now = label if label in actual else RENAMED_MODELS.get(label, label)
        shown = label if now == label else f"{label} (now {now})"
        wanted = before + sum(rows_per_new_model(label, model) for model in new_models)
        if now not in actual:
            lines.append(f"  {shown}: {before} rows before, no such model after migrating")
        elif actual[now] != wanted:
            lines.append(f"  {shown}: {before} rows before, {actual[now]} after"
                         + (f" (expected {wanted} with new models {', '.join(new_models)})" if new_models else ""))
    return lines


def _flatten(value, path: tuple[str, ...] = ()) -> dict[tuple[str, ...], object]:
    if isinstance(value, dict):
        flat = {}
        for key, item in value.items():
            flat.update(_flatten(item, (*path, key)))
        return flat
    return {path: value}


def answer_differences(expected: dict, actual: dict) -> list[str]:
    """One line per persona answer that changed: the user, the question, what was added or lost."""
    before, after = _flatten(expected), _flatten(actual)
    lines = []
    for path in sorted(before.keys() | after.keys()):
        where = " > ".join(path)
        if path not in after:
            lines.append(f"  {where}: missing after migrating (was {before[path]!r})")
        elif path not in before:
            lines.append(f"  {where}: new after migrating ({after[path]!r})")
        elif before[path] != after[path]:
            if isinstance(before[path], list) and isinstance(after[path], list):
                lost = sorted(set(before[path]) - set(after[path]))
                gained = sorted(set(after[path]) - set(before[path]))
                lines.append(f"  {where}: lost {lost}, gained {gained}")
            else:
                lines.append(f"  {where}: {before[path]!r} before, {after[path]!r} after")
    return lines


def upgrade_and_compare(kind: str, env: dict[str, str]) -> None:
    """Migrate the restored fixture, then compare its snapshot with expected.json and verify
    the audit trail (audit_verify records the verification, as an operator's run does)."""
    expected = EXPECTED["fixtures"][kind]
    run(["manage.py", "migrate", "--noinput"], env)
    snapshot = json.loads(run([str(SNAPSHOT), "--at", expected["at"]], env).stdout)

    problems = []
    if differences := count_differences(expected["counts"], snapshot["counts"]):
        problems += ["Row counts differ from the pre-layering database:", *differences]
    if differences := answer_differences(expected["personas"], snapshot["personas"]):
        problems += [f"Persona answers at {expected['at']} differ from the pre-layering database:", *differences]
    assert not problems, "\n".join(problems)

    verified = run(["manage.py", "audit_verify"], env)
    assert "OK: the audit trail verifies." in verified.stdout


def gunzip_to(source: Path, target: Path) -> None:
    with gzip.open(source, "rb") as packed, target.open("wb") as out:
        shutil.copyfileobj(packed, out)


# --- the cases ------------------------------------------------------------------------------

def test_sqlite_demo_database_upgrades_in_place(tmp_path):
    var_dir = tmp_path / "var"
    var_dir.mkdir()
    gunzip_to(DATA / EXPECTED["fixtures"]["sqlite"]["file"], var_dir / "console.sqlite3")
    upgrade_and_compare("sqlite", fixture_environment(var_dir))


def _with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def _libpq(url: str) -> str:
    """``url`` for psql and psycopg: libpq only knows the postgres:// and postgresql:// schemes,
    Django's DATABASE_URL has more spellings (pgsql://, postgis://)."""
    return urlunsplit(urlsplit(url)._replace(scheme="postgresql"))


@pytest.fixture
def scratch_postgres_url():
    """A new, uniquely named database on DATABASE_URL's server, dropped afterwards (even when
    the test fails or is interrupted half-way through loading)."""
    import psycopg

    server = os.environ["DATABASE_URL"]
    name = f"ic_upgrade_{uuid.uuid4().hex[:12]}"
    maintenance = _libpq(_with_database(server, "postgres"))
    with psycopg.connect(maintenance, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _with_database(server, name)
    finally:
        with psycopg.connect(maintenance, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.postgres
def test_postgres_demo_dump_upgrades_in_place(tmp_path, scratch_postgres_url):
    require(shutil.which("psql") is not None, "needs psql (PostgreSQL's client) to load the dump")
    dump = gzip.decompress((DATA / EXPECTED["fixtures"]["postgres"]["file"]).read_bytes())
    loaded = subprocess.run(
        ["psql", "-X", "--quiet", "-v", "ON_ERROR_STOP=1", "--dbname", _libpq(scratch_postgres_url)],
        input=dump, capture_output=True, timeout=SUBPROCESS_TIMEOUT)
    assert loaded.returncode == 0, f"psql could not load the dump:\n{loaded.stderr.decode(errors='replace')}"
    upgrade_and_compare("postgres", fixture_environment(tmp_path / "var", scratch_postgres_url))
