"""The Django admin (/django-admin/) is read-only, and has no page that changes permissions.

Who may do what is decided by grants, teams and global roles, which the console's own access
pages and API change through services that audit every change in the same transaction
(docs/access-control.md). Django's admin writes rows directly, with no audit event: adding
"view audit event" to a group through it let the group's members read the whole trail, and
nothing recorded who did it. So the admin keeps no page that could change access:

- ``auth.Group`` (global roles and teams, with their model permissions) is not registered: roles
  are given on the Users pages, teams are managed on the Teams pages, model permissions are the
  roles' own (``console.access.roles``) and never edited by hand;
- the custom user model was never registered (people are managed on the Users pages);
- every other page (django-axes' sign-in attempts and logs) is view-only: unlocking someone is
  the audited "Unlock" on their user page.

An app that registers a model later gets the same treatment, since ``lock_down`` runs after every
``admin.py`` has been imported (``PortalConfig.ready``, the last app).
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.models import Group

REMOVED = (Group,)


def _refuse(*args, **kwargs) -> bool:
    return False


def lock_down(site: admin.AdminSite = admin.site) -> None:
    for model in REMOVED:
        if site.is_registered(model):
            site.unregister(model)
    for model_admin in site._registry.values():
        model_admin.has_add_permission = _refuse
        model_admin.has_change_permission = _refuse
        model_admin.has_delete_permission = _refuse
        model_admin.actions = ()
