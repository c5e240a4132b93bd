"""Schemathesis over /api/schema/: every operation, as a platform admin and as a Viewer.

A bounded, reproducible run (a fixed seed, derandomized, a few examples per operation) in
process against the WSGI application, so it runs the same on SQLite and PostgreSQL. Each
generated request is sent with the persona's API token and checked for: no server error,
a status code the schema documents, a body that matches the documented schema. Every request
runs in an atomic block that is rolled back, so the world stays the same for every case.
"""

from __future__ import annotations

import json

import pytest
import schemathesis
from django.db import transaction
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error, response_schema_conformance, status_code_conformance

from console.access import tokens
from tests.console.matrix_world import build_world

EXAMPLES_PER_OPERATION = 5
EXAMPLES_PER_HEAVY_OPERATION = 2
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]


def _load_schema():
    """The schema /api/schema/ serves (the same generator, called before the test client
    exists: collection runs before Django's test environment is set up)."""
    from django.core.wsgi import get_wsgi_application
    from drf_spectacular.generators import SchemaGenerator

    document = SchemaGenerator().get_schema(request=None, public=True)
    schema = schemathesis.openapi.from_dict(json.loads(json.dumps(document, default=str)))
    schema.app = get_wsgi_application()  # console.wsgi's app, without its start-up key check
    return schema


schema = _load_schema()


@pytest.fixture(scope="module")
def fuzz_world(django_db_setup, django_db_blocker):
    """The permission matrix's world (two projects, models, versions, endpoints, personas,
    grants), built once and rolled back at the end; a read and deploy API token for the admin and
    for the project's Viewer."""
    # Django's handler closes the database connection when a request ends; in a test that is
    # the test's own transaction (on PostgreSQL). Django's test client turns that off around
    # each request; schemathesis calls the WSGI app directly, so it is off for the module.
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield from _world(django_db_blocker)
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def _world(django_db_blocker):
    with django_db_blocker.unblock(), transaction.atomic():
        world = build_world()
        world.authorization = {}
        for persona in ("admin", "viewer"):
            _, plaintext = tokens.token_create(actor=world.users[persona], user=world.users[persona],
                                               name="fuzz", scopes=["read", "deploy"])
            world.authorization[persona] = f"Bearer {plaintext}"
        yield world
        transaction.set_rollback(True)


@pytest.fixture(params=["admin", "viewer"])
def persona(request):
    return request.param


def _call(case, world, persona) -> None:
    with transaction.atomic():
        case.call_and_validate(headers={"Authorization": world.authorization[persona]}, checks=CHECKS)
        transaction.set_rollback(True)


# The endpoint writes (create, edit, plan) have the largest bodies by far: generating them is
# most of the run's time, so they get fewer examples and the rest keep the bound above.
HEAVY = {"path_regex": r"^/api/v1/endpoints/(\{id\}/)?(plan/)?$", "method": ["POST", "PATCH", "PUT"]}
_settings = {"derandomize": True, "deadline": None, "database": None, "phases": [Phase.explicit, Phase.generate],
             "suppress_health_check": list(HealthCheck)}


@schema.exclude(**HEAVY).parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, **_settings)
def test_api_answers_every_generated_request_without_server_error_and_as_documented(case, fuzz_world, persona, db):
    _call(case, fuzz_world, persona)


@schema.include(**HEAVY).parametrize()
@settings(max_examples=EXAMPLES_PER_HEAVY_OPERATION, **_settings)
def test_endpoint_writes_answer_generated_bodies_without_server_error_and_as_documented(case, fuzz_world, persona,
                                                                                        db):
    _call(case, fuzz_world, persona)
