"""Real receiver processes and slow HTTP clients for the receiver tests and benchmarks: the
ingest receiver process (``manage.py ingest_receiver``) or gunicorn as ``make run`` starts it,
on a free loopback port, against the test database."""

from __future__ import annotations

import http.client
import os
import select
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def database_url() -> str:
    s = connection.settings_dict
    password = f":{s['PASSWORD']}" if s.get("PASSWORD") else ""
    return f"postgres://{s['USER']}{password}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def process_env(**extra) -> dict:
    env = dict(os.environ)
    env.update({"DATABASE_URL": database_url(), "PYTHONUNBUFFERED": "1", "AUDIT_INGEST_GROUP_COMMIT": "true",
                "DJANGO_SETTINGS_MODULE": "tests.settings", **extra})
    env.pop("PYTEST_CURRENT_TEST", None)
    return env


def wait_listening(port: int, process: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the server exited ({process.returncode}):\n{log.read_text()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"the server did not listen within {timeout} s:\n{log.read_text()}")


def start_receiver(tmp_path: Path, *, threads: int = 4, **env) -> tuple[subprocess.Popen, int]:
    """``manage.py ingest_receiver`` on a free port."""
    port = free_port()
    log = tmp_path / f"receiver-{port}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "ingest_receiver", "--bind", f"127.0.0.1:{port}", "--threads", str(threads)],
            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=process_env(**env))
    wait_listening(port, process, log)
    return process, port


def start_gunicorn(tmp_path: Path, *, workers: int = 1, threads: int = 4, **env) -> tuple[subprocess.Popen, int]:
    """The console's web process as ``make run`` starts it (gthread workers, the project's
    gunicorn settings module), on a free port."""
    port = free_port()
    log = tmp_path / f"gunicorn-{port}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "gunicorn"), "console.wsgi", "-c", "python:console.gunicorn_conf",
             "--bind", f"127.0.0.1:{port}", "--worker-class", "gthread", "--workers", str(workers),
             "--threads", str(threads), "--keep-alive", "30"],
            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=process_env(**env))
    wait_listening(port, process, log)
    return process, port


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@dataclass
class SlowResult:
    status: int | None
    seconds: float
    bytes_sent: int


def slow_body(port: int, path: str, headers: dict, *, declared: int = 100_000, every: float = 0.25,
              give_up: float = 60.0) -> SlowResult:
    """Declare a body of ``declared`` bytes and send one byte every ``every`` seconds until the
    server answers (or ``give_up``): the slow-body client of issue #25."""
    started = time.monotonic()
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=give_up) as sock:
        head = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {declared}"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        while time.monotonic() - started < give_up:
            readable, _, _ = select.select([sock], [], [], every)
            if readable:
                data = sock.recv(65536)
                status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else None
                return SlowResult(status, time.monotonic() - started, sent)
            if sent < declared:
                try:
                    sock.sendall(b"{")
                    sent += 1
                except OSError:  # the server closed the connection without an answer
                    return SlowResult(None, time.monotonic() - started, sent)
    return SlowResult(None, time.monotonic() - started, sent)


def slow_clients(count: int, port: int, path: str, headers: dict, *, until=None,
                 **kwargs) -> tuple[ThreadPoolExecutor, list]:
    """Start ``count`` slow-body clients in threads; returns the pool and their futures (each a
    list of results). With ``until`` (a ``threading.Event``) each client connects again after
    its answer until the event is set, so ``count`` slow connections stay open all along."""

    def client():
        results = [slow_body(port, path, headers, **kwargs)]
        while until is not None and not until.is_set():
            results.append(slow_body(port, path, headers, **kwargs))
        return results

    pool = ThreadPoolExecutor(max_workers=count)
    return pool, [pool.submit(client) for _ in range(count)]


def timed_request(port: int, method: str, path: str, *, body: bytes | None = None, headers: dict | None = None,
                  timeout: float = 30) -> tuple[int, float]:
    """One request on a fresh connection: (status, seconds)."""
    started = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        response.read()
        return response.status, time.monotonic() - started
    finally:
        conn.close()


def http_headers(delivery) -> dict:
    """A test-client delivery's ``HTTP_CE_*`` headers as HTTP header names."""
    headers = {"Content-Type": delivery.content_type}
    for key, value in delivery.headers.items():
        headers["-".join(part.capitalize() for part in key[len("HTTP_"):].split("_"))] = value
    return headers
