"""The permission matrix with personas who signed in through OpenID Connect: every persona is
a provider account created by ``resolve_identity`` (no password), the auditor and the admin get
their global roles and the viewer their team through group mappings and ``sync_groups``, and
local passwords are off for everyone but break-glass admins (``LOCAL_PASSWORD_SIGN_IN=admins``).

Each route's first row runs (the full table runs with local accounts in
tests/console/test_permission_matrix.py); the answers must be exactly the table's."""

from __future__ import annotations

import pytest
from django.db import transaction
from django.test import Client, override_settings

from console.access import oidc
from console.access.models import ExternalIdentity, SyncedMembership
from tests.console import test_permission_matrix as matrix
from tests.console.matrix_world import SSO_ISSUER, build_world
from tests.console.permission_table import PERSONAS


def _first_rows():
    for key, rows in sorted(matrix.merged_routes().items()):
        yield pytest.param(key, rows[0], id=f"{key}[0]{rows[0].method}")


@pytest.fixture(scope="module")
def _sso_world(django_db_setup, django_db_blocker):
    with override_settings(LOCAL_PASSWORD_SIGN_IN="admins"), django_db_blocker.unblock(), transaction.atomic():
        world = build_world(sso=True)
        matrix._extend(world)
        world.sessions = {}
        for persona, user in world.users.items():
            if user is not None:
                client = Client()
                client.force_login(user, backend=oidc.BACKEND)
                world.sessions[persona] = client.cookies["sessionid"].value
        yield world
        transaction.set_rollback(True)


@pytest.fixture
def world(_sso_world, db, settings):
    settings.LOCAL_PASSWORD_SIGN_IN = "admins"
    return _sso_world


def test_the_personas_are_provider_accounts(world):
    for persona, user in world.users.items():
        if user is None:
            continue
        assert not user.has_usable_password(), persona
        assert ExternalIdentity.objects.filter(user=user, issuer=SSO_ISSUER, source="oidc").exists(), persona
    assert SyncedMembership.objects.filter(user=world.users["viewer"], group=world.team).exists()
    assert {g.name for g in world.users["auditor"].groups.all()} == {"Auditor"}


@pytest.mark.parametrize(("key", "row"), list(_first_rows()))
def test_route_answers_each_sso_persona_as_the_table_says(world, key, row):
    got = {persona: matrix._status_as(world, persona, key, row, row.kwargs) for persona in PERSONAS}
    assert got == row.expect, f"{key} {row.method}: got {got}"
