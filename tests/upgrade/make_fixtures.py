"""How the upgrade fixtures in tests/upgrade/data were made. Kept as a record, not to be re-run.

It only makes sense at the last pre-layering commit, 233a705 ("Callers import the ingest-key
redaction from console.redaction ..."): the fixtures are demo databases *as that commit's
``seed_demo`` made them*, so that later commits can prove they upgrade them in place
(tests/upgrade/test_upgrade_in_place.py). Run at a later commit it would make databases of the
later schema, which prove nothing; it therefore refuses to run when the application code
(console, audit, endpoints, monitoring, manage.py) differs from 233a705.

For each backend it does what ``make run`` (console/devstack.py) does before starting the web
server, with its own state directory and ports:

1. starts the sandbox cluster (``python -m endpoints.sandbox.run``) on a free loopback port,
   so the seed rolls ``fraud-detection/iris`` out and starts its 20 % canary;
2. ``manage.py migrate`` then ``manage.py seed_demo``: personas, service accounts, projects,
   models, endpoints, the team's grants, bob's grant expiring three days later, and the audit
   trail, which the seed seals (``console.demo._seal_trail``: every event sealed, plus one
   recorded verification, sealed too);
3. checks the trail with ``manage.py audit_verify --no-record`` and stops the sandbox;
4. saves the database: the SQLite file (``var/console.sqlite3``, as ``make run`` leaves it) or a
   plain-SQL ``pg_dump --no-owner --no-acl`` of a scratch PostgreSQL database (dropped
   afterwards), gzipped;
5. runs tests/upgrade/snapshot.py at an instant one hour after the seed (bob's expiring grant
   still live) and writes its output to data/expected.json.

Settings come from the environment, as in production, with fixed keys recorded in
expected.json (``environment``): the seals are signed with ``AUDIT_SIGNING_KEY``, so the test
must verify them with the same key. REDIS_URL is left unset (LocMem cache, filesystem broker
under the scratch state directory).

    python tests/upgrade/make_fixtures.py [--only sqlite|postgres]
        [--postgres-server postgres://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = Path(__file__).resolve().parent / "data"
EXPECTED = DATA_DIR / "expected.json"
SNAPSHOT = Path(__file__).resolve().parent / "snapshot.py"
PRE_LAYERING_COMMIT = "233a705"
APPLICATION_PATHS = ("console", "audit", "endpoints", "monitoring", "manage.py")
FILES = {"sqlite": "demo-233a705.sqlite3.gz", "postgres": "demo-233a705.pgdump.sql.gz"}
# The instant the persona answers are computed at, after the seed: bob's grant lasts 3 days.
ANSWERS_AFTER_SEED = timedelta(hours=1)

# Fixed settings of the fixtures (fixtures only: never a deployment's keys). The seals in the
# fixtures are signed with AUDIT_SIGNING_KEY under AUDIT_SIGNING_KEY_ID.
ENVIRONMENT = {
    "DJANGO_SETTINGS_MODULE": "console.settings",
    "DEBUG": "false",
    "CONSOLE_TLS": "false",
    "SECRET_KEY": "upgrade-fixture-secret-key-233a705-not-a-real-secret",
    "AUDIT_SIGNING_KEY_ID": "k1",
    "AUDIT_SIGNING_KEY": "upgrade-fixture-audit-signing-key-233a705",
}
# Variables that would make the run depend on the caller's services or secrets (each may also
# come from <NAME>_FILE, which wins over the plain variable: console/env.py).
CLEARED = ("DATABASE_URL", "REDIS_URL", "CONSOLE_VAR_DIR", "SECRET_KEY", "AUDIT_SIGNING_KEY",
           "AUDIT_SIGNING_KEY_ID", "AUDIT_SIGNING_KEYS", "AUDIT_ARCHIVE_CATALOG_URI", "AUDIT_ARCHIVE_WAREHOUSE",
           "CELERY_TASK_ALWAYS_EAGER", "CONSOLE_TESTING", "DEBUG", "SANDBOX_URL", "SANDBOX_TOKEN_FILE")


def clean_environment(var_dir: Path, database_url: str | None = None) -> dict[str, str]:
    """The caller's environment without the console's settings, plus the fixtures' settings,
    state under ``var_dir`` and (PostgreSQL) ``DATABASE_URL``."""
    env = {name: value for name, value in os.environ.items()
           if name.removesuffix("_FILE") not in CLEARED and name != "PYTEST_CURRENT_TEST"}
    env.update(ENVIRONMENT, CONSOLE_VAR_DIR=str(var_dir), PYTHONUNBUFFERED="1")
    if database_url:
        env["DATABASE_URL"] = database_url
    return env


def manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise SystemExit(f"manage.py {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result.stdout


def seed(env: dict[str, str], var_dir: Path) -> None:
    """``make run``'s set-up: migrate, then seed_demo against a running sandbox cluster."""
    var_dir.mkdir(parents=True, exist_ok=True)
    log = var_dir / "sandbox.log"
    with log.open("w") as stderr:
        sandbox = subprocess.Popen(
            [sys.executable, "-m", "endpoints.sandbox.run", "--port", "0",
             "--kubeconfig-out", str(var_dir / "sandbox.kubeconfig")],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True, start_new_session=True)
    try:
        line = sandbox.stdout.readline()  # "sandbox cluster listening on http://127.0.0.1:<port>"
        if "listening on " not in line:
            raise SystemExit(f"the sandbox cluster did not start:\n{log.read_text()}")
        seed_env = dict(env, SANDBOX_URL=line.rsplit(" ", 1)[1].strip())
        manage(seed_env, "migrate", "--noinput")
        print(manage(seed_env, "seed_demo").rstrip())
        print(manage(seed_env, "audit_verify", "--no-record").rstrip())
    finally:
        os.killpg(sandbox.pid, signal.SIGTERM)
        sandbox.wait(timeout=30)


def answers_instant() -> datetime:
    return datetime.now(UTC).replace(second=0, microsecond=0) + ANSWERS_AFTER_SEED


def snapshot(env: dict[str, str], at: datetime) -> dict:
    result = subprocess.run([sys.executable, str(SNAPSHOT), "--at", at.isoformat()], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=600, check=True)
    return json.loads(result.stdout)


def write_gzip(path: Path, data: bytes) -> None:
    # mtime 0 and no file name in the header: the same input gives the same bytes.
    with path.open("wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as out:
        out.write(data)


def make_sqlite(workdir: Path) -> dict:
    var_dir = workdir / "sqlite-var"
    env = clean_environment(var_dir)
    seed(env, var_dir)
    at = answers_instant()
    expected = snapshot(env, at)
    # make run's database is in WAL mode and Django leaves its connections to the interpreter's
    # exit, so committed pages may still sit in console.sqlite3-wal: fold them into the file
    # (what SQLite does when the last connection closes cleanly) before copying it alone.
    database = var_dir / "console.sqlite3"
    connection = sqlite3.connect(database)
    try:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        connection.close()
    assert not database.with_name("console.sqlite3-wal").exists(), "the WAL was not checkpointed"
    write_gzip(DATA_DIR / FILES["sqlite"], database.read_bytes())
    return expected


def _with_database(server_url: str, name: str) -> str:
    parts = urlsplit(server_url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def make_postgres(workdir: Path, server_url: str) -> dict:
    import psycopg

    name = f"ic_fixture_seed_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        database_url = _with_database(server_url, name)
        var_dir = workdir / "postgres-var"
        env = clean_environment(var_dir, database_url)
        seed(env, var_dir)
        at = answers_instant()
        expected = snapshot(env, at)
        dump = subprocess.run(["pg_dump", "--no-owner", "--no-acl", "--dbname", database_url],
                              capture_output=True, check=True, timeout=600).stdout
        write_gzip(DATA_DIR / FILES["postgres"], dump)
        return expected
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _application_unchanged() -> bool:
    result = subprocess.run(["git", "diff", "--quiet", PRE_LAYERING_COMMIT, "--", *APPLICATION_PATHS], cwd=ROOT)
    return result.returncode == 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Make the upgrade fixtures (at 233a705 only).")
    parser.add_argument("--only", choices=sorted(FILES), help="make one fixture and keep the other's entry")
    parser.add_argument("--postgres-server", default="postgres://postgres@127.0.0.1:5432/postgres",
                        help="a PostgreSQL maintenance database; a scratch database is created beside it")
    args = parser.parse_args(argv)
    if not _application_unchanged():
        raise SystemExit(f"the application code differs from {PRE_LAYERING_COMMIT}: these fixtures must come "
                         "from the pre-layering commit (git worktree add <dir> 233a705, and run it there)")
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    expected = json.loads(EXPECTED.read_text()) if EXPECTED.exists() else {"fixtures": {}}
    expected["made_at_commit"] = PRE_LAYERING_COMMIT
    expected["environment"] = ENVIRONMENT
    with tempfile.TemporaryDirectory(prefix="ic-upgrade-fixtures-") as tmp:
        for kind in [args.only] if args.only else sorted(FILES):
            print(f"==> {kind}", flush=True)
            snap = make_sqlite(Path(tmp)) if kind == "sqlite" else make_postgres(Path(tmp), args.postgres_server)
            expected["fixtures"][kind] = {"file": FILES[kind], **snap}
    EXPECTED.write_text(json.dumps(expected, indent=2, sort_keys=True) + "\n")
    for _kind, entry in sorted(expected["fixtures"].items()):
        size = (DATA_DIR / entry["file"]).stat().st_size
        print(f"{entry['file']}: {size:,} bytes, answers at {entry['at']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
