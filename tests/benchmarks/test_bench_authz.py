"""Inference authorization over HTTP: decisions per second and p50/p99 latency of
``/authz/check`` served by gunicorn (2 sync workers) on loopback and driven by ``wrk``, with
10,000 endpoints and 1,000 principals in the database, warm and cold decision cache; and the
endpoint list of a user with grants on 200 of the 10,000 endpoints (queries and time).

    make bench PYTEST_ARGS="-k authz"

The database is a fresh SQLite file (WAL, as ``make run`` uses) in a temporary folder, or
a fresh database on the PostgreSQL server of ``DATABASE_URL`` (or ``BENCH_DATABASE_URL``) when
set (production keeps connections open, SQLite opens one per request); ``REDIS_URL`` (or
``BENCH_REDIS_URL``) switches the decision cache to Redis.
The database is migrated and seeded by a subprocess (``python -m
tests.benchmarks.test_bench_authz seed <folder>``) with bulk inserts of the same rows the
grant and token services write, then served by gunicorn. Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
ENDPOINTS = int(os.environ.get("BENCH_ENDPOINTS", "10000"))
PRINCIPALS = int(os.environ.get("BENCH_PRINCIPALS", "1000"))
PROJECTS = 20
TEAMS = 50
DIRECT_GRANTS_PER_PRINCIPAL = 5
LISTED_ENDPOINTS = 200
DURATION = os.environ.get("BENCH_DURATION", "10s")
PATH = "/authz/check/v1/models/model:predict"

pytestmark = pytest.mark.slow


def _env(folder: Path, ttl: int | None = None) -> dict:
    env = dict(os.environ)
    env.pop("DATABASE_URL", None)
    # The product's defaults for allows and the version poll (the suite's settings turn the
    # journal, group commit and poll off for its own process, and its children inherit that).
    for name in ("AUTHZ_ALLOW_JOURNAL_DIR", "AUTHZ_ALLOW_GROUP_COMMIT", "AUTHZ_VERSION_POLL_MS"):
        env.pop(name, None)
    env.update({
        "CONSOLE_VAR_DIR": str(folder), "SECRET_KEY": "bench-" + "k" * 40, "CONSOLE_TLS": "0", "DEBUG": "0",
        "AUDIT_SIGNING_KEY": "bench-audit-" + "k" * 40,
        "ALLOWED_HOSTS": "127.0.0.1,localhost,testserver", "LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT), "DJANGO_SETTINGS_MODULE": "console.settings",
    })
    if os.environ.get("BENCH_DATABASE_URL"):
        env["DATABASE_URL"] = os.environ["BENCH_DATABASE_URL"]
    env.pop("REDIS_URL", None)
    if os.environ.get("BENCH_REDIS_URL"):  # shared decision cache (and broker)
        env["REDIS_URL"] = os.environ["BENCH_REDIS_URL"]
    if ttl is not None:
        env["AUTHZ_DECISION_TTL"] = str(ttl)
    return env


# --- seeding (runs in a subprocess with the benchmark database) --------------------------------------------

def seed(folder: Path) -> None:
    import django

    django.setup()
    from django.contrib.auth.models import Group, Permission
    from django.core.management import call_command
    from django.db import connection, transaction
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from console.access import tokens
    from console.access.models import ApiToken, Grant
    from console.models import User
    from endpoints.models import (
        Cluster,
        Endpoint,
        EndpointGroupObjectPermission,
        EndpointStatus,
        EndpointUserObjectPermission,
        ModelVersion,
        Project,
        ProjectGroupObjectPermission,
        RegisteredModel,
    )

    rng = __import__("random").Random(7)
    perms = {p.codename: p for p in Permission.objects.filter(content_type__app_label="endpoints")}
    with transaction.atomic():
        cluster = Cluster.objects.create(name="bench", ingress_domain="example.com", api_url="http://127.0.0.1:9",
                                         connection=Cluster.Connection.URL)
        endpoints: list[Endpoint] = []
        per_project = ENDPOINTS // PROJECTS
        projects = []
        for p in range(PROJECTS):
            project = Project.objects.create(name=f"bench-{p:02d}", namespace=f"bench-{p:02d}", cluster=cluster)
            projects.append(project)
            model = RegisteredModel.objects.create(project=project, name="model")
            version = ModelVersion.objects.create(model=model, version=1, storage_uri="s3://m/1", model_format="sklearn")
            endpoints += Endpoint.objects.bulk_create(
                [Endpoint(project=project, name=f"ep-{i:04d}", model_version=version) for i in range(per_project)])
        EndpointStatus.objects.bulk_create([
            EndpointStatus(endpoint=e, phase="Ready", ready=True,
                           url=f"http://{e.name}.{projects[i // per_project].namespace}.example.com")
            for i, e in enumerate(endpoints)])
        users = User.objects.bulk_create([
            User(username=f"sa-{u:04d}", is_service_account=True, password="!") for u in range(PRINCIPALS)])
        plaintexts = {}
        rows = []
        for user in users:
            prefix = "".join(rng.choice(tokens._PREFIX_ALPHABET) for _ in range(tokens.PREFIX_LENGTH))
            plaintext = f"{tokens.TOKEN_MARK}{prefix}_{secrets.token_urlsafe(32)}"
            plaintexts[user.pk] = plaintext
            rows.append(ApiToken(user=user, name="bench", prefix=prefix, secret_hash=tokens.hash_token(plaintext),
                                 scopes=["infer"]))
        ApiToken.objects.bulk_create(rows)
        teams = [Group.objects.create(name=f"team-{t:02d}") for t in range(TEAMS)]
        User.groups.through.objects.bulk_create([
            User.groups.through(user_id=user.pk, group_id=teams[i % TEAMS].pk) for i, user in enumerate(users)])
        grants, group_rows, user_rows = [], [], []
        team_projects = {}
        for t, team in enumerate(teams):
            team_projects[team.pk] = [projects[t % PROJECTS], projects[(t + 7) % PROJECTS]]
            for project in team_projects[team.pk]:
                grants.append(Grant(group=team, role="caller", project=project, reason="bench"))
                group_rows += [ProjectGroupObjectPermission(group=team, content_object=project, permission=perms[c])
                               for c in ("view_project", "infer_project")]
        pairs = []
        namespaces = {project.pk: project.namespace for project in projects}
        for i, user in enumerate(users):
            chosen = rng.sample(endpoints, DIRECT_GRANTS_PER_PRINCIPAL)
            for endpoint in chosen:
                grants.append(Grant(user=user, role="caller", endpoint=endpoint, reason="bench"))
                user_rows += [EndpointUserObjectPermission(user=user, content_object=endpoint, permission=perms[c])
                              for c in ("view_endpoint", "infer_endpoint")]
            via_team = team_projects[teams[i % TEAMS].pk][0]
            team_endpoint = endpoints[projects.index(via_team) * per_project + rng.randrange(per_project)]
            # One check per principal: half through a direct endpoint grant, half through the
            # team's project grant.
            endpoint = chosen[0] if i % 2 else team_endpoint
            pairs.append([f"Bearer {plaintexts[user.pk]}",
                          f"{endpoint.name}.{namespaces[endpoint.project_id]}.example.com"])
        # The endpoint-list user: 200 endpoints, half directly, half through a team.
        lister = User.objects.create(username="lister")
        listed = rng.sample(endpoints, LISTED_ENDPOINTS)
        listers = Group.objects.create(name="listers")
        lister.groups.add(listers)
        for n, endpoint in enumerate(listed):
            if n % 2:
                grants.append(Grant(user=lister, role="viewer", endpoint=endpoint, reason="bench"))
                user_rows.append(EndpointUserObjectPermission(user=lister, content_object=endpoint,
                                                              permission=perms["view_endpoint"]))
            else:
                grants.append(Grant(group=listers, role="viewer", endpoint=endpoint, reason="bench"))
                group_rows.append(EndpointGroupObjectPermission(group=listers, content_object=endpoint,
                                                                permission=perms["view_endpoint"]))
        Grant.objects.bulk_create(grants, batch_size=2000)
        ProjectGroupObjectPermission.objects.bulk_create([r for r in group_rows
                                                          if isinstance(r, ProjectGroupObjectPermission)])
        EndpointGroupObjectPermission.objects.bulk_create([r for r in group_rows
                                                           if isinstance(r, EndpointGroupObjectPermission)])
        EndpointUserObjectPermission.objects.bulk_create(user_rows, batch_size=2000)
    (folder / "pairs.json").write_text(json.dumps(pairs))
    if os.environ.get("BENCH_SEED_ONLY"):  # the protocol benchmarks need only the world
        return

    figures = {"grants": Grant.objects.count(), "permission_rows": len(user_rows) + len(group_rows)}
    # DEBUG=0 serves pages through the hashed-name manifest, as production does: build it in the
    # benchmark's own var dir (STATIC_ROOT) before timing the page.
    call_command("collectstatic", interactive=False, verbosity=0)
    client = Client()
    client.force_login(lister)
    for label, url in (("api", "/api/v1/endpoints/"), ("ui", "/endpoints/")):
        client.get(url)  # warm the process (templates, permissions cache)
        times, sql_times = [], []
        for _ in range(20):
            with CaptureQueriesContext(connection) as queries:
                start = time.perf_counter()
                response = client.get(url)
                times.append((time.perf_counter() - start) * 1000)
            sql_times.append(sum(float(q["time"]) for q in queries.captured_queries) * 1000)
            assert response.status_code == 200, (url, response.status_code)
        figures[f"list_{label}_sql_median_ms"] = round(statistics.median(sql_times), 1)
        if label == "api":
            assert response.json()["count"] == LISTED_ENDPOINTS
        figures[f"list_{label}_queries"] = len(queries)
        figures[f"list_{label}_median_ms"] = round(statistics.median(times), 1)
        figures[f"list_{label}_p90_ms"] = round(sorted(times)[int(len(times) * 0.9) - 1], 1)
    figures.update(_decision_costs(pairs))
    (folder / "list.json").write_text(json.dumps(figures))


def _decision_costs(pairs) -> dict:
    """The decision alone, in process (no HTTP, no gunicorn): what Envoy's check adds on top
    of a round trip to any Django view."""
    from django.core.cache import caches
    from django.db import connection

    from console.access.authz import decision as authz_decision

    def run() -> tuple[list[float], int]:
        times, executed = [], []

        def count(execute, sql, params, many, context):
            executed.append(sql)
            return execute(sql, params, many, context)

        with connection.execute_wrapper(count):
            for auth, host in pairs:
                start = time.perf_counter()
                decision = authz_decision.decide(host=host, path="/v1/models/model:predict", authorization=auth)
                times.append((time.perf_counter() - start) * 1000)
                assert decision.status == 200, decision
        return sorted(times), len(executed)

    caches["authz"].clear()
    run()  # first use of each token records last_used_at (a write per token and minute)
    caches["authz"].clear()
    cold, cold_queries = run()
    warm, warm_queries = run()
    pct = lambda values, q: round(values[min(len(values) - 1, int(len(values) * q))], 3)  # noqa: E731
    return {"decision_cold_p50_ms": pct(cold, 0.5), "decision_cold_p99_ms": pct(cold, 0.99),
            "decision_cold_queries_each": round(cold_queries / len(pairs), 1),
            "decision_warm_p50_ms": pct(warm, 0.5), "decision_warm_p99_ms": pct(warm, 0.99),
            "decision_warm_queries_each": round(warm_queries / len(pairs), 1)}


# --- the HTTP benchmark ---------------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_ready(port: int, timeout: float = 30) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):  # noqa: S310 - loopback
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("gunicorn did not become ready")


def _lua(folder: Path, pairs: list) -> Path:
    entries = ",\n".join(f'{{"{auth}", "{host}"}}' for auth, host in pairs)
    script = folder / "authz.lua"
    script.write_text(f"""
local checks = {{
{entries}
}}
local i = 0
request = function()
  i = (i % #checks) + 1
  local c = checks[i]
  return wrk.format("POST", "{PATH}", {{["Host"] = c[2], ["Authorization"] = c[1], ["Content-Length"] = "0", ["Connection"] = "close"}})
end
""")
    return script


def _wrk(port: int, script: Path | None, connections: int, duration: str = DURATION, path: str = PATH) -> dict:
    # gunicorn's sync workers close every connection: say so, or wrk waits on keep-alive.
    options = ["-s", str(script)] if script is not None else ["-H", "Connection: close"]
    out = subprocess.run(
        ["wrk", "-t", "2", "-c", str(connections), "-d", duration, "--latency", *options,
         f"http://127.0.0.1:{port}{path}"], capture_output=True, text=True, check=True).stdout

    def ms(label: str) -> float:
        value, unit = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
        return round(float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit], 3)

    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": round(float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))),
            "p50_ms": ms("50%"), "p90_ms": ms("90%"), "p99_ms": ms("99%"),
            "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
            "errors": re.search(r"Socket errors:.*", out).group(0) if "Socket errors" in out else ""}


def _warm_up(port: int, script: Path, rounds: int = 12) -> list[int]:
    """Until both workers hold every decision: rounds of 5 s until throughput stops rising."""
    seen: list[int] = []
    for _ in range(rounds):
        seen.append(_wrk(port, script, 2, duration="5s")["rps"])
        if len(seen) >= 3 and seen[-1] <= 1.05 * max(seen[:-1]):
            break
    return seen


def _serve(folder: Path, ttl: int):
    port = _free_port()
    process = subprocess.Popen(
        [PYTHON, "-m", "gunicorn", "console.wsgi", "--workers", "2", "--bind", f"127.0.0.1:{port}",
         "--log-level", "warning"], cwd=ROOT, env=_env(folder, ttl), start_new_session=True)
    _wait_ready(port)
    return process, port


def _stop(process) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:  # pragma: no cover
        process.kill()


def test_authz_decisions_over_http_and_endpoint_list(report, monkeypatch):
    if shutil.which("wrk") is None:
        from tests.conftest import require

        require(False, "the authz benchmark needs wrk (apt-get install wrk)")
    from tests.benchmarks.authz_world import bench_database, configured_redis_url

    folder = Path(tempfile.mkdtemp(prefix="bench-authz-"))
    database = contextlib.ExitStack()
    url = database.enter_context(bench_database())
    # PostgreSQL and Redis whenever DATABASE_URL/REDIS_URL are set (a database of its own on
    # that server), SQLite and LocMem otherwise; labelled by what was used.
    monkeypatch.delenv("BENCH_DATABASE_URL", raising=False)
    if url:
        monkeypatch.setenv("BENCH_DATABASE_URL", url)
    if configured_redis_url():
        monkeypatch.setenv("BENCH_REDIS_URL", configured_redis_url())
    try:
        start = time.perf_counter()
        subprocess.run([PYTHON, "manage.py", "migrate", "--no-input", "-v", "0"], cwd=ROOT, env=_env(folder),
                       check=True)
        subprocess.run([PYTHON, "-m", "tests.benchmarks.test_bench_authz", "seed", str(folder)], cwd=ROOT,
                       env=_env(folder, ttl=300), check=True)
        report["setup_seconds"] = round(time.perf_counter() - start, 1)
        report["endpoints"], report["principals"] = ENDPOINTS, PRINCIPALS
        report["database"] = "postgresql" if os.environ.get("BENCH_DATABASE_URL") else "sqlite"
        report["decision_cache"] = "redis" if os.environ.get("BENCH_REDIS_URL") else "locmem (per worker)"
        report.update(json.loads((folder / "list.json").read_text()))
        pairs = json.loads((folder / "pairs.json").read_text())
        report["distinct_checks"] = len(pairs)
        script = _lua(folder, pairs)
        report["load_average_before"] = [round(x, 2) for x in os.getloadavg()]
        for label, ttl in (("warm", 300), ("cold", 0)):
            process, port = _serve(folder, ttl)
            try:
                if not ttl:
                    # The floor: a request that does nothing (no database), same server, same client.
                    report["baseline_healthz_c2"] = _wrk(port, None, 2, path="/healthz")
                if ttl:
                    report["warmup_rps"] = _warm_up(port, script)
                for connections in (2, 16):
                    result = _wrk(port, script, connections)
                    assert result["non_2xx"] == 0, result  # every check is an allowed caller
                    report[f"{label}_c{connections}"] = result
            finally:
                _stop(process)
        report["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    finally:
        database.close()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == "seed":
    seed(Path(sys.argv[2]))
