"""Liveness and readiness probes.

``/healthz`` says the process answers (no I/O, so a slow database never gets a healthy pod
killed). ``/readyz`` checks the database, the Celery broker and the heartbeats of the worker
and of beat (``console/heartbeats.py``: a worker that runs but consumes nothing is not ready);
any failure answers 503 and names the failing check, with the heartbeats' ages in
``heartbeats``. ``?check=database&check=broker`` limits it to the checks named: the web
pods' readiness probe uses that, because taking every web pod out of service when the worker
is down would only hide the console that says so.
"""

from __future__ import annotations

from pathlib import Path

from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

BROKER_TIMEOUT_SECONDS = 2


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _check_broker() -> None:
    from console.celery import app

    url = app.conf.broker_url or ""
    if url.startswith("filesystem"):
        options = app.conf.broker_transport_options or {}
        for key in ("data_folder_in", "data_folder_out"):
            folder = Path(options[key])
            folder.mkdir(parents=True, exist_ok=True)
            probe = folder / ".readyz"
            probe.write_text("ok")
            probe.unlink()
        return
    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=BROKER_TIMEOUT_SECONDS)


def _heartbeat_check(component: str):
    def check() -> None:
        from console.heartbeats import readings

        reading = readings()[component]
        if not reading.ok:
            raise RuntimeError(reading.text)

    check.__name__ = f"_check_{component}"
    return check


CHECKS = {"database": _check_database, "broker": _check_broker, "worker": _heartbeat_check("worker"),
          "beat": _heartbeat_check("beat")}


@never_cache
@require_GET
def healthz(request):
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def readyz(request):
    selected = request.GET.getlist("check") or list(CHECKS)
    unknown = [name for name in selected if name not in CHECKS]
    if unknown:
        return JsonResponse({"status": "unavailable", "detail": f"unknown check {unknown[0]!r}; known: "
                             f"{', '.join(CHECKS)}"}, status=400)
    results: dict[str, str] = {}
    for name in selected:
        try:
            CHECKS[name]()
        except Exception as exc:  # noqa: BLE001 - any failure makes the pod unready
            results[name] = f"error: {type(exc).__name__}: {exc}"[:300]
        else:
            results[name] = "ok"
    failing = [name for name, result in results.items() if result != "ok"]
    status = 503 if failing else 200
    body = {"status": "unavailable" if failing else "ok", "checks": results}
    if failing:
        body["failing"] = failing
    if {"worker", "beat"} & set(selected) and "database" not in failing:
        body["heartbeats"] = _heartbeat_ages()
    return JsonResponse(body, status=status)


def _heartbeat_ages() -> dict:
    from console.heartbeats import readings

    try:
        return {component: {"age_seconds": None if r.age is None else round(r.age, 1), "limit_seconds": r.limit,
                            "from": r.name, "alive": r.alive_count} for component, r in readings().items()}
    except Exception:  # noqa: BLE001 - already reported by the checks
        return {}
