"""Expected status per route and persona, for the permission matrix (test_permission_matrix.py).

Format (shared by every app's ``tests/<app>/permission_table.py``; the matrix merges them):

``ROUTES`` maps a route to one ``Req`` or a list of them.

- The key is the URL name as ``reverse()`` knows it (``"access:access-overview"``,
  ``"api-me"``, ``"endpoints:endpoint-detail"``). A pattern without a name is keyed by its
  full route string (``"api/v1/^things/$"``). A whole third-party namespace may be covered by
  ``"<namespace>:*"`` (e.g. the Django admin), with a ``path``.
- ``Req.expect`` gives the status for EVERY persona, in this order (use ``expect(...)``):
  anonymous, outsider, viewer, deployer, owner, caller, auditor, admin.
  The viewer, deployer, owner and caller hold that role on project ``world.project`` through
  a Grant; the outsider holds nothing; the auditor has the global Auditor role; the admin is
  a superuser with the Platform admin role.
- ``Req.kwargs`` are the URL kwargs, each a dotted reference into the world
  (``"endpoint.pk"``, ``"project.name"``) or a literal prefixed with ``=`` (``"=missing"``).
  ``Req.path`` is a literal path instead (wildcard rows).
- ``Req.method`` (default GET), ``Req.data`` (a dict sent as JSON to ``/api/`` routes and as a
  form elsewhere; a value written ``"@endpoint.pk"`` is looked up in the world),
  ``Req.query`` (query string), ``Req.headers`` (extra request headers, ``@`` values looked up).
- ``Req.idor``: the same kwargs naming another project's objects (``"other_endpoint.pk"``).
  Every persona except the admin must then get 404 (or ``idor_status`` for the anonymous
  visitor: a redirect to sign-in or 401).

Each persona's request runs in its own rolled-back transaction, so writes allowed to one
persona never change what the next one sees. The world (``tests/console/matrix_world.py``)
may be extended by an app's table module with ``def extend_world(world): ...``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

PERSONAS = ("anonymous", "outsider", "viewer", "deployer", "owner", "caller", "auditor", "admin")


def expect(anonymous: int, outsider: int, viewer: int, deployer: int, owner: int, caller: int, auditor: int,
           admin: int) -> dict[str, int]:
    """Expected statuses, one per persona, in PERSONAS order."""
    return dict(zip(PERSONAS, (anonymous, outsider, viewer, deployer, owner, caller, auditor, admin), strict=True))


@dataclass(frozen=True)
class Req:
    expect: dict[str, int]
    method: str = "GET"
    kwargs: dict[str, str] = field(default_factory=dict)
    path: str | None = None
    data: dict | str | None = None
    query: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    idor: dict[str, str] | None = None
    idor_status: int | None = None


# Common shapes (UI: anonymous → 302 to sign-in; API: anonymous → 401).
#                       anon out  view dep  own  call aud  admin
UI_EVERYONE = expect(302, 200, 200, 200, 200, 200, 200, 200)
UI_ADMIN = expect(302, 403, 403, 403, 403, 403, 403, 200)
UI_ADMIN_POST = expect(302, 403, 403, 403, 403, 403, 403, 302)
API_EVERYONE = expect(401, 200, 200, 200, 200, 200, 200, 200)
API_ADMIN = expect(401, 403, 403, 403, 403, 403, 403, 200)
PUBLIC = expect(200, 200, 200, 200, 200, 200, 200, 200)

ROUTES: dict[str, Req | list[Req]] = {
    # --- console basics -------------------------------------------------------------------
    "home": Req(UI_EVERYONE),
    # Signed-in visitors are sent on (redirect_authenticated_user).
    "login": Req(expect(200, 302, 302, 302, 302, 302, 302, 302)),
    "logout": [
        Req(expect(405, 405, 405, 405, 405, 405, 405, 405)),  # GET never signs anyone out
        Req(expect(302, 302, 302, 302, 302, 302, 302, 302), method="POST"),
    ],
    # OpenID Connect sign-in is off in the matrix (no provider configured): not found for all.
    "oidc-login": Req(expect(404, 404, 404, 404, 404, 404, 404, 404)),
    "oidc-callback": Req(expect(404, 404, 404, 404, 404, 404, 404, 404)),
    "healthz": Req(PUBLIC),
    # Public, and the same answer for everyone: the serving checks pass; the full check is 503 here
    # because no worker or beat sends heartbeats in this test (tests/console/test_heartbeats.py).
    "readyz": [Req(PUBLIC, query="check=database&check=broker"),
               Req(expect(503, 503, 503, 503, 503, 503, 503, 503))],
    # The OpenAPI document and its viewers are public (they describe routes, never data).
    "api-schema": Req(PUBLIC),
    "api-docs": Req(PUBLIC),
    "api-redoc": Req(PUBLIC),
    # An /api/ path no route matches: the API's JSON 404 for everyone.
    "api-not-found": Req(expect(404, 404, 404, 404, 404, 404, 404, 404), kwargs={"rest": "=no-such-thing/"}),
    "favicon": Req(expect(301, 301, 301, 301, 301, 301, 301, 301)),
    "api-me": Req(API_EVERYONE),
    "portal:admin-overview": Req(UI_ADMIN),
    # The Django admin: staff only (the admin persona is a superuser); others are sent to its login.
    "admin:*": Req(expect(302, 302, 302, 302, 302, 302, 302, 200), path="/django-admin/"),
}

# Access control pages. Object access pages: invisible → 404, visible without "manage" → 403.
#                           anon out  view dep  own  call aud  admin
OBJECT_MANAGERS = expect(302, 404, 403, 403, 200, 403, 404, 200)
OBJECT_MANAGERS_POST = expect(302, 404, 403, 403, 302, 403, 404, 302)
GRANT_FORM = {"user": "@subject.pk", "role": "viewer", "reason": "matrix", "expires_at": ""}

ROUTES.update({
    "access:access-overview": Req(UI_ADMIN),
    "access:user-list": Req(UI_ADMIN, query="q=m-&kind=people"),
    "access:user-create": [
        Req(UI_ADMIN),
        Req(UI_ADMIN_POST, method="POST", data={"kind": "person", "username": "newcomer", "email": "n@example.com"}),
    ],
    "access:user-detail": Req(UI_ADMIN, kwargs={"pk": "subject.pk"}),
    "access:user-roles": Req(UI_ADMIN_POST, method="POST", kwargs={"pk": "subject.pk"},
                              data={"global_roles": ["Auditor"]}),
    "access:user-deactivate": [
        Req(UI_ADMIN, kwargs={"pk": "subject.pk"}),
        Req(UI_ADMIN_POST, method="POST", kwargs={"pk": "subject.pk"}, data={"reason": "left"}),
    ],
    "access:user-reactivate": Req(UI_ADMIN_POST, method="POST", kwargs={"pk": "subject.pk"}),
    # Reset sign-in: a confirmation page, then the new one-time link rendered once (200, no redirect).
    # Service accounts never sign in: no such page for them.
    "access:user-sign-in-reset": [
        Req(UI_ADMIN, kwargs={"pk": "subject.pk"}),
        Req(expect(302, 403, 403, 403, 403, 403, 403, 404), kwargs={"pk": "service_account.pk"}),
        Req(UI_ADMIN, method="POST", kwargs={"pk": "subject.pk"}, data={"reason": "forgot password"}),
    ],
    # Unlock is POST only: a GET changes nothing (405 for the admin, who passes the role check first).
    "access:user-unlock": [
        Req(expect(302, 403, 403, 403, 403, 403, 403, 405), kwargs={"pk": "subject.pk"}),
        Req(UI_ADMIN_POST, method="POST", kwargs={"pk": "subject.pk"}),
    ],
    "access:service-token-create": [
        Req(UI_ADMIN, kwargs={"pk": "service_account.pk"}),
        # People create their own tokens: an admin cannot mint one for them.
        Req(expect(302, 403, 403, 403, 403, 403, 403, 404), kwargs={"pk": "subject.pk"}),
        Req(expect(302, 403, 403, 403, 403, 403, 403, 200), method="POST", kwargs={"pk": "service_account.pk"},
            data={"name": "ci", "scopes": ["infer"], "expires": "30"}),
    ],
    "access:team-list": Req(UI_ADMIN),
    "access:team-create": [
        Req(UI_ADMIN),
        Req(UI_ADMIN_POST, method="POST", data={"name": "new-team"}),
    ],
    "access:team-detail": Req(UI_ADMIN, kwargs={"pk": "team.pk"}),
    "access:team-edit": [
        Req(UI_ADMIN, kwargs={"pk": "team.pk"}),
        Req(UI_ADMIN_POST, method="POST", kwargs={"pk": "team.pk"}, data={"name": "renamed-team"}),
    ],
    "access:team-delete": [
        Req(UI_ADMIN, kwargs={"pk": "team.pk"}),
        Req(UI_ADMIN_POST, method="POST", kwargs={"pk": "team.pk"}),
    ],
    "access:team-member-add": Req(UI_ADMIN_POST, method="POST", kwargs={"pk": "team.pk"},
                                   data={"user": "@subject.pk"}),
    "access:team-member-remove": Req(UI_ADMIN_POST, method="POST",
                                      kwargs={"pk": "team.pk", "user_pk": "users.viewer.pk"}),
    "access:project-access": [
        Req(OBJECT_MANAGERS, kwargs={"name": "project.name"}, idor={"name": "other_project.name"}),
        Req(OBJECT_MANAGERS_POST, method="POST", kwargs={"name": "project.name"}, data=GRANT_FORM,
            idor={"name": "other_project.name"}),
    ],
    "access:model-access": Req(OBJECT_MANAGERS, kwargs={"pk": "model.pk"}, idor={"pk": "other_model.pk"}),
    # "Try it": anyone who sees the endpoint may open it and send (the gateway's check decides);
    # a body that is not JSON is refused with a field message before anything is sent.
    "access:endpoint-try": [
        Req(expect(302, 404, 200, 200, 200, 200, 404, 200), kwargs={"project": "project.name", "name": "endpoint.name"},
            idor={"project": "other_project.name", "name": "other_endpoint.name"}),
        Req(expect(302, 404, 400, 400, 400, 400, 404, 400), method="POST",
            kwargs={"project": "project.name", "name": "endpoint.name"}, data={"body": "{not json"},
            idor={"project": "other_project.name", "name": "other_endpoint.name"}),
    ],
    "access:endpoint-access": [
        Req(OBJECT_MANAGERS, kwargs={"project": "project.name", "name": "endpoint.name"},
            idor={"project": "other_project.name", "name": "other_endpoint.name"}),
        Req(OBJECT_MANAGERS_POST, method="POST", kwargs={"project": "project.name", "name": "endpoint.name"},
            data=GRANT_FORM | {"role": "caller"}),
    ],
    "access:grant-revoke": [
        Req(OBJECT_MANAGERS, kwargs={"pk": "grant.pk"}, idor={"pk": "other_grant.pk"}),
        Req(OBJECT_MANAGERS_POST, method="POST", kwargs={"pk": "grant.pk"}, data={"reason": "matrix"},
            idor={"pk": "other_grant.pk"}),
    ],
    # Identity providers: group mappings and linked sign-in accounts (platform admins).
    "access:group-mapping-list": Req(UI_ADMIN),
    "access:group-mapping-create": [
        Req(UI_ADMIN),
        Req(UI_ADMIN_POST, method="POST", data={"source": "oidc", "external_group": "matrix-new", "group": "@team.pk"}),
    ],
    "access:group-mapping-delete": [
        Req(UI_ADMIN, kwargs={"pk": "group_mapping.pk"}),
        Req(UI_ADMIN_POST, method="POST", kwargs={"pk": "group_mapping.pk"}),
    ],
    "access:identity-link": [
        Req(UI_ADMIN, kwargs={"pk": "subject.pk"}),
        Req(UI_ADMIN_POST, method="POST", kwargs={"pk": "subject.pk"},
            data={"source": "oidc", "issuer": "https://idp.example.test", "subject": "matrix-new-sub"}),
    ],
    "access:identity-unlink": Req(UI_ADMIN_POST, method="POST",
                                  kwargs={"pk": "subject.pk", "identity_pk": "identity.pk"}),
    "access:check-access": [
        Req(UI_ADMIN),
        Req(UI_ADMIN, query="action=infer&endpoint=matrix/scorer&user=@subject.pk"),
    ],
    "access:token-list": [
        Req(UI_EVERYONE),
        # The created token is rendered once (200), never redirected to.
        Req(UI_EVERYONE, method="POST", data={"name": "script", "scopes": ["read"], "expires": "30"}),
    ],
    # Someone else's token is a 404; platform admins may revoke anyone's.
    "access:token-revoke": Req(expect(302, 404, 404, 404, 302, 404, 404, 302), method="POST",
                                kwargs={"pk": "token.pk"}),
    # An invalid invitation link is a page saying so, for everyone.
    "access:invite-accept": Req(PUBLIC, kwargs={"uidb64": "=MQ", "token": "=set-password"}),
    # ext_authz: sessions are ignored, only the bearer token counts (same answer for every persona).
    "authz-check": [
        Req(expect(*[401] * 8), path="/authz/check/v1/models/scorer:predict",
            headers={"host": "scorer.matrix.example.com"}),
        Req(expect(*[200] * 8), method="POST", path="/authz/check/v1/models/scorer:predict",
            headers={"host": "scorer.matrix.example.com", "authorization": "@caller_authorization"}),
        Req(expect(*[403] * 8), method="POST", path="/authz/check/v1/models/scorer:predict",
            headers={"host": "scorer.matrix.example.com", "authorization": "@outsider_authorization"}),
    ],
})

# Access-control API.
#                               anon out  view dep  own  call aud  admin
API_OWN_TOKEN = expect(401, 404, 404, 404, 200, 404, 404, 200)
API_GRANT_MANAGERS = expect(401, 404, 404, 404, 200, 404, 404, 200)
API_OBJECT_MANAGERS = expect(401, 404, 403, 403, 200, 403, 404, 200)
API_ADMIN_CREATED = expect(401, 403, 403, 403, 403, 403, 403, 201)

ROUTES.update({
    "api-token-list": [
        Req(API_EVERYONE),
        Req(expect(401, 201, 201, 201, 201, 201, 201, 201), method="POST", data={"name": "ci", "scopes": ["read"]}),
    ],
    "api-token-detail": [
        Req(API_OWN_TOKEN, kwargs={"pk": "token.pk"}),
        Req(API_OWN_TOKEN, method="DELETE", kwargs={"pk": "token.pk"}),
    ],
    "api-grant-list": [
        Req(API_EVERYONE),
        # A project you cannot see does not exist (400); one you see but may not manage: 403.
        Req(expect(401, 400, 403, 403, 201, 403, 400, 201), method="POST",
            data={"role": "viewer", "project": "@project.pk", "user": "@subject.pk", "reason": "matrix"}),
    ],
    "api-grant-detail": Req(API_GRANT_MANAGERS, kwargs={"pk": "grant.pk"}, idor={"pk": "other_grant.pk"}),
    "api-grant-revoke": Req(API_GRANT_MANAGERS, method="POST", kwargs={"pk": "grant.pk"},
                            data={"reason": "matrix"}, idor={"pk": "other_grant.pk"}),
    "api-user-list": [
        Req(API_ADMIN),
        Req(API_ADMIN_CREATED, method="POST", data={"username": "api-newcomer"}),
    ],
    "api-user-detail": Req(API_ADMIN, kwargs={"pk": "subject.pk"}),
    "api-user-deactivate": Req(API_ADMIN, method="POST", kwargs={"pk": "subject.pk"}, data={"reason": "left"}),
    "api-user-reactivate": Req(API_ADMIN, method="POST", kwargs={"pk": "subject.pk"}),
    "api-team-list": [
        Req(API_ADMIN),
        Req(API_ADMIN_CREATED, method="POST", data={"name": "api-team"}),
    ],
    "api-team-detail": [
        Req(API_ADMIN, kwargs={"pk": "team.pk"}),
        Req(API_ADMIN, method="PATCH", kwargs={"pk": "team.pk"}, data={"name": "renamed-team"}),
        Req(API_ADMIN, method="PUT", kwargs={"pk": "team.pk"}, data={"name": "renamed-team"}),
        Req(expect(401, 403, 403, 403, 403, 403, 403, 204), method="DELETE", kwargs={"pk": "team.pk"}),
    ],
    "api-team-members": Req(API_ADMIN, method="POST", kwargs={"pk": "team.pk"}, data={"user": "@subject.pk"}),
    "api-team-remove-member": Req(API_ADMIN, method="DELETE", kwargs={"pk": "team.pk", "user_id": "users.viewer.pk"}),
    "api-group-mapping-list": [
        Req(API_ADMIN),
        Req(API_ADMIN_CREATED, method="POST", data={"source": "oidc", "external_group": "api-group",
                                                    "group": "@team.pk"}),
    ],
    "api-group-mapping-detail": [
        Req(API_ADMIN, kwargs={"pk": "group_mapping.pk"}),
        Req(expect(401, 403, 403, 403, 403, 403, 403, 204), method="DELETE", kwargs={"pk": "group_mapping.pk"}),
    ],
    "api-identity-list": [
        Req(API_ADMIN, query="user=@subject.pk"),
        Req(API_ADMIN_CREATED, method="POST", data={"user": "@subject.pk", "source": "oidc",
                                                    "issuer": "https://idp.example.test", "subject": "api-sub"}),
    ],
    "api-identity-detail": [
        Req(API_ADMIN, kwargs={"pk": "identity.pk"}),
        Req(expect(401, 403, 403, 403, 403, 403, 403, 204), method="DELETE", kwargs={"pk": "identity.pk"}),
    ],
    "api-endpoint-access-detail": Req(API_OBJECT_MANAGERS, kwargs={"pk": "endpoint.pk"},
                                      idor={"pk": "other_endpoint.pk"}),
    "api-project-access-detail": Req(API_OBJECT_MANAGERS, kwargs={"pk": "project.pk"},
                                     idor={"pk": "other_project.pk"}),
    # Without its query parameters the check is a 400, for admins only.
    "api-access-check": Req(expect(401, 403, 403, 403, 403, 403, 403, 400)),
})


def extend_world(world) -> None:
    """A group mapping and a linked sign-in account for the identity-provider rows."""
    from console.access.models import ExternalIdentity, GroupMapping

    world.group_mapping = GroupMapping.objects.create(source="oidc", external_group="matrix-group", group=world.team)
    world.identity = ExternalIdentity.objects.create(user=world.subject, source="oidc",
                                                     issuer="https://idp.example.test", subject="matrix-subject")
