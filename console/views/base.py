"""Base views that apply the permission chokepoint themselves.

A list or detail page over a model is written by subclassing ``ProtectedListView`` or
``ProtectedDetailView`` and naming the rows with ``queryset``/``model`` or
``get_base_queryset()``: the base class passes them through ``console.permissions.restrict``
for the signed-in user before any view code sees them, then through ``filter_queryset`` (a
list's FilterSet), which can only narrow them. Overriding ``get_queryset`` itself is
refused when the class is defined (it would bypass the chokepoint); a view that really must
see rows unscoped says so with ``chokepoint_exempt = "<why>"``, which a reviewer can grep for.
"""

from __future__ import annotations

from functools import wraps

from django.contrib.auth.mixins import LoginRequiredMixin
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.views.generic import DetailView, ListView

from console.permissions import ChokepointScoped, can, is_platform_admin

ADMIN_ONLY_MESSAGE = "Only platform admins may open this page."


class ChokepointMixin(ChokepointScoped):
    """Scopes ``get_queryset()`` through ``restrict(…, permission_action)``.

    ``permission_action`` is what a row must allow to be listed or opened (``view`` unless the
    page acts on it); ``chokepoint_exempt`` (a reason string) turns the scoping off.
    """

    permission_action = "view"
    _scoping_base = True

    def scoping_action(self) -> str:
        """The action rows are scoped by: ``permission_action`` for lists."""
        return self.permission_action

    def get_queryset(self):
        return self.filter_queryset(self.restrict_rows(self.get_base_queryset(), self.scoping_action()))

    def filter_queryset(self, queryset):
        """Narrow the scoped rows by the request (list filters, a search box): the identity
        here. It runs after the chokepoint, so it can only narrow what the user may see — the
        place for what would otherwise tempt a subclass to override ``get_queryset``."""
        return queryset


class ProtectedListView(LoginRequiredMixin, ChokepointMixin, ListView):
    """A list of the rows the signed-in user may ``permission_action``. With
    ``filterset_class`` (a django-filter FilterSet, the one the API's list uses) the query
    string narrows the scoped rows, and the page gets the bound FilterSet as ``filter`` (its
    form, with any message about a bad value, as ``filter.form``)."""

    filterset_class = None
    filterset = None

    def get_filterset_kwargs(self, queryset) -> dict:
        return {"data": self.request.GET or None, "queryset": queryset, "request": self.request}

    def filter_queryset(self, queryset):
        if self.filterset_class is None:
            return queryset
        self.filterset = self.filterset_class(**self.get_filterset_kwargs(queryset))
        return self.filterset.qs

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        if self.filterset is not None:
            context.setdefault("filter", self.filterset)
        return context


class ProtectedDetailView(LoginRequiredMixin, ChokepointMixin, DetailView):
    """One object the user can see (else 404); if ``permission_action`` is more than
    ``view`` and the user may see but not do it, 403."""

    def scoping_action(self) -> str:
        # Find the object among those the user can see (404 otherwise), then check the action.
        return "view"

    def get_object(self, queryset=None):
        obj = super().get_object(queryset)
        if not self.chokepoint_exempt and self.permission_action != "view" and not can(
            self.request.user, obj, self.permission_action
        ):
            raise PermissionDenied
        return obj


def platform_admin_required(view):
    """The one page gate for platform admins: anonymous visitors go to sign-in, anyone else
    signed in gets 403 with the reason."""

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not is_platform_admin(request.user):
            raise PermissionDenied(ADMIN_ONLY_MESSAGE)
        return view(request, *args, **kwargs)

    return wrapped


class PlatformAdminRequiredMixin(LoginRequiredMixin):
    """``platform_admin_required`` for class-based views."""

    def dispatch(self, request, *args, **kwargs):
        if request.user.is_authenticated and not is_platform_admin(request.user):
            raise PermissionDenied(ADMIN_ONLY_MESSAGE)
        return super().dispatch(request, *args, **kwargs)
