"""Access control: users, teams, roles, grants, API tokens, ext_authz and the access pages.

Sits between the framework (``console``) and the domain (``endpoints``, ``monitoring``): it
imports the framework and the audit trail, never the domain. Grants point at domain objects
through typed references; the domain declares its protected models with
``console.permissions.protect()``.
"""
