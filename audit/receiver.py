"""The ingest receiver process: both receivers on an asynchronous HTTP server.

``python manage.py ingest_receiver --bind 127.0.0.1:8002`` serves ``/ingest/kserve/<key>/``,
``/ingest/kubernetes/`` and ``/healthz`` with aiohttp. Why a process of its own rather than the
console's gunicorn workers:

- **Slow clients hold nothing.** A body is read by the event loop, chunk by chunk as it arrives,
  within a deadline and at a minimum rate (``receiving.BodyClock``; 408 otherwise). Only a
  complete body reaches a thread, so fifty clients trickling bodies cost fifty idle sockets,
  while under gunicorn each of them holds a worker thread until its deadline.
- **Keep-alive and concurrency.** KServe's agent keeps its connections open; an event loop keeps
  any number of them at no cost, and aiohttp's HTTP parser is compiled. The database work (a
  cached key, the buffer append through the process's group writer, which shares one commit
  among every request waiting for it) runs in a small thread pool.
- **Nothing of the web stack.** No sessions, CSRF, middleware or URL resolution: a logger has
  none of them.

The decisions (what is refused, with which status) are ``audit.receiving``'s, shared with the
Django views, so both ways of serving answer alike. Access logs are off: the ingest key is in
the path.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

from aiohttp import web
from django.conf import settings
from django.db import connections

from audit import buffer, receiving
from audit.receiving import Answer, BodyClock, BodyTimeout
from console.middleware import client_ip

logger = logging.getLogger(__name__)

POOL = web.AppKey("pool", ThreadPoolExecutor)


def _render(answer: Answer) -> web.Response:
    response = web.json_response(answer.payload, status=answer.status, headers=answer.headers or None)
    if answer.closes:
        response.force_close()
    return response


def _guarded(function, *args, **kwargs):
    """Run receiver work in a pool thread; a failure is a 500 (nothing acknowledged) and the
    thread's database connection is dropped, so the next job opens a fresh one."""
    try:
        return function(*args, **kwargs)
    except Exception:
        logger.exception("ingest receiver failed; nothing was acknowledged")
        for conn in connections.all(initialized_only=True):
            conn.close()
        return receiving.refused(500, "The receiver failed; nothing was stored. Send it again.")


async def _in_thread(request: web.Request, function, *args, **kwargs):
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(request.app[POOL], lambda: _guarded(function, *args, **kwargs))


async def _read_body(request: web.Request, limit: int) -> bytes | Answer:
    length = receiving.declared_length(request.headers.get("Content-Length"), limit)
    if isinstance(length, Answer):
        return length
    clock = BodyClock()
    stream = request.content
    chunks, received = [], 0
    try:
        while received < length:
            chunk = stream.read_nowait(-1)  # what already arrived: most bodies, without waiting
            if not chunk:
                if stream.at_eof():
                    break
                chunk = await asyncio.wait_for(stream.readany(), clock.check(received))
                if not chunk:
                    break
            chunks.append(chunk)
            received += len(chunk)
    except (BodyTimeout, TimeoutError):
        return receiving.too_slow()
    if received != length:
        return receiving.refused(400, "The body is shorter than its Content-Length.")
    return b"".join(chunks)


async def kserve(request: web.Request) -> web.Response:
    return _render(receiving.count("kserve", await _kserve(request)))


async def _kserve(request: web.Request) -> Answer:
    # The hot path runs on the event loop and touches no database: the key's project and the
    # buffer depth from the caches (a thread asks the database when either expired), the shape
    # checked in place, and the row handed to the group writer, whose commit resolves a future.
    key = request.match_info["key"]
    project = buffer.cached_receiver_state(key)
    if project is buffer.MISS:
        project = await _in_thread(request, receiving.kserve_before_body, key,
                                   request.headers.get("Ce-Inferenceservicename", ""))
        if isinstance(project, Answer):
            return project
    body = await _read_body(request, settings.AUDIT_KSERVE_MAX_BODY_BYTES)
    if isinstance(body, Answer):
        return body
    content_type = request.headers.get("Content-Type", "")
    checked = receiving.kserve_check(project, content_type=content_type,
                                     ce_headers=receiving.ce_headers(request.headers.items()), body=body)
    if isinstance(checked, Answer):
        return checked
    events, row_headers = checked
    try:
        entry = await buffer.buffer_append_async(project=project, content_type=content_type, headers=row_headers,
                                                 body=body)
    except Exception:
        logger.exception("ingest buffer append failed; nothing was acknowledged")
        return receiving.refused(500, "The receiver failed; nothing was stored. Send it again.")
    return Answer(202, {"buffered": entry, "events": events})


async def kubernetes(request: web.Request) -> web.Response:
    return _render(receiving.count("kubernetes", await _kubernetes(request)))


async def _kubernetes(request: web.Request) -> Answer:
    user = await _in_thread(request, receiving.kubernetes_before_body, request.headers.get("Authorization"))
    if isinstance(user, Answer):
        return user
    body = await _read_body(request, settings.AUDIT_K8S_MAX_BODY_BYTES)
    if isinstance(body, Answer):
        return body
    peer = SimpleNamespace(META={"REMOTE_ADDR": request.remote or "",
                                 "HTTP_X_FORWARDED_FOR": request.headers.get("X-Forwarded-For", "")})
    return await _in_thread(request, receiving.kubernetes_accept, user, body=body,
                            content_type=request.headers.get("Content-Type", ""),
                            cluster=request.query.get("cluster", ""), source_ip=client_ip(peer))


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the event loop answers (no database: a slow database must not restart it)."""
    return web.json_response({"status": "ok"})


async def _not_allowed(request: web.Request) -> web.Response:
    return web.json_response({"detail": "Method not allowed; POST a delivery."}, status=405,
                             headers={"Allow": "POST"})


def build_app(*, threads: int = 16) -> web.Application:
    app = web.Application(client_max_size=1024)  # bodies are read from the stream, never whole
    app[POOL] = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="ingest-receiver")

    async def _close_pool(app: web.Application) -> None:
        app[POOL].shutdown(wait=True)

    app.on_cleanup.append(_close_pool)
    app.router.add_post(r"/ingest/kserve/{key:[^/]+}/", kserve)
    app.router.add_post("/ingest/kubernetes/", kubernetes)
    app.router.add_route("*", r"/ingest/kserve/{key:[^/]+}/", _not_allowed)
    app.router.add_route("*", "/ingest/kubernetes/", _not_allowed)
    app.router.add_get("/healthz", healthz)
    return app


def serve(*, host: str, port: int, threads: int, reuse_port: bool = False) -> None:
    web.run_app(build_app(threads=threads), host=host, port=port, access_log=None, reuse_port=reuse_port or None,
                print=lambda message: logger.info("%s", message), keepalive_timeout=75)
