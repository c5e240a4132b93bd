"""Access control: users, teams, roles, grants, API tokens, ext_authz and the access pages.

Sits above the domain (``endpoints``, ``monitoring``) and below the portal: grants are on
domain objects (real foreign keys), the access pages list them and ext_authz resolves
endpoints. The domain never imports this app; it declares its protected models with
``console.permissions.protect()``, and this app registers how grants are evaluated
(``AccessConfig.ready``). See docs/architecture.md.
"""
