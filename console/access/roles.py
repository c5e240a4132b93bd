"""Global roles: Django groups carrying model-level permissions.

Object roles (project/endpoint Viewer, Deployer, Owner, Caller) are bundles of object
permissions and come with the access-control models; the global ones are plain groups.
"""

from __future__ import annotations

from django.contrib.auth.models import Group, Permission

PLATFORM_ADMIN = "Platform admin"
AUDITOR = "Auditor"
INGESTER = "Ingester"

# role name -> "app_label.codename" permissions it carries
GLOBAL_ROLES: dict[str, tuple[str, ...]] = {
    PLATFORM_ADMIN: ("console.administer_platform", "audit.view_auditevent"),
    AUDITOR: ("audit.view_auditevent",),
    INGESTER: ("console.ingest_logs",),
}


def ensure_global_roles() -> None:
    """Create the global role groups and give them exactly their permissions (idempotent)."""
    for name, perms in GLOBAL_ROLES.items():
        group, _ = Group.objects.get_or_create(name=name)
        wanted = []
        for dotted in perms:
            app_label, codename = dotted.split(".", 1)
            perm = Permission.objects.filter(content_type__app_label=app_label, codename=codename).first()
            if perm is not None:
                wanted.append(perm)
        group.permissions.set(wanted)


def ensure_global_roles_after_migrate(**kwargs) -> None:
    # Permissions are created by post_migrate too; run once they exist (the audit app may
    # migrate after console), hence the lookup tolerating missing rows above.
    ensure_global_roles()
