"""The world the permission matrix runs in: two projects (one the personas have roles on,
one they have nothing on, for IDOR attempts), their models, versions and endpoints, the
eight personas, a team, grants, users and tokens the access routes act on.

Apps add what their routes need with ``extend_world(world)`` in their permission table.
"""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

from django.utils import timezone

from console.access import grants, roles, services, tokens
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


def build_world() -> SimpleNamespace:
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

    w.users = {
        "anonymous": None,
        "outsider": UserFactory(username="m-outsider"),
        "viewer": UserFactory(username="m-viewer"),
        "deployer": UserFactory(username="m-deployer"),
        "owner": UserFactory(username="m-owner"),
        "caller": UserFactory(username="m-caller"),
        "auditor": UserFactory(username="m-auditor", roles=[roles.AUDITOR]),
        "admin": UserFactory(username="m-admin", is_superuser=True, is_staff=True, roles=[roles.PLATFORM_ADMIN]),
    }
    for persona, role in PROJECT_ROLES.items():
        grant = grants.grant_create(actor=None, role=role, target=w.project, user=w.users[persona],
                                    reason="permission matrix")
        setattr(w, f"{persona}_grant", grant)
    w.grant = w.viewer_grant
    w.other_grant = grants.grant_create(actor=None, role="owner", target=w.other_project,
                                        user=UserFactory(username="m-elsewhere"), reason="other project")
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
