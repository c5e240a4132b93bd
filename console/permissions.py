"""The permission chokepoint: every read of a protected object goes through here.

Guardian's direct-FK tables are the index that enforcement queries, but guardian alone
knows nothing of project inheritance or grant expiry, so views, API viewsets, form choice
fields, serializers and dashboards never query protected models directly. They call:

- ``visible(queryset, user, action)``: the rows the user may ``action`` (filtered in SQL,
  before pagination, with a bounded number of queries: one OR of IN-subqueries);
- ``get_visible_or_404(queryset, user, action, **lookup)``: one object; invisible → 404,
  visible but not allowed to ``action`` → 403 (PermissionDenied);
- ``PermissionChecker``: per-request row flags (``can_edit``) for a page of objects, one
  query per action, never one per row.

A protected model is registered with ``protect()``: its guardian user/group tables (which
carry an ``expires_at`` column: a grant ends the second it expires, no periodic task
needed) and, optionally, the foreign key to a parent whose grants also apply (an endpoint
inherits its project's grants). Actions are words shared by all protected models: the
permission codename is ``<action>_<model_name>`` (``view_endpoint``, ``deploy_project``).
Platform admins (``console.administer_platform``) and superusers see and may do everything.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.core.exceptions import PermissionDenied
from django.db import models
from django.db.models import Q
from django.http import Http404
from django.utils import timezone

ADMIN_PERMISSION = "console.administer_platform"


@dataclass(frozen=True)
class Protection:
    model: type[models.Model]
    user_perms: type[models.Model]
    group_perms: type[models.Model]
    parent_field: str | None = None


_registry: dict[type[models.Model], Protection] = {}


def protect(model, *, user_perms, group_perms, parent_field: str | None = None) -> None:
    """Declare ``model`` protected by object permissions (called from the owning app's
    ``AppConfig.ready``)."""
    _registry[model] = Protection(model, user_perms, group_perms, parent_field)


def protection_for(model) -> Protection:
    try:
        return _registry[model]
    except KeyError:
        raise LookupError(f"{model.__name__} is not registered with console.permissions.protect()") from None


def is_platform_admin(user) -> bool:
    return bool(user and user.is_authenticated and user.is_active and (user.is_superuser or user.has_perm(ADMIN_PERMISSION)))


def _live(now) -> Q:
    return Q(expires_at__isnull=True) | Q(expires_at__gt=now)


def _granted_object_ids(protection: Protection, user, action: str, now) -> list[models.QuerySet]:
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


def visibility_filter(model, user, action: str = "view", *, now=None) -> Q:
    """The WHERE clause selecting rows of ``model`` that ``user`` may ``action``."""
    protection = protection_for(model)
    now = now or timezone.now()
    condition = Q(pk__in=[])
    for subquery in _granted_object_ids(protection, user, action, now):
        condition |= Q(pk__in=subquery)
    if protection.parent_field:
        parent_model = model._meta.get_field(protection.parent_field).related_model
        parent = protection_for(parent_model)
        for subquery in _granted_object_ids(parent, user, action, now):
            condition |= Q(**{f"{protection.parent_field}__in": subquery})
    return condition


def visible(queryset: models.QuerySet, user, action: str = "view") -> models.QuerySet:
    """Rows of ``queryset`` the user may ``action``; nothing for anonymous or inactive users."""
    if user is None or not user.is_authenticated or not user.is_active:
        return queryset.none()
    if is_platform_admin(user):
        return queryset
    return queryset.filter(visibility_filter(queryset.model, user, action))


def can(user, obj: models.Model, action: str) -> bool:
    return visible(type(obj)._default_manager.filter(pk=obj.pk), user, action).exists()


def get_visible_or_404(queryset: models.QuerySet, user, action: str = "view", **lookup) -> models.Model:
    """One object the user can see, else 404; if ``action`` is more than viewing and the user
    may not do it, 403."""
    obj = visible(queryset, user, "view").filter(**lookup).first()
    if obj is None:
        raise Http404(f"No {queryset.model._meta.verbose_name} matches the given query.")
    if action != "view" and not can(user, obj, action):
        raise PermissionDenied
    return obj


class PermissionChecker:
    """Row flags for one request: ``checker.prefetch(objects, ["deploy", "delete"])`` costs one
    query per action; ``checker.can(obj, "deploy")`` then costs none."""

    def __init__(self, user):
        self.user = user
        self._allowed: dict[tuple[type, str], set] = {}
        self._checked: dict[tuple[type, str], set] = {}

    def prefetch(self, objects: Iterable[models.Model], actions: Iterable[str]) -> None:
        by_model: dict[type, list] = {}
        for obj in objects:
            by_model.setdefault(type(obj), []).append(obj.pk)
        for model, pks in by_model.items():
            for action in actions:
                allowed = visible(model._default_manager.filter(pk__in=pks), self.user, action)
                self._allowed.setdefault((model, action), set()).update(allowed.values_list("pk", flat=True))
                self._checked.setdefault((model, action), set()).update(pks)

    def can(self, obj: models.Model, action: str) -> bool:
        if is_platform_admin(self.user):
            return True
        key = (type(obj), action)
        if obj.pk not in self._checked.get(key, ()):
            self.prefetch([obj], [action])
        return obj.pk in self._allowed[key]
