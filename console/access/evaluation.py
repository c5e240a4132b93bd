"""Grant evaluation: how the chokepoint's ``visible()`` turns grants into SQL.

Guardian's direct-FK tables are the index: one row per (principal, permission, object), with
an ``expires_at`` column (a permission ends the second its last live grant expires, no
periodic task needed). Guardian alone knows nothing of expiry or project inheritance, which
is why nothing reads those tables but this module.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from console.permissions import Protection, protection_for


def _live(now) -> Q:
    return Q(expires_at__isnull=True) | Q(expires_at__gt=now)


def granted_object_ids(protection: Protection, user, action: str, now) -> list[models.QuerySet]:
    """Subqueries of object ids on which ``user`` holds ``<action>_<model>`` directly or
    through a group, from unexpired rows only."""
    codename = f"{action}_{protection.model._meta.model_name}"
    app_label = protection.model._meta.app_label
    perm = Q(permission__codename=codename, permission__content_type__app_label=app_label)
    direct = protection.user_perms.objects.filter(perm, _live(now), user=user).values("content_object_id")
    via_group = protection.group_perms.objects.filter(perm, _live(now), group__user=user).values(
        "content_object_id"
    )
    return [direct, via_group]


class GuardianGrantEvaluator:
    """One OR of IN-subqueries: the object's own rows and its parent's (bounded queries)."""

    def condition(self, protection: Protection, user, action: str, now) -> Q:
        condition = Q(pk__in=[])
        for subquery in granted_object_ids(protection, user, action, now):
            condition |= Q(pk__in=subquery)
        if protection.parent_field:
            parent_model = protection.model._meta.get_field(protection.parent_field).related_model
            for subquery in granted_object_ids(protection_for(parent_model), user, action, now):
                condition |= Q(**{f"{protection.parent_field}__in": subquery})
        return condition
