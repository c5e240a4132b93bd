"""The permission matrix: every URL pattern of the URL conf has an expected status per
persona (tests/*/permission_table.py), and every row is checked.

A route found in the URL conf but missing from the tables fails ``test_every_route_has_a_row``
(it prints rows to start from), so a new page or API route cannot ship without deciding who may
use it. IDOR rows swap in another project's ids: everyone but the admin gets 404.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest
from django.conf import settings
from django.db import transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from tests.console.matrix_world import build_world
from tests.console.permission_table import PERSONAS, Req

TESTS_DIR = Path(__file__).resolve().parent.parent


def _table_modules():
    modules = []
    for path in sorted(TESTS_DIR.glob("*/permission_table.py")):
        modules.append(importlib.import_module(f"tests.{path.parent.name}.permission_table"))
    return modules


def merged_routes() -> dict[str, list[Req]]:
    routes: dict[str, list[Req]] = {}
    for module in _table_modules():
        for key, rows in module.ROUTES.items():
            assert key not in routes, f"{key} has rows in two permission tables"
            routes[key] = list(rows) if isinstance(rows, list | tuple) else [rows]
    return routes


def discovered_routes() -> dict[str, tuple[str, str]]:
    """Every URL pattern: key (namespaced name, or route string when unnamed) -> (route
    string, namespace)."""
    found: dict[str, tuple[str, str]] = {}

    def walk(patterns, prefix: str, namespace: str):
        for entry in patterns:
            if isinstance(entry, URLResolver):
                ns = namespace
                if entry.namespace:
                    ns = f"{namespace}:{entry.namespace}" if namespace else entry.namespace
                walk(entry.url_patterns, prefix + str(entry.pattern), ns)
            elif isinstance(entry, URLPattern):
                route = prefix + str(entry.pattern)
                qualified = f"{namespace}:{entry.name}" if namespace else entry.name
                key = qualified if entry.name else route
                found.setdefault(key, (route, namespace))

    walk(get_resolver().url_patterns, "", "")
    return found


def _covered(key: str, namespace: str, routes: dict) -> bool:
    return key in routes or bool(namespace and f"{namespace}:*" in routes)


def test_every_route_has_a_row():
    routes = merged_routes()
    missing = {key: route for key, (route, namespace) in discovered_routes().items()
               if not _covered(key, namespace, routes)}
    hint = "\n".join(f'    "{key}": Req(expect(...)),  # {route}' for key, route in sorted(missing.items()))
    assert not missing, f"routes without a permission-matrix row (add them to tests/<app>/permission_table.py):\n{hint}"


def test_every_row_names_an_existing_route():
    discovered = discovered_routes()
    stale = [key for key in merged_routes() if not key.endswith(":*") and key not in discovered]
    assert not stale, f"rows for routes that no longer exist: {stale}"


def test_every_row_gives_every_persona():
    for key, rows in merged_routes().items():
        for row in rows:
            assert set(row.expect) == set(PERSONAS), f"{key}: expected statuses for {sorted(set(PERSONAS) - set(row.expect))}"


# --- running the rows ----------------------------------------------------------------------------

def _resolve(world, reference: str):
    if reference.startswith("="):
        return reference[1:]
    value = world
    for part in reference.split("."):
        value = value[part] if isinstance(value, dict) else getattr(value, part)
    return value


def _resolve_values(world, mapping: dict) -> dict:
    """Values written "@world.reference" are looked up; lists of them too."""
    def one(value):
        if isinstance(value, str) and value.startswith("@"):
            return _resolve(world, value[1:])
        if isinstance(value, list):
            return [one(v) for v in value]
        return value

    return {name: one(value) for name, value in mapping.items()}


def _url(world, key: str, row: Req, kwargs: dict[str, str]) -> str:
    if row.path is not None:
        url = row.path
    else:
        url = reverse(key, kwargs={name: _resolve(world, ref) for name, ref in kwargs.items()})
    if not row.query:
        return url
    # Query values written "@world.reference" are looked up, so ids never depend on the
    # database's sequences (PostgreSQL does not reset them between tests).
    parts = []
    for part in row.query.split("&"):
        name, _, value = part.partition("=")
        if value.startswith("@"):
            value = str(_resolve(world, value[1:]))
        parts.append(f"{name}={value}")
    return f"{url}?{'&'.join(parts)}"


def _send(client: Client, world, url: str, row: Req):
    method = row.method.lower()
    data = row.data
    if isinstance(data, str) and data.startswith("@"):
        data = _resolve(world, data[1:])
    elif isinstance(data, dict):
        data = _resolve_values(world, data)
    headers = _resolve_values(world, row.headers)
    if method in ("get", "head", "options"):
        return getattr(client, method)(url, headers=headers)
    if url.startswith("/api/"):
        return getattr(client, method)(url, data=json.dumps(data or {}), content_type="application/json",
                                       headers=headers)
    if method == "post":
        return client.post(url, data=data or {}, headers=headers)
    return getattr(client, method)(url, headers=headers)


def _status_as(world, persona: str, key: str, row: Req, kwargs: dict[str, str]) -> int:
    client = Client()
    session = world.sessions.get(persona)
    if session is not None:
        client.cookies[settings.SESSION_COOKIE_NAME] = session
    with transaction.atomic():
        response = _send(client, world, _url(world, key, row, kwargs), row)
        transaction.set_rollback(True)
    return response.status_code


def _extend(world) -> None:
    for module in _table_modules():
        hook = getattr(module, "extend_world", None)
        if hook is not None:
            hook(world)


def _sign_in(world) -> dict[str, str]:
    """Each persona signs in once for the module: persona -> session key. Every request runs in
    a rolled-back transaction, so a row that signs out or rotates the session leaves the session
    as it was for the next request."""
    sessions = {}
    for persona, user in world.users.items():
        if user is not None:
            client = Client()
            client.force_login(user)
            sessions[persona] = client.cookies[settings.SESSION_COOKIE_NAME].value
    return sessions


def _rows():
    for key, rows in sorted(merged_routes().items()):
        for index, row in enumerate(rows):
            yield pytest.param(key, row, id=f"{key}[{index}]{row.method}")


@pytest.fixture(scope="module")
def _module_world(django_db_setup, django_db_blocker):
    """The world, built once for the module inside a transaction that is rolled back at the
    end, with one signed-in session per persona. Each test's own transaction is a savepoint
    inside it, and every request runs in an atomic block that is rolled back, so no row leaks
    from one check into the next."""
    with django_db_blocker.unblock(), transaction.atomic():
        world = build_world()
        _extend(world)
        world.sessions = _sign_in(world)
        yield world
        transaction.set_rollback(True)


@pytest.fixture
def world(_module_world, db):
    return _module_world


@pytest.mark.parametrize(("key", "row"), list(_rows()))
def test_route_answers_each_persona_as_the_table_says(world, key, row):
    got = {persona: _status_as(world, persona, key, row, row.kwargs) for persona in PERSONAS}
    assert got == row.expect, f"{key} {row.method}: got {got}"


@pytest.mark.parametrize(("key", "row"), [p for p in _rows() if p.values[1].idor])
def test_ids_of_another_project_are_404_for_everyone_but_the_admin(world, key, row):
    got = {persona: _status_as(world, persona, key, row, row.idor) for persona in PERSONAS if persona != "admin"}
    anonymous_status = row.idor_status or row.expect["anonymous"]
    wanted = {persona: (anonymous_status if persona == "anonymous" else 404) for persona in got}
    assert got == wanted, f"{key} {row.method} with another project's ids: got {got}"
