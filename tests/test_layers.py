"""The import contract: each layer imports only itself and the layers below it.

Layers, lowest first (docs/architecture.md):

==========  ======================================  =========================================
rank        packages                                what it is
==========  ======================================  =========================================
framework   ``console`` (not access, portal)        settings, middleware, chokepoint interface,
                                                    base views/viewsets, the user model
audit       ``audit``                               the tamper-evident trail and its ingest
domain      ``endpoints`` then ``monitoring``       registry, endpoints, reconciler; dashboards
access      ``console.access``                      users, teams, grants, tokens, ext_authz
portal      ``console.portal``                      home, admin overview, demo, ``make run``
==========  ======================================  =========================================

Inside the domain, ``monitoring`` builds on ``endpoints`` and never the reverse. The sandbox
(``endpoints/sandbox/``) is a second program that lives in the repository: it imports no
module of the project outside itself, and no product module imports it (``make run`` starts it
as a process). It is the independent party the console is checked against, so it shares
nothing with the console's validation, rendering or catalog in either direction.

Every import statement counts, at module level or inside a function, and so does
``importlib.import_module("…")`` with a literal name. Run it alone with ``make layers``.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("console", "audit", "endpoints", "monitoring")
# (package prefix, layer name, rank): the longest matching prefix decides.
LAYERS = [
    ("console.portal", "portal", 5),
    ("console.access", "access", 4),
    ("monitoring", "domain (monitoring)", 3),
    ("endpoints", "domain (endpoints)", 2),
    ("audit", "audit", 1),
    ("console", "framework", 0),
]
SANDBOX = "endpoints.sandbox"


def layer_of(module: str) -> tuple[str, int] | None:
    for prefix, name, rank in LAYERS:
        if module == prefix or module.startswith(prefix + "."):
            return name, rank
    return None


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(source: str, module: str, *, is_package: bool = False) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in ``source``, nested ones included."""
    found = []
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            # ``from pkg import sub`` may name a submodule: count it as ``pkg.sub``.
            found.extend((node.lineno, f"{target}.{alias.name}") for alias in node.names)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr == "import_module" and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            found.append((node.lineno, node.args[0].value))
    return found


@dataclass(frozen=True)
class Violation:
    path: str
    line: int
    imported: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line} imports {self.imported}: {self.reason}"


def check_source(source: str, path: Path) -> list[Violation]:
    module = module_name(path)
    is_package = path.name == "__init__.py"
    own = layer_of(module)
    violations = []
    for line, imported in imported_modules(source, module, is_package=is_package):
        rel = str(path.relative_to(ROOT))
        if module == SANDBOX or module.startswith(SANDBOX + "."):
            if imported.split(".")[0] in PACKAGES and not (imported == SANDBOX or imported.startswith(SANDBOX + ".")):
                violations.append(Violation(rel, line, imported, "the sandbox imports nothing of the console"))
            continue
        if imported == SANDBOX or imported.startswith(SANDBOX + "."):
            violations.append(Violation(rel, line, imported, "product code does not use the sandbox's code"))
            continue
        target = layer_of(imported)
        if own is None or target is None:
            continue
        if target[1] > own[1]:
            violations.append(Violation(rel, line, imported, f"{own[0]} may not import {target[0]} (a higher layer)"))
    return violations


def project_files() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


def test_no_module_imports_a_higher_layer():
    violations = [v for path in project_files() for v in check_source(path.read_text(), path)]
    assert not violations, "Layering violations:\n" + "\n".join(map(str, violations))


def test_every_project_app_has_a_layer_of_its_own():
    # A new app under console/ would otherwise pass as framework code by prefix alone.
    from django.apps import apps

    project_apps = [c for c in apps.get_app_configs() if c.name.split(".")[0] in PACKAGES]
    unplaced = [c.name for c in project_apps
                if c.name not in {prefix for prefix, _, _ in LAYERS} or c.label not in APP_LAYERS]
    assert not unplaced, f"apps with no layer in tests/test_layers.py: {unplaced}"


@pytest.mark.parametrize(("path", "source", "expected"), [
    # A function-local import in the framework of a domain model.
    ("console/permissions.py", "def f():\n    from endpoints.models import Project\n", ["endpoints.models.Project"]),
    # The audit trail reaching into access control, then into the domain through a relative-free alias.
    ("audit/views/ingest.py", "from console.access import tokens\nimport monitoring.selectors as s\n",
     ["console.access.tokens", "monitoring.selectors"]),
    # The domain importing access control or the portal.
    ("endpoints/services.py", "from console.access.grants import grant_create\n", ["console.access.grants.grant_create"]),
    ("endpoints/views/registry.py", "import importlib\nimportlib.import_module('console.portal.home')\n",
     ["console.portal.home"]),
    # endpoints never builds on monitoring.
    ("endpoints/selectors.py", "from monitoring import selectors\n", ["monitoring.selectors"]),
    # A relative import climbing from audit's package is resolved before judging it.
    ("audit/api/views.py", "def f():\n    from ..views import trail\n", []),
    # The sandbox may not even import the framework.
    ("endpoints/sandbox/controller.py", "from endpoints import catalog\n", ["endpoints.catalog"]),
    ("endpoints/sandbox/controller.py", "from console.permissions import visible\n", ["console.permissions.visible"]),
    ("endpoints/sandbox/controller.py", "from endpoints.sandbox.errors import ApiError\n", []),
    # ... nor does the console borrow the sandbox's schema, runtime selection or profile.
    ("endpoints/validation.py", "from endpoints.sandbox.schema import Schema\n", ["endpoints.sandbox.schema.Schema"]),
    ("endpoints/runtimes.py", "def f():\n    from endpoints.sandbox import selection\n", ["endpoints.sandbox.selection"]),
    # Allowed: downward imports.
    ("console/portal/home.py", "from console.access.grants import live_q\nfrom endpoints import selectors\n", []),
    ("console/access/grants.py", "from audit import services\nfrom endpoints.models import Project\n", []),
    ("monitoring/services.py", "from endpoints.models import Endpoint\n", []),
])
def test_the_checker_flags_exactly_the_upward_imports(path, source, expected):
    found = [v.imported for v in check_source(source, ROOT / path)]
    assert found == expected


# --- migrations follow the same layers ------------------------------------------------------
APP_LAYERS = {"console": 0, "audit": 1, "endpoints": 2, "monitoring": 3, "access": 4, "portal": 5}


def app_dependencies() -> dict[str, set[str]]:
    """App label -> the other apps its migrations depend on (from the files on disk)."""
    from django.db.migrations.loader import MigrationLoader

    loader = MigrationLoader(None, ignore_no_migrations=True)
    edges: dict[str, set[str]] = {}
    for (app, _name), migration in loader.disk_migrations.items():
        for dep_app, _dep in migration.dependencies:
            dep_app = "console" if dep_app == "__setting__" else dep_app  # AUTH_USER_MODEL
            if dep_app != app:
                edges.setdefault(app, set()).add(dep_app)
    return edges


def test_the_app_level_migration_graph_has_no_cycle():
    edges = app_dependencies()
    state: dict[str, str] = {}

    def visit(app, trail):
        if state.get(app) == "done":
            return
        assert state.get(app) != "open", "migration cycle: " + " -> ".join(trail + [app])
        state[app] = "open"
        for dep in sorted(edges.get(app, ())):
            visit(dep, trail + [app])
        state[app] = "done"

    for app in sorted(edges):
        visit(app, [])


def test_migrations_depend_only_on_their_own_layer_or_lower():
    wrong = sorted(
        f"{app} -> {dep}"
        for app, deps in app_dependencies().items() if app in APP_LAYERS
        for dep in deps if APP_LAYERS.get(dep, -1) > APP_LAYERS[app]
    )
    assert not wrong, f"migrations depending on a higher layer: {wrong}"
    # And the framework's migrations depend on no app of the project at all.
    assert not set(app_dependencies().get("console", ())) & set(APP_LAYERS)
