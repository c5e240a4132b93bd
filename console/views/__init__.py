"""The framework's pages: sign-in and sign-out, API documentation, API 404s, the favicon.
The home page and the admin overview belong to the portal (``console.portal.views``)."""

from __future__ import annotations

from csp.decorators import csp_update
from django.contrib.auth import views as auth_views
from django.http import HttpResponsePermanentRedirect, JsonResponse
from django.templatetags.static import static
from django.utils.decorators import method_decorator
from drf_spectacular.views import SpectacularRedocView, SpectacularSwaggerSplitView

from console.forms import LoginForm


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
