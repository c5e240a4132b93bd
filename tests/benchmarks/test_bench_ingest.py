"""Payload-logger ingest at production volume (docs/performance.md, "Ingest at volume"):

1. the receiver over HTTP on loopback — gunicorn gthread, one event per POST as KServe's agent
   sends them, 8 keep-alive connections from wrk (its own process) — against a bare WSGI app on
   the same gunicorn settings in the same run;
2. end to end: the receiver and one `ingest_worker` process for BENCH_E2E_SECONDS, wrk paced to
   BENCH_E2E_RATE events/s over BENCH_E2E_CONNECTIONS keep-alive connections, the buffer depth
   sampled every 5 s;
3. a pre-filled buffer of BENCH_DRAIN_EVENTS events drained into records, rollups, bins and I/O
   audit events by BENCH_DRAIN_WORKERS `ingest_worker --once` processes (default one per core;
   0: in the benchmark's process).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/<db> make bench PYTEST_ARGS="-k ingest"

The load average is recorded with every figure, never used as a gate.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection
from django.urls import reverse

from audit import buffer
from audit.models import AuditEvent
from monitoring.models import InferenceRecord
from tests.monitoring.helpers import label, monitored_endpoint

ROOT = Path(__file__).resolve().parents[2]
RECEIVER_SECONDS = int(os.environ.get("BENCH_RECEIVER_SECONDS", "20"))
E2E_SECONDS = int(os.environ.get("BENCH_E2E_SECONDS", "120"))
# Events/s offered end to end (2,200 = 1,100 pairs/s; 0: as fast as the receiver answers).
E2E_RATE = float(os.environ.get("BENCH_E2E_RATE", "2200"))
DRAIN_EVENTS = int(os.environ.get("BENCH_DRAIN_EVENTS", "200000"))
DRAIN_PROFILE = os.environ.get("BENCH_DRAIN_PROFILE", "")
# ingest_worker processes draining the pre-filled buffer (one per core by default; 0: this process).
DRAIN_WORKERS = int(os.environ.get("BENCH_DRAIN_WORKERS", str(os.cpu_count() or 1)))
WORKERS = os.environ.get("BENCH_GUNICORN_WORKERS", "2")
THREADS = os.environ.get("BENCH_GUNICORN_THREADS", "4")
RECEIVER_THREADS = os.environ.get("BENCH_RECEIVER_THREADS", "8")
# As many receiver processes as gunicorn workers above (one per core).
RECEIVER_PROCESSES = os.environ.get("BENCH_RECEIVER_PROCESSES", WORKERS)
# The server the end-to-end run posts to: the receiver process (deploy's and make run's) or gunicorn.
E2E_SERVER = os.environ.get("BENCH_E2E_SERVER", "receiver")
# Profile the receiver process's event loop (cProfile output written when it stops).
PROFILE = os.environ.get("BENCH_RECEIVER_PROFILE", "")

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

WRK_SCRIPT = """
local counter = 0
local prefix = ""
function setup(thread)
  thread:set("prefix", tostring(math.random(1, 1000000000)) .. "-" .. tostring(os.time()))
end
function init(args)
  prefix = wrk.thread:get("prefix") or tostring(math.random(1, 1000000000))
end
function request()
  counter = counter + 1
  local n = math.floor((counter + 1) / 2)
  local kind = (counter % 2 == 1) and "request" or "response"
  local headers = {}
  for k, v in pairs(BASE) do headers[k] = v end
  headers["Ce-Id"] = prefix .. "-" .. n
  headers["Ce-Type"] = "org.kubeflow.serving.inference." .. kind
  local body = (kind == "request") and REQUEST or RESPONSE
  return wrk.format("POST", PATH, headers, body)
end
local statuses = {}
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  if status ~= 202 and not shown then
    shown = true
    io.stderr:write("first non-202: " .. status .. " " .. body .. "\\n")
  end
end
"""


def _load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def _database_url() -> str:
    s = connection.settings_dict
    password = f":{s['PASSWORD']}" if s.get("PASSWORD") else ""
    return f"postgres://{s['USER']}{password}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def _env() -> dict:
    env = dict(os.environ)
    env.update({"DATABASE_URL": _database_url(), "PYTHONUNBUFFERED": "1", "DJANGO_SETTINGS_MODULE": "tests.settings",
                "AUDIT_INGEST_GROUP_COMMIT": "true"})
    env.pop("PYTEST_CURRENT_TEST", None)
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Gunicorn:
    def __init__(self, app: str, log: Path):
        self.port = _free_port()
        self.log = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [str(Path(sys.executable).parent / "gunicorn"), app, "--bind", f"127.0.0.1:{self.port}",
             "--worker-class", "gthread", "--workers", WORKERS, "--threads", THREADS, "--keep-alive", "75",
             "--log-level", "warning"],
            cwd=ROOT, env=_env(), stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise AssertionError("gunicorn did not start")
        # Each worker loads Django on its first request (seconds on a loaded machine): warm them
        # all before measuring, over fresh connections (gunicorn spreads them over the workers).
        import http.client

        for _ in range(8 * int(WORKERS)):
            warm = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            warm.request("GET", "/healthz")
            warm.getresponse().read()
            warm.close()

    def stop(self):
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=30)
        self.log.close()


class ReceiverProcess:
    """``manage.py ingest_receiver`` (or, for the floor, the bare aiohttp app) on a free port."""

    def __init__(self, log: Path, *, bare: bool = False):
        self.port = _free_port()
        self.log = open(log, "wb")  # noqa: SIM115 - closed in stop()
        command = ([sys.executable, "-m", "tests.benchmarks.bare_aiohttp", str(self.port)] if bare else
                   [sys.executable, *(["-m", "cProfile", "-o", PROFILE] if PROFILE else []), "manage.py", "ingest_receiver", "--bind", f"127.0.0.1:{self.port}",
                    "--threads", RECEIVER_THREADS, "--processes", RECEIVER_PROCESSES])
        self.process = subprocess.Popen(command, cwd=ROOT, env=_env(), stdout=self.log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.1)
        raise AssertionError("the receiver did not start")

    def stop(self):
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=30)
        self.log.close()


PACING = """
function delay()
  local base = math.floor(DELAY)
  if math.random() < DELAY - base then return base + 1 end
  return base
end
"""


def _wrk(url_path: str, port: int, endpoint, seconds: int, connections: int, tmp_path: Path,
         delay_ms: float | None = None) -> dict:
    """wrk posting logger events as fast as answered, or with ``delay_ms`` (on average: wrk's
    delay is whole milliseconds, so each request waits the floor or the ceiling at random)
    between a connection's answer and its next request."""
    wrk = shutil.which("wrk") or "/usr/bin/wrk"
    base = {"Content-Type": "application/json", "Ce-Specversion": "1.0", "Ce-Source": "http://localhost:9081/",
            "Ce-Time": "2026-11-28T10:00:00.123456Z", "Ce-Inferenceservicename": endpoint.name,
            "Ce-Namespace": endpoint.project.namespace, "Ce-Component": "predictor", "Ce-Endpoint": "",
            "Ce-Metadata": json.dumps({"X-Console-Principal": ["alice"]}),
            "Ce-Annotations": json.dumps({"inference-console.io/model-version": label(endpoint)})}

    def lua(value):
        return "[==[" + value + "]==]"

    script = tmp_path / "logger.lua"
    script.write_text(
        "BASE = {" + ", ".join(f"[ {lua(k)} ] = {lua(v)}" for k, v in base.items()) + "}\n"
        f"PATH = {lua(url_path)}\n"
        f"REQUEST = {lua(json.dumps({'instances': [[5.1, 3.5, 1.4, 0.2]]}))}\n"
        f"RESPONSE = {lua(json.dumps({'predictions': [0]}))}\n" + WRK_SCRIPT
        + (f"DELAY = {delay_ms:.4f}\n" + PACING if delay_ms is not None else ""))
    run = subprocess.run([wrk, "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "10s", "-s", str(script),
                          f"http://127.0.0.1:{port}"], capture_output=True, text=True, timeout=seconds + 60)
    out = run.stdout
    if "first non-202" in run.stderr or "expected" in run.stderr:
        raise AssertionError(f"wrk: {run.stderr[:2000]}")
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)

    def ms(text):
        value, unit = re.match(r"([\d.]+)(\w+)", text).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]

    p99 = ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))
    p50 = ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))
    return {"rate": rate, "requests": total, "non_2xx": int(non2xx.group(1)) if non2xx else 0, "p50_ms": p50,
            "p99_ms": p99}


@pytest.fixture
def endpoint():
    return monitored_endpoint()


def test_receiver_rate_over_keep_alive_connections_vs_a_bare_server(endpoint, report, tmp_path):
    path = reverse("ingest:kserve", kwargs={"ingest_key": endpoint.project.ingest_key})
    report["load_average_before"] = _load()
    bare = Gunicorn("tests.benchmarks.bare_wsgi:application", tmp_path / "bare.log")
    try:
        bare_result = _wrk(path, bare.port, endpoint, RECEIVER_SECONDS, 8, tmp_path)
    finally:
        bare.stop()
    web = Gunicorn("console.wsgi", tmp_path / "web.log")
    try:
        result = _wrk(path, web.port, endpoint, RECEIVER_SECONDS, 8, tmp_path)
    finally:
        web.stop()
    report["gunicorn"] = f"gthread, {WORKERS} workers x {THREADS} threads, keep-alive"
    report["wrk"] = f"wrk -t2 -c8 -d{RECEIVER_SECONDS}s (one CloudEvent per POST)"
    report["receiver_events_per_second"] = result["rate"]
    report["receiver_p50_ms"], report["receiver_p99_ms"] = result["p50_ms"], result["p99_ms"]
    report["receiver_non_2xx"] = result["non_2xx"]
    report["bare_server_requests_per_second"] = bare_result["rate"]
    report["receiver_share_of_bare"] = round(result["rate"] / bare_result["rate"], 3)
    report["buffered_rows"] = buffer.buffer_depth()
    report["load_average_after"] = _load()
    assert result["non_2xx"] == 0
    assert report["buffered_rows"] >= result["requests"]  # wrk does not count the answers in flight at the end


def test_receiver_process_rate_over_keep_alive_connections_vs_a_bare_aiohttp_server(endpoint, report, tmp_path):
    path = reverse("ingest:kserve", kwargs={"ingest_key": endpoint.project.ingest_key})
    report["load_average_before"] = _load()
    bare = ReceiverProcess(tmp_path / "bare.log", bare=True)
    try:
        bare_result = _wrk(path, bare.port, endpoint, RECEIVER_SECONDS, 8, tmp_path)
    finally:
        bare.stop()
    floor = json.loads(subprocess.run(
        [sys.executable, "-m", "tests.benchmarks.commit_floor", _database_url(), "8", str(min(RECEIVER_SECONDS, 10))],
        cwd=ROOT, capture_output=True, text=True, check=True, timeout=120).stdout)
    receiver = ReceiverProcess(tmp_path / "receiver.log")
    try:
        _wrk(path, receiver.port, endpoint, 2, 8, tmp_path)  # warm: connections, key cache, group writer
        warm = buffer.buffer_depth()
        result = _wrk(path, receiver.port, endpoint, RECEIVER_SECONDS, 8, tmp_path)
    finally:
        receiver.stop()
    report["server"] = (f"manage.py ingest_receiver (aiohttp, {RECEIVER_PROCESSES} processes with SO_REUSEPORT, "
                        f"{RECEIVER_THREADS} threads each)")
    report["wrk"] = f"wrk -t2 -c8 -d{RECEIVER_SECONDS}s (one CloudEvent per POST)"
    report["receiver_events_per_second"] = result["rate"]
    report["receiver_p50_ms"], report["receiver_p99_ms"] = result["p50_ms"], result["p99_ms"]
    report["receiver_non_2xx"] = result["non_2xx"]
    report["bare_server_requests_per_second"] = bare_result["rate"]
    report["receiver_share_of_bare"] = round(result["rate"] / bare_result["rate"], 3)
    report["storage_floor_8_committers_per_second"] = floor["commits_per_second"]
    report["receiver_share_of_storage_floor"] = round(result["rate"] / floor["commits_per_second"], 3)
    report["buffered_rows"] = buffer.buffer_depth() - warm
    report["load_average_after"] = _load()
    assert result["non_2xx"] == 0
    assert report["buffered_rows"] >= result["requests"]


def test_end_to_end_receiver_and_one_worker(endpoint, report, tmp_path):
    path = reverse("ingest:kserve", kwargs={"ingest_key": endpoint.project.ingest_key})
    report["load_average_before"] = _load()
    web = (ReceiverProcess(tmp_path / "receiver.log") if E2E_SERVER == "receiver"
           else Gunicorn("console.wsgi", tmp_path / "web.log"))
    report["server"] = E2E_SERVER
    log = open(tmp_path / "worker.log", "wb")  # noqa: SIM115 - closed below
    worker = subprocess.Popen([sys.executable, "manage.py", "ingest_worker"], cwd=ROOT, env=_env(), stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True)
    depths = []
    try:
        import threading

        done = threading.Event()

        def sample():
            while not done.wait(5):
                depths.append(buffer.buffer_depth())
            connection.close()

        connections = int(os.environ.get("BENCH_E2E_CONNECTIONS", "8"))
        delay = None
        if E2E_RATE > 0:
            # Pace the connections to E2E_RATE events/s: a 5 s calibration run at the plain
            # interval measures what each cycle adds (the answer's latency), then the delay is
            # the interval less that.
            interval = connections * 1000 / E2E_RATE
            calibration = _wrk(path, web.port, endpoint, 5, connections, tmp_path, delay_ms=interval)
            added = connections * 1000 / max(1.0, calibration["rate"]) - interval
            delay = max(0.0, interval - added)
            report["calibration_events_per_second"] = calibration["rate"]
            report["delay_ms"] = round(delay, 3)
            while buffer.buffer_depth():
                time.sleep(0.2)
        before = InferenceRecord.objects.filter(endpoint=endpoint).count()
        sampler = threading.Thread(target=sample)
        sampler.start()
        result = _wrk(path, web.port, endpoint, E2E_SECONDS, connections, tmp_path, delay_ms=delay)
        done.set()
        sampler.join()
        drain_start = time.monotonic()
        while buffer.buffer_depth() and time.monotonic() - drain_start < 300:
            time.sleep(0.5)
        catch_up = time.monotonic() - drain_start
    finally:
        web.stop()
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=60)
        log.close()
    pairs = InferenceRecord.objects.filter(endpoint=endpoint).count() - before
    report["seconds"] = E2E_SECONDS
    report["target_events_per_second"] = E2E_RATE or "as fast as answered"
    report["accepted_events"] = result["requests"] - result["non_2xx"]
    report["receiver_events_per_second"] = result["rate"]
    report["pairs_per_second_offered"] = round(result["rate"] / 2, 1)
    report["depth_every_5_s"] = depths
    report["catch_up_seconds_after_load"] = round(catch_up, 1)
    report["records"] = pairs
    report["pairs_per_second_end_to_end"] = round(pairs / (E2E_SECONDS + catch_up), 1)
    report["load_average_after"] = _load()
    assert AuditEvent.objects.filter(source="inference").count() == InferenceRecord.objects.count()


def test_prefilled_buffer_drains_into_records_rollups_bins_and_audit(endpoint, report):
    deliveries = DRAIN_EVENTS
    base = {"specversion": "1.0", "source": "http://localhost:9081/", "time": "2026-11-28T10:00:00.123456Z",
            "inferenceservicename": endpoint.name, "namespace": endpoint.project.namespace,
            "component": "predictor", "endpoint": "", "metadata": json.dumps({"X-Console-Principal": ["alice"]}),
            "annotations": json.dumps({"inference-console.io/model-version": label(endpoint)})}
    request_body = json.dumps({"instances": [[5.1, 3.5, 1.4, 0.2]]}).encode()
    response_body = json.dumps({"predictions": [0]}).encode()
    table = buffer.IngestBufferEntry._meta.db_table
    with connection.cursor() as cursor, cursor.cursor.copy(
            f"COPY {table} (project_id, received_at, content_type, headers, body) FROM STDIN") as copy:
        now = time.strftime("%Y-%m-%d %H:%M:%S+00", time.gmtime())
        for n in range(deliveries // 2):
            for kind, body in (("request", request_body), ("response", response_body)):
                headers = {**base, "id": f"prefill-{n}", "type": f"org.kubeflow.serving.inference.{kind}"}
                copy.write_row((endpoint.project_id, now, "application/json", json.dumps(headers), body))
    assert buffer.buffer_depth() == deliveries
    report["load_average_before"] = _load()
    start = time.perf_counter()
    if DRAIN_PROFILE:  # a cProfile of the drain in this process (slower than without it)
        import cProfile

        profile = cProfile.Profile()
        totals = profile.runcall(buffer.buffer_drain)
        profile.dump_stats(DRAIN_PROFILE)
        report["workers"] = "this process, profiled"
    elif DRAIN_WORKERS == 0:
        totals = buffer.buffer_drain()
        report["workers"] = "this process"
    else:  # `manage.py ingest_worker --once` processes, as deployed (one per core by default)
        workers = [subprocess.Popen([sys.executable, "manage.py", "ingest_worker", "--once"], cwd=ROOT, env=_env(),
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
                   for _ in range(DRAIN_WORKERS)]
        for worker in workers:
            _, errors = worker.communicate(timeout=1800)
            assert worker.returncode == 0, errors.decode()[-2000:]
        totals = {"events": deliveries - buffer.buffer_depth()}
        report["workers"] = f"{DRAIN_WORKERS} ingest_worker processes"
    seconds = time.perf_counter() - start
    report["buffered_events"] = deliveries
    report["drain_seconds"] = round(seconds, 1)
    report["pairs_per_second"] = round(deliveries / 2 / seconds, 1)
    report["events_per_second"] = round(deliveries / seconds, 1)
    report["load_average_after"] = _load()
    assert totals["events"] == deliveries
    assert InferenceRecord.objects.filter(endpoint=endpoint).count() == deliveries // 2
    assert AuditEvent.objects.filter(source="inference").count() == deliveries // 2


# --- Kubernetes audit ingest and verification at trail size -----------------------------------

TRAIL_EVENTS = int(os.environ.get("BENCH_TRAIL_EVENTS", "1000000"))
K8S_BATCHES = int(os.environ.get("BENCH_K8S_BATCHES", "25"))  # EventLists of 400 events


def _k8s_rate(client, token: str, label_: str) -> float:
    from audit.models import IngestBatch
    from tests.audit import samples

    bodies = [samples.event_list([samples.k8s_event(verb=("get", "patch", "list", "update")[i % 4],
                                                    namespace="fraud", name=f"obj-{i % 50}")
                                  for i in range(400)]) for _ in range(K8S_BATCHES)]
    before = AuditEvent.objects.filter(source="kubernetes").count()
    start = time.perf_counter()
    for body in bodies:
        response = client.post(reverse("ingest:kubernetes"), data=body, content_type="application/json",
                               HTTP_AUTHORIZATION=f"Bearer {token}")
        assert response.status_code == 202
    seconds = time.perf_counter() - start
    assert AuditEvent.objects.filter(source="kubernetes").count() - before == 400 * K8S_BATCHES
    assert not IngestBatch.objects.exclude(status="done").exists(), label_
    return round(400 * K8S_BATCHES / seconds, 1)


def _fill_trail(n: int) -> None:
    """n Kubernetes-like events with real digests, written with COPY (the fixture, not the path measured)."""
    from datetime import UTC, datetime, timedelta

    from audit import digests

    columns = ("occurred_at", "received_at", "source", "actor_id", "actor_name", "action", "target_type",
               "target_id", "target_repr", "project_id", "project_name", "outcome", "source_ip", "user_agent",
               "request_id", "details", "external_id", "digest")
    base = datetime(2026, 1, 1, tzinfo=UTC)
    with connection.cursor() as cursor, cursor.cursor.copy(
            f"COPY {AuditEvent._meta.db_table} ({', '.join(columns)}) FROM STDIN") as copy:
        for i in range(n):
            occurred = base + timedelta(milliseconds=i)
            details = {"auditID": f"fill-{i}", "stage": "ResponseComplete", "verb": "get",
                       "requestURI": f"/api/v1/namespaces/fraud/pods/p-{i % 997}", "user": {"username": "system:x"}}
            values = (occurred, "kubernetes", "", "system:x", "k8s.get", "k8s:pods", f"fraud/p-{i % 997}",
                      f"pods fraud/p-{i % 997}", None, "", "success", "10.0.0.1", "kubectl", f"fill-{i}",
                      details, f"fill-{i}:ResponseComplete")
            digest = digests.row_digest(values)
            copy.write_row((occurred, occurred, *values[1:14], json.dumps(details), values[15], digest))


def _settle_gin(table: str) -> None:
    """Empty the pending lists of ``table``'s GIN indexes (the trail's trigram index), so that
    each timed write starts from the same state: a write that happens to fill the 4 MB pending
    list pays for merging it into the index, one that does not pays nothing yet (measured: COPY
    of the same 10,000 rows at 5,000 and at 38,000 rows/s in two runs)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(gin_clean_pending_list(i.indexrelid)) FROM pg_index i "
                       "JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam "
                       "WHERE i.indrelid = %s::regclass AND a.amname = 'gin'", [table])


def test_kubernetes_ingest_stays_flat_as_the_trail_grows_and_near_copy(report, settings):
    from django.test import Client

    from console.access import roles, tokens
    from tests.endpoints.endpoint_factories import ProjectFactory
    from tests.factories import UserFactory

    roles.ensure_global_roles()
    ingester = UserFactory(username="bench-ingester", is_service_account=True, password=None, roles=[roles.INGESTER])
    _, token = tokens.token_create(actor=ingester, user=ingester, name="bench", scopes=["ingest"])
    ProjectFactory(name="fraud", namespace="fraud")
    client = Client()
    report["load_average_before"] = _load()
    report["k8s_events_per_second_empty_trail"] = _k8s_rate(client, token, "empty")
    start = time.perf_counter()
    _fill_trail(TRAIL_EVENTS)
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {AuditEvent._meta.db_table}")
    report["trail_fill_seconds"] = round(time.perf_counter() - start, 1)
    report["trail_events"] = AuditEvent.objects.count()
    _settle_gin(AuditEvent._meta.db_table)
    report["k8s_events_per_second_full_trail"] = _k8s_rate(client, token, "full")
    report["full_vs_empty"] = round(report["k8s_events_per_second_full_trail"]
                                    / report["k8s_events_per_second_empty_trail"], 3)
    # The ceiling: COPY of the same rows into a logged table with the same indexes and as many rows.
    columns = ["occurred_at", "received_at", "source", "actor_id", "actor_name", "action", "target_type",
               "target_id", "target_repr", "project_id", "project_name", "outcome", "source_ip", "user_agent",
               "request_id", "details", "external_id", "digest"]
    rows = list(AuditEvent.objects.filter(source="kubernetes").exclude(external_id__startswith="fill-")
                .values_list(*columns)[:400 * K8S_BATCHES])
    rows = [tuple(json.dumps(v) if isinstance(v, dict) else v for v in row) for row in rows]
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE bench_copy (LIKE audit_auditevent INCLUDING ALL)")
        cursor.execute(f"INSERT INTO bench_copy ({', '.join(columns)}) SELECT {', '.join(columns)} "  # noqa: S608
                       "FROM audit_auditevent WHERE external_id LIKE 'fill-%%'")
        cursor.execute("ANALYZE bench_copy")
        _settle_gin("bench_copy")
        start = time.perf_counter()
        with cursor.cursor.copy(f"COPY bench_copy ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        copy_seconds = time.perf_counter() - start
        cursor.execute("DROP TABLE bench_copy")
    report["copy_rows_per_second_full_table"] = round(len(rows) / copy_seconds, 1)
    report["k8s_share_of_copy"] = round(report["k8s_events_per_second_full_trail"]
                                        / report["copy_rows_per_second_full_table"], 3)
    report["load_average_after"] = _load()


def test_audit_verify_rate_over_a_large_trail(report, settings):
    from django.core.management import call_command

    from audit import sealing

    settings.AUDIT_SEAL_GRACE_SECONDS = 0
    settings.AUDIT_SEAL_MAX_EVENTS = 1000
    _fill_trail(TRAIL_EVENTS)
    start = time.perf_counter()
    sealing.seal_pending()
    report["seal_seconds"] = round(time.perf_counter() - start, 1)
    report["load_average_before"] = _load()
    import io

    out = io.StringIO()
    call_command("audit_verify", "--json", "--no-record", stdout=out)
    summary = json.loads(out.getvalue())
    assert summary["ok"], summary
    report["events"] = summary["events"]
    report["verify_seconds"] = summary["seconds"]
    report["verify_events_per_second"] = summary["events_per_second"]
    report["load_average_after"] = _load()


# --- the trail's pages at size ------------------------------------------------------------------

TRAIL_ENDPOINTS = int(os.environ.get("BENCH_TRAIL_ENDPOINTS", "10000"))


def test_trail_pages_at_size(report, auditor, client):
    from django.test.utils import CaptureQueriesContext

    from endpoints.models import Endpoint
    from tests.endpoints.endpoint_factories import EndpointFactory, ProjectFactory

    project = ProjectFactory(name="fraud", namespace="fraud")
    template = EndpointFactory(project=project, name="scorer")
    fields = [f for f in Endpoint._meta.concrete_fields if not f.primary_key and f.name != "name"]
    Endpoint.objects.bulk_create(
        [Endpoint(name=f"ep-{i}", **{f.attname: getattr(template, f.attname) for f in fields})
         for i in range(TRAIL_ENDPOINTS - 1)], batch_size=2000)
    _fill_trail(TRAIL_EVENTS)
    from audit import services as audit

    audit.record(action="endpoint.update", actor_name="alice", target=template, project=project,
                 details={"reason": "zq-rare-4471"})
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {AuditEvent._meta.db_table}")
    client.force_login(auditor)
    url = reverse("audit:event-list")
    client.get(url)  # warm
    report["events"] = AuditEvent.objects.count()
    report["endpoints"] = Endpoint.objects.count()
    report["load_average_before"] = _load()

    def timed(label_, path, params=None):
        with CaptureQueriesContext(connection) as queries:
            start = time.perf_counter()
            response = client.get(path, params or {})
            ms = round((time.perf_counter() - start) * 1000, 1)
        assert response.status_code == 200, label_
        report[f"{label_}_ms"] = ms
        report[f"{label_}_queries"] = len(queries.captured_queries)
        return response

    first = timed("trail_first_page", url)
    timed("trail_older_page", url, {"cursor": first.context["next_cursor"]})
    timed("trail_endpoint_filter", url, {"endpoint": "fraud/scorer"})
    timed("trail_action_filter", url, {"action": "k8s.get"})
    found = timed("trail_rare_term_search", url, {"q": "zq-rare-4471"})
    assert len(found.context["events"]) == 1
    timed("auditor_home", reverse("home"))
    report["load_average_after"] = _load()
