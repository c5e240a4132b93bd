"""Console-wide pages: home, sign-in, API documentation."""

from __future__ import annotations

from csp.decorators import csp_update
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpResponsePermanentRedirect, JsonResponse
from django.shortcuts import render
from django.templatetags.static import static
from django.utils.decorators import method_decorator
from drf_spectacular.views import SpectacularRedocView, SpectacularSwaggerSplitView

from console.forms import LoginForm
from console.permissions import is_platform_admin


@login_required
def home(request):
    """What to look at first, by who is signed in (console/home.py): their endpoints and what
    needs attention; for platform admins expiring grants, grant changes and reconciler alerts;
    for auditors the health of the audit trail."""
    from console.home import EXPIRY_WINDOW_DAYS, home_for

    return render(request, "console/home.html", {**home_for(request.user), "expiry_days": EXPIRY_WINDOW_DAYS})


def platform_admin_required(view):
    """Signed-in platform admins only; anyone else signed in gets 403 (the page's existence
    is not a secret), anonymous visitors go to the login page."""

    @login_required
    def wrapper(request, *args, **kwargs):
        if not is_platform_admin(request.user):
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return wrapper


@platform_admin_required
def admin_overview(request):
    from endpoints import selectors as endpoint_selectors

    return render(request, "console/admin_overview.html", {
        "counts": endpoint_selectors.platform_counts(),
        "alerts": list(endpoint_selectors.alerts_active()),
    })


class LoginView(auth_views.LoginView):
    template_name = "registration/login.html"
    authentication_form = LoginForm
    redirect_authenticated_user = True


class LogoutView(auth_views.LogoutView):
    """POST-only sign-out (Django 5 refuses GET, so a link or image cannot sign users out)."""


# Swagger UI and Redoc style their widgets with inline styles and Redoc runs its search in a
# blob: worker; scripts stay same-origin only (the Swagger init script is served as a file).
_docs_csp = csp_update({"style-src": ["'unsafe-inline'"], "worker-src": ["blob:"], "img-src": ["data:"]})


@method_decorator(_docs_csp, name="dispatch")
class SwaggerView(SpectacularSwaggerSplitView):
    pass


@method_decorator(_docs_csp, name="dispatch")
class RedocView(SpectacularRedocView):
    template_name = "api/redoc.html"


def api_not_found(request, rest: str = ""):
    """Any /api/… path no API route matched: the API's JSON error body, not the HTML 404
    page (clients parse the body)."""
    return JsonResponse({"detail": f"No API route matches /api/{rest}. See /api/docs/ for the routes.",
                         "errors": {}}, status=404)


def favicon(request):
    """Browsers ask for /favicon.ico on pages that name no icon (the Django admin's)."""
    return HttpResponsePermanentRedirect(static("img/favicon.svg"))
