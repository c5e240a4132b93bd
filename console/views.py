"""Console-wide pages: home, sign-in, API documentation."""

from __future__ import annotations

from csp.decorators import csp_update
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.utils.decorators import method_decorator
from drf_spectacular.views import SpectacularRedocView, SpectacularSwaggerSplitView

from console.forms import LoginForm


@login_required
def home(request):
    return render(request, "console/home.html", {})


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
