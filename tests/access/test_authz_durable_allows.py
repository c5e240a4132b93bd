"""Durable allow decisions, from the outside: real authorizer processes (the console's gunicorn,
the lean ext_authz app under gunicorn, the gRPC server), real PostgreSQL, concurrent checks over
real connections, then SIGKILL of the process right after the last allow was answered. Every
answered allow must reach the trail after a drain — none lost, none counted twice — whether each
allow was committed before its answer or written to the process's allow journal (then the
restarted process, as a restarted container would, ships what the killed one left)."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from django.db import connection
from envoy.service.auth.v3 import attribute_context_pb2, external_auth_pb2, external_auth_pb2_grpc

from audit import sealing
from audit.models import AuditEvent
from audit.verify import verify
from console.access import grants, tokens
from console.access.authz import allows
from console.access.models import StagedAllow
from tests.console.access_factories import endpoint_in, project_with_model
from tests.factories import UserFactory

ROOT = Path(__file__).resolve().parents[2]
HOST = "scorer.fraud.example.com"
PREDICT = "/v1/models/scorer:predict"
CHECKS = 240
IN_FLIGHT = 8

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def _database_url() -> str:
    s = connection.settings_dict
    password = f":{s['PASSWORD']}" if s.get("PASSWORD") else ""
    return f"postgres://{s['USER']}{password}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


def _start(args: list[str], port: int, log: Path, **extra: str) -> subprocess.Popen:
    # The product's defaults for the authorizers (the suite turns the group writer and the
    # version poll off for its own process): group commit, asynchronous commits, poll.
    env = dict(os.environ)
    env.update({"DATABASE_URL": _database_url(), "PYTHONUNBUFFERED": "1", "AUTHZ_ALLOW_GROUP_COMMIT": "true",
                "AUTHZ_VERSION_POLL_MS": "100", "AUTHZ_ALLOW_SYNCHRONOUS_COMMIT": "false",
                "DJANGO_SETTINGS_MODULE": "tests.settings", **extra})
    env.pop("PYTEST_CURRENT_TEST", None)
    with open(log, "wb") as out:
        process = subprocess.Popen(args, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=env,  # noqa: S603
                                   start_new_session=True)
    deadline = time.monotonic() + 60
    while not _listening(port):
        if process.poll() is not None or time.monotonic() > deadline:
            _kill(process)
            raise AssertionError(f"{args[:3]} did not start:\n{log.read_text()}")
        time.sleep(0.1)
    return process


def _kill(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@pytest.fixture
def caller_token():
    alice = UserFactory(username="alice")
    fraud, _ = project_with_model("fraud")
    endpoint_in(fraud, "scorer")
    grants.grant_create(actor=None, role="caller", target=fraud, user=alice, reason="durability test")
    _, plaintext = tokens.token_create(actor=alice, user=alice, name="infer", scopes=["infer"])
    return plaintext


def _http_checks(port: int, prefix: str, token: str, calls: int = CHECKS) -> list[int]:
    """``calls`` checks, IN_FLIGHT at a time, each client on its own keep-alive connection."""

    def client(share: int) -> list[int]:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
        statuses = []
        for _ in range(share):
            conn.request("POST", prefix + PREDICT, headers={"Host": HOST, "Authorization": f"Bearer {token}",
                                                            "Content-Length": "0"})
            response = conn.getresponse()
            response.read()
            statuses.append(response.status)
        conn.close()
        return statuses

    with futures.ThreadPoolExecutor(IN_FLIGHT) as pool:
        return [s for part in pool.map(client, [calls // IN_FLIGHT] * IN_FLIGHT) for s in part]


def _grpc_checks(port: int, token: str, calls: int = CHECKS) -> list[int]:
    http_request = attribute_context_pb2.AttributeContext.HttpRequest(
        method="POST", host=HOST, path=PREDICT, protocol="HTTP/1.1",
        headers={":authority": HOST, ":method": "POST", ":path": PREDICT, "authorization": f"Bearer {token}"})
    request = external_auth_pb2.CheckRequest(attributes=attribute_context_pb2.AttributeContext(
        request=attribute_context_pb2.AttributeContext.Request(http=http_request)))
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = external_auth_pb2_grpc.AuthorizationStub(channel)
        codes = []
        for start in range(0, calls, IN_FLIGHT):  # IN_FLIGHT calls multiplexed on one connection
            futures_ = [stub.Check.future(request, timeout=20) for _ in range(min(IN_FLIGHT, calls - start))]
            codes += [call.result().status.code for call in futures_]
        return codes


def _gunicorn(app: str, port: int) -> list[str]:
    return [str(Path(sys.executable).parent / "gunicorn"), app, "-c", "python:console.gunicorn_conf",
            "--bind", f"127.0.0.1:{port}", "--worker-class", "gthread", "--workers", "2", "--threads", "8",
            "--keep-alive", "30"]


def _grpc_server(port: int) -> list[str]:
    return [sys.executable, "-m", "console.access.authz.grpc_server", "--bind", f"127.0.0.1:{port}",
            "--processes", "2"]


def _journal_env(mode: str, tmp_path: Path) -> dict[str, str]:
    return {"AUTHZ_ALLOW_JOURNAL_DIR": str(tmp_path / "journal") if mode == "journal" else ""}


def _recovered_by_a_restart(mode: str, args: list[str], port: int, tmp_path: Path) -> None:
    """Journal mode: the killed processes' journals hold allows not yet shipped; a process
    started on the same directory (the container's restart) ships them within seconds."""
    if mode != "journal":
        return
    assert list((tmp_path / "journal").glob("*.allows")), "the killed processes left no journal"
    restarted = _start(args, port, tmp_path / "restarted.log", **_journal_env(mode, tmp_path))
    try:
        deadline = time.monotonic() + 20
        while StagedAllow.objects.count() < CHECKS and time.monotonic() < deadline:
            time.sleep(0.1)
        while list((tmp_path / "journal").glob("*.allows")) and time.monotonic() < deadline:
            time.sleep(0.1)  # shipped, then removed
        assert not list((tmp_path / "journal").glob("*.allows"))
    finally:
        _kill(restarted)


def _assert_every_answered_allow_is_in_the_trail_once() -> None:
    assert StagedAllow.objects.count() == CHECKS  # durable before each answer, all staged now
    assert allows.allows_drain() == CHECKS
    assert allows.allows_drain() == 0
    events = list(AuditEvent.objects.filter(source="authz", action="infer.allow"))
    assert sum(e.details["count"] for e in events) == CHECKS, "allowed checks lost or counted twice"
    assert len({e.external_id for e in events}) == len(events)
    assert {(e.actor_name, e.target_repr) for e in events} == {("alice", "fraud/scorer")}
    sealing.seal_pending()
    assert verify().ok


@pytest.mark.parametrize("mode", ["commit", "journal"])
@pytest.mark.parametrize("app, prefix", [("console.wsgi", "/authz/check"),
                                         ("console.access.authz.wsgi", "/authz/check")])
def test_allows_answered_over_http_survive_a_sigkill_of_gunicorn(tmp_path, caller_token, app, prefix, mode):
    port = _free_port()
    args = _gunicorn(app, port)
    web = _start(args, port, tmp_path / "web.log", **_journal_env(mode, tmp_path))
    try:
        statuses = _http_checks(port, prefix, caller_token)
        _kill(web)  # right after the last allow was answered: nothing was flushed on the way out
    finally:
        _kill(web)
    assert statuses == [200] * CHECKS
    _recovered_by_a_restart(mode, args, port, tmp_path)
    _assert_every_answered_allow_is_in_the_trail_once()


@pytest.mark.parametrize("synchronous, mode", [("false", "commit"), ("true", "commit"), ("false", "journal")])
def test_allows_answered_over_grpc_survive_a_sigkill_of_the_grpc_server(tmp_path, caller_token, synchronous, mode):
    port = _free_port()
    args = _grpc_server(port)
    server = _start(args, port, tmp_path / "grpc.log", AUTHZ_ALLOW_SYNCHRONOUS_COMMIT=synchronous,
                    **_journal_env(mode, tmp_path))
    try:
        codes = _grpc_checks(port, caller_token)
        _kill(server)
    finally:
        _kill(server)
    assert codes == [0] * CHECKS
    _recovered_by_a_restart(mode, args, port, tmp_path)
    _assert_every_answered_allow_is_in_the_trail_once()


def test_a_killed_grpc_process_journal_is_shipped_by_its_sibling_and_a_clean_stop_leaves_none(tmp_path, caller_token):
    """Journal mode, the gRPC server's 2 processes: one is SIGKILLed right after the answers; the
    supervisor stops the other (SIGTERM), which ships its own journal and the dead sibling's
    on its way out — every allow staged once, no file left."""
    port = _free_port()
    server = _start(_grpc_server(port), port, tmp_path / "grpc.log", **_journal_env("journal", tmp_path))
    try:
        codes = _grpc_checks(port, caller_token)
        children = subprocess.run(["pgrep", "-P", str(server.pid)], capture_output=True, text=True,  # noqa: S607
                                  check=True).stdout.split()
        assert len(children) == 2
        os.kill(int(children[0]), signal.SIGKILL)
        server.wait(timeout=30)  # the supervisor ends the other process and exits
    finally:
        _kill(server)
    assert codes == [0] * CHECKS
    assert not list((tmp_path / "journal").glob("*.allows")), (tmp_path / "grpc.log").read_text()[-3000:]
    _assert_every_answered_allow_is_in_the_trail_once()


def test_a_revocation_reaches_running_authorizer_processes_within_a_second(tmp_path, caller_token):
    """The version poll (AUTHZ_VERSION_POLL_MS) in real processes: warm decisions in the gRPC
    server (2 processes) and the lean app (2 workers) die within a second of a revocation
    committed by another process."""
    grpc_port, http_port = _free_port(), _free_port()
    grpc_server = _start([sys.executable, "-m", "console.access.authz.grpc_server", "--bind",
                          f"127.0.0.1:{grpc_port}", "--processes", "2"], grpc_port, tmp_path / "grpc.log",
                         **_journal_env("journal", tmp_path))
    web = _start([str(Path(sys.executable).parent / "gunicorn"), "console.access.authz.wsgi", "--bind",
                  f"127.0.0.1:{http_port}", "--worker-class", "gthread", "--workers", "2", "--threads", "4"],
                 http_port, tmp_path / "web.log", **_journal_env("journal", tmp_path))
    try:
        assert set(_grpc_checks(grpc_port, caller_token)) == {0}  # warm decisions
        assert set(_http_checks(http_port, "/authz/check", caller_token)) == {200}
        grants.grant_revoke(actor=None, grant=grants_of("alice")[0])
        revoked_at = time.monotonic()
        denied = {"grpc": False, "http": False}
        while time.monotonic() - revoked_at < 1 and not all(denied.values()):
            denied["grpc"] = denied["grpc"] or _grpc_checks(grpc_port, caller_token, calls=IN_FLIGHT) == [7] * IN_FLIGHT
            denied["http"] = denied["http"] or _http_checks(http_port, "/authz/check", caller_token,
                                                            calls=IN_FLIGHT) == [403] * IN_FLIGHT
        assert denied == {"grpc": True, "http": True}, "a warm allow outlived the revocation by a second"
    finally:
        _kill(grpc_server)
        _kill(web)
    allows.allows_drain()


def grants_of(username: str):
    from console.access.models import Grant

    return list(Grant.objects.filter(user__username=username))


@pytest.mark.parametrize("server", ["gunicorn", "grpc"])
def test_a_clean_stop_ships_every_journaled_allow_and_leaves_no_journal(tmp_path, caller_token, server):
    port = _free_port()
    args = _gunicorn("console.access.authz.wsgi", port) if server == "gunicorn" else _grpc_server(port)
    process = _start(args, port, tmp_path / "server.log", AUTHZ_ALLOW_SHIP_MS="600000",  # only the stop ships
                     **_journal_env("journal", tmp_path))
    try:
        if server == "gunicorn":
            assert _http_checks(port, "/authz/check", caller_token) == [200] * CHECKS
        else:
            assert _grpc_checks(port, caller_token) == [0] * CHECKS
        os.killpg(process.pid, signal.SIGTERM)  # as Kubernetes stops a container: every process
        process.wait(timeout=60)
    finally:
        _kill(process)
    assert not list((tmp_path / "journal").glob("*.allows")), (tmp_path / "server.log").read_text()[-3000:]
    _assert_every_answered_allow_is_in_the_trail_once()
