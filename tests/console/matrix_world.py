"""The world the permission matrix runs in: two projects (one the personas have roles on,
one they have nothing on, for IDOR attempts), their models, versions and endpoints, the
eight personas, a team, grants, users and tokens the access routes act on.

Apps add what their routes need with ``extend_world(world)`` in their permission table.
"""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

from django.contrib.auth.models import Group
from django.utils import timezone

from console.access import grants, identity, roles, services, tokens
from console.access.models import GroupMapping
from tests.endpoints.endpoint_factories import (
    ClusterFactory,
    EndpointFactory,
    HardwareProfileFactory,
    ModelVersionFactory,
    ProjectFactory,
    RegisteredModelFactory,
)
from tests.factories import UserFactory

PROJECT_ROLES = {"viewer": "viewer", "deployer": "deployer", "owner": "owner", "caller": "caller"}


SSO_ISSUER = "https://idp.matrix.example.test"


def _sso_person(username: str, groups: list[str] = ()):
    """A persona created the way a first OpenID Connect sign-in creates one: linked by
    (issuer, subject), no password, groups synced from the provider's groups claim."""
    user = identity.resolve_identity(identity.Claims(source="oidc", issuer=SSO_ISSUER, subject=f"sub-{username}",
                                                     username=username, email=f"{username}@example.test"))
    identity.sync_groups(user=user, source="oidc", external_groups=groups, via="sign-in", issuer=SSO_ISSUER,
                         subject=f"sub-{username}")
    return user


def _people(sso: bool) -> dict:
    if not sso:
        return {
            "anonymous": None,
            "outsider": UserFactory(username="m-outsider"),
            "viewer": UserFactory(username="m-viewer"),
            "deployer": UserFactory(username="m-deployer"),
            "owner": UserFactory(username="m-owner"),
            "caller": UserFactory(username="m-caller"),
            "auditor": UserFactory(username="m-auditor", roles=[roles.AUDITOR]),
            "admin": UserFactory(username="m-admin", is_superuser=True, is_staff=True, roles=[roles.PLATFORM_ADMIN]),
        }
    for external, role in (("idp-auditors", roles.AUDITOR), ("idp-platform-admins", roles.PLATFORM_ADMIN)):
        GroupMapping.objects.create(source="oidc", external_group=external, group=Group.objects.get(name=role))
    people = {"anonymous": None, **{p: _sso_person(f"m-{p}", ["everyone"])
                                    for p in ("outsider", "viewer", "deployer", "owner", "caller")}}
    people["auditor"] = _sso_person("m-auditor", ["everyone", "idp-auditors"])
    people["admin"] = _sso_person("m-admin", ["everyone", "idp-platform-admins"])
    # The admin persona is also a superuser (the Django admin rows); an operator sets that by hand.
    type(people["admin"]).objects.filter(pk=people["admin"].pk).update(is_superuser=True, is_staff=True)
    people["admin"].refresh_from_db()
    return people


def build_world(*, sso: bool = False) -> SimpleNamespace:
    """The matrix's world; with ``sso`` the personas are provider accounts (created by
    ``resolve_identity``, global roles and the team through group mappings and ``sync_groups``)."""
    roles.ensure_global_roles()
    w = SimpleNamespace()
    w.cluster = ClusterFactory(name="matrix-cluster", ingress_domain="example.com")
    w.hardware = HardwareProfileFactory()
    from endpoints.services import platform as endpoint_services

    endpoint_services.sync_builtin_runtimes()
    from endpoints.models import ServingRuntime

    w.runtime = ServingRuntime.objects.order_by("pk").first()
    w.project = ProjectFactory(name="matrix", namespace="matrix", cluster=w.cluster)
    w.model = RegisteredModelFactory(project=w.project, name="scorer")
    w.version = ModelVersionFactory(model=w.model, version=1)
    w.endpoint = EndpointFactory(project=w.project, name="scorer", model_version=w.version,
                                 status={"url": "http://scorer.matrix.example.com", "phase": "Ready"})
    w.other_project = ProjectFactory(name="elsewhere", namespace="elsewhere", cluster=w.cluster)
    w.other_model = RegisteredModelFactory(project=w.other_project, name="secret-model")
    w.other_version = ModelVersionFactory(model=w.other_model, version=1)
    w.other_endpoint = EndpointFactory(project=w.other_project, name="secret", model_version=w.other_version)

    w.users = _people(sso)
    for persona, role in PROJECT_ROLES.items():
        grant = grants.grant_create(actor=None, role=role, target=w.project, user=w.users[persona],
                                    reason="permission matrix")
        setattr(w, f"{persona}_grant", grant)
    w.grant = w.viewer_grant
    w.other_grant = grants.grant_create(actor=None, role="owner", target=w.other_project,
                                        user=UserFactory(username="m-elsewhere"), reason="other project")
    if sso:
        w.team = services.team_create(actor=None, name="matrix-team", members=[])
        GroupMapping.objects.create(source="oidc", external_group="idp-matrix-team", group=w.team)
        identity.sync_groups(user=w.users["viewer"], source="oidc", external_groups=["everyone", "idp-matrix-team"],
                             via="sign-in", issuer=SSO_ISSUER, subject="sub-m-viewer")
    else:
        w.team = services.team_create(actor=None, name="matrix-team", members=[w.users["viewer"]])
    w.team_grant = grants.grant_create(actor=None, role="caller", target=w.endpoint, group=w.team,
                                       reason="team callers")
    w.subject = UserFactory(username="m-subject")
    w.service_account = UserFactory(username="m-robot", is_service_account=True, password=None)
    w.token, w.token_plaintext = tokens.token_create(actor=w.users["owner"], user=w.users["owner"],
                                                     name="owner's token", scopes=["read"])
    w.admin_token, _ = tokens.token_create(actor=w.users["admin"], user=w.service_account, name="robot",
                                           scopes=["infer"], expires_at=timezone.now() + timedelta(days=1))
    for persona in ("caller", "outsider"):
        _, plaintext = tokens.token_create(actor=w.users[persona], user=w.users[persona], name="infer",
                                           scopes=["infer"])
        setattr(w, f"{persona}_authorization", f"Bearer {plaintext}")
    return w
