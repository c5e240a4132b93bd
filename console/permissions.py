"""The permission chokepoint: every read of a protected object goes through here.

This module is the framework's side of access control: the *interface* every view, API
viewset, form choice field, serializer and dashboard uses. It imports neither the access app
nor the domain. The domain declares what is protected (``protect()``, from its
``AppConfig.ready``); the access app registers how grants are evaluated
(``register_grant_evaluator()``, from its own ``ready``). Until an evaluator is registered
only platform admins see protected rows: the chokepoint fails closed.

- ``visible(queryset, user, action)``: the rows the user may ``action`` (filtered in SQL,
  before pagination, with a bounded number of queries);
- ``restrict(queryset, user, action)``: the same for any model with an access rule — a
  protected model (grants), or one whose app registered a rule with ``register_scope()``;
  a model with no rule is refused loudly (``ImproperlyConfigured``), never shown unscoped.
  The base views (``console.views.base``) and viewsets (``console.api.viewsets``) call it, so
  a new view is scoped without calling it;
- ``get_visible_or_404(queryset, user, action, **lookup)``: one object; invisible → 404,
  visible but not allowed to ``action`` → 403 (PermissionDenied);
- ``PermissionChecker``: per-request row flags (``can_edit``) for a page of objects, one
  query per action, never one per row.

Actions are words shared by all protected models: the permission codename is
``<action>_<model_name>`` (``view_endpoint``, ``deploy_project``). Platform admins
(``console.administer_platform``) and superusers see and may do everything.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from django.db import models
from django.db.models import Q
from django.http import Http404
from django.utils import timezone

ADMIN_PERMISSION = "console.administer_platform"


@dataclass(frozen=True)
class Protection:
    """A protected model: its per-object permission tables (guardian's direct-FK user and group
    tables, each with an ``expires_at`` column) and, optionally, the foreign key to a parent
    whose grants also apply (an endpoint inherits its project's grants)."""

    model: type[models.Model]
    user_perms: type[models.Model]
    group_perms: type[models.Model]
    parent_field: str | None = None


class GrantEvaluator(Protocol):
    """How grants turn into a WHERE clause; registered by the access app."""

    def condition(self, protection: Protection, user, action: str, now) -> Q:
        """Rows of ``protection.model`` on which ``user`` holds ``action`` at ``now``
        (directly, through a team, or through the parent's grants)."""


_protected: dict[type[models.Model], Protection] = {}
_scopes: dict[type[models.Model], Callable] = {}
_evaluator: GrantEvaluator | None = None


def protect(model, *, user_perms, group_perms, parent_field: str | None = None) -> None:
    """Declare ``model`` protected by object permissions (called from the owning app's
    ``AppConfig.ready``)."""
    _protected[model] = Protection(model, user_perms, group_perms, parent_field)


def register_scope(model, scope: Callable) -> None:
    """Give ``model`` an access rule of its own: ``scope(queryset, user, action)`` returns
    the rows the user may ``action``. For models that are not granted per object (clusters
    readable by any signed-in user, audit events readable by auditors)."""
    _scopes[model] = scope


def register_grant_evaluator(evaluator: GrantEvaluator) -> None:
    """Called once by the access app at startup."""
    global _evaluator
    _evaluator = evaluator


def protection_for(model) -> Protection:
    try:
        return _protected[model]
    except KeyError:
        raise LookupError(f"{model.__name__} is not registered with console.permissions.protect()") from None


def is_protected(model) -> bool:
    return model in _protected


def actions_of(model) -> set[str]:
    """The actions objects of ``model`` define: ``view`` and each ``<action>_<model>`` of its
    ``Meta.permissions``."""
    return {"view"} | {code.split("_", 1)[0] for code, _ in model._meta.permissions}


def is_signed_in(user) -> bool:
    return bool(user is not None and user.is_authenticated and user.is_active)


def is_platform_admin(user) -> bool:
    return bool(is_signed_in(user) and (user.is_superuser or user.has_perm(ADMIN_PERMISSION)))


def visibility_filter(model, user, action: str = "view", *, now=None) -> Q:
    """The WHERE clause selecting rows of ``model`` that ``user`` may ``action``."""
    protection = protection_for(model)
    if _evaluator is None:
        return Q(pk__in=[])
    return _evaluator.condition(protection, user, action, now or timezone.now())


def visible(queryset: models.QuerySet, user, action: str = "view") -> models.QuerySet:
    """Rows of ``queryset`` the user may ``action``; nothing for anonymous or inactive users."""
    if not is_signed_in(user):
        return queryset.none()
    if is_platform_admin(user):
        return queryset
    return queryset.filter(visibility_filter(queryset.model, user, action))


def restrict(queryset: models.QuerySet, user, action: str = "view") -> models.QuerySet:
    """Rows of ``queryset`` the user may ``action`` under the model's access rule."""
    model = queryset.model
    if model in _protected:
        return visible(queryset, user, action)
    scope = _scopes.get(model)
    if scope is None:
        raise ImproperlyConfigured(
            f"{model._meta.label} has no access rule: protect() it, register_scope() it, or mark the "
            "view chokepoint_exempt with the reason."
        )
    if not is_signed_in(user):
        return queryset.none()
    return scope(queryset, user, action)


def can(user, obj: models.Model, action: str) -> bool:
    return restrict(type(obj)._default_manager.filter(pk=obj.pk), user, action).exists()


def get_visible_or_404(queryset: models.QuerySet, user, action: str = "view", **lookup) -> models.Model:
    """One object the user can see, else 404; if ``action`` is more than viewing and the user
    may not do it, 403."""
    obj = restrict(queryset, user, "view").filter(**lookup).first()
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
                allowed = restrict(model._default_manager.filter(pk__in=pks), self.user, action)
                self._allowed.setdefault((model, action), set()).update(allowed.values_list("pk", flat=True))
                self._checked.setdefault((model, action), set()).update(pks)

    def can(self, obj: models.Model, action: str) -> bool:
        if is_platform_admin(self.user):
            return True
        key = (type(obj), action)
        if obj.pk not in self._checked.get(key, ()):
            self.prefetch([obj], [action])
        return obj.pk in self._allowed[key]


class ChokepointScoped:
    """What the base views (``console.views.base``) and viewsets (``console.api.viewsets``)
    share: rows come from ``get_base_queryset()`` and leave through ``restrict_rows()``.
    Overriding ``get_queryset`` is refused when a subclass is defined — it would bypass the
    chokepoint — unless the class says why with ``chokepoint_exempt = "<why>"``."""

    chokepoint_exempt: str | None = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        scoping_base = cls.__dict__.get("_scoping_base", False)  # the framework's own mixins
        if "get_queryset" in cls.__dict__ and not scoping_base and not cls.__dict__.get("chokepoint_exempt"):
            raise TypeError(
                f"{cls.__qualname__} overrides get_queryset(), which would bypass the permission "
                "chokepoint: override get_base_queryset() instead, or set chokepoint_exempt = '<why>'."
            )

    def get_base_queryset(self):
        """The rows before scoping (``queryset``, or the model's default manager)."""
        return super().get_queryset()

    def restrict_rows(self, rows, action: str):
        return rows if self.chokepoint_exempt else restrict(rows, self.request.user, action)
