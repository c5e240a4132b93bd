"""The framework's pages: sign-in and sign-out, API documentation, API 404s, the favicon, and
the error answers (JSON under /api/, Django's pages elsewhere).
The home page and the admin overview belong to the portal (``console.portal.views``)."""

from __future__ import annotations

from csp.decorators import csp_update
from django.contrib.auth import views as auth_views
from django.http import HttpResponsePermanentRedirect, JsonResponse
from django.templatetags.static import static
from django.utils.decorators import method_decorator
from django.views import csrf as csrf_views
from django.views import defaults
from django.views.decorators.csrf import csrf_exempt
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


@csrf_exempt  # it changes nothing; a POST without a CSRF token must still learn the route is wrong
def api_not_found(request, rest: str = ""):
    """Any /api/… path no API route matched: the API's JSON error body, not the HTML 404
    page (clients parse the body)."""
    return JsonResponse({"detail": f"No API route matches /api/{rest}. See /api/docs/ for the routes.",
                         "errors": {}}, status=404)


def favicon(request):
    """Browsers ask for /favicon.ico on pages that name no icon (the Django admin's)."""
    return HttpResponsePermanentRedirect(static("img/favicon.svg"))


# --- error answers: the API's JSON body under /api/, Django's pages elsewhere ------------------
# The API's own views answer errors through DRF's exception handler (console/api/errors.py).
# These cover what reaches Django's handlers instead: an exception a view did not handle (500),
# a request refused before any view (400: bad Host header, too large a body; CSRF: 403), and a
# PermissionDenied or Http404 from a plain Django view under /api/.

def _is_api(request) -> bool:
    return request.path.startswith("/api/")


def _api_error(status: int, detail: str) -> JsonResponse:
    return JsonResponse({"detail": detail, "errors": {}}, status=status)


def bad_request(request, exception=None):
    if _is_api(request):
        return _api_error(400, "Bad request.")
    return defaults.bad_request(request, exception)


def permission_denied(request, exception=None):
    if _is_api(request):
        message = str(exception) if exception is not None and str(exception) else "You may not do this."
        return _api_error(403, message)
    return defaults.permission_denied(request, exception)


def page_not_found(request, exception=None):
    if _is_api(request):
        return _api_error(404, "Not found.")
    return defaults.page_not_found(request, exception)


def server_error(request):
    if _is_api(request):
        return _api_error(500, "The console failed to answer this request; the error is in its log.")
    return defaults.server_error(request)


def csrf_failure(request, reason: str = ""):
    """``CSRF_FAILURE_VIEW``: a JSON 403 under /api/ (a session without its CSRF token),
    Django's page elsewhere."""
    if _is_api(request):
        return _api_error(403, f"CSRF check failed: {reason or 'no valid CSRF token'}. Send the X-CSRFToken "
                               "header with a session, or use an API token.")
    return csrf_views.csrf_failure(request, reason)
