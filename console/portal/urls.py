"""The root URLconf. It lives in the portal, the top layer, because it is the one module that
puts every app's routes together (the framework's own views included)."""

from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView

from audit import urls as audit_urls
from console import health, views
from console.access import views as access_views
from console.access.authz import http
from console.portal import views as portal_views

# Error answers: JSON under /api/, Django's pages elsewhere (console/views).
handler400 = views.bad_request
handler403 = views.permission_denied
handler404 = views.page_not_found
handler500 = views.server_error

urlpatterns = [
    path("", portal_views.home, name="home"),
    # Sign-in and sign-out pages of the framework, with the identity provider's button and
    # RP-initiated logout added by access control.
    path("accounts/login/", access_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", access_views.LogoutView.as_view(), name="logout"),
    path("accounts/oidc/login/", access_views.oidc_login, name="oidc-login"),
    path("accounts/oidc/callback/", access_views.oidc_callback, name="oidc-callback"),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("api/v1/", include("console.access.api.urls")),
    path("api/v1/", include("endpoints.api.urls")),
    path("api/v1/", include("monitoring.api.urls")),
    path("api/v1/", include("audit.api.urls")),
    path("", include("endpoints.urls")),
    path("", include("monitoring.urls")),
    path("audit/", include("audit.urls")),
    path("ingest/", include((audit_urls.ingest_urlpatterns, "ingest"))),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", views.SwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/redoc/", views.RedocView.as_view(url_name="api-schema"), name="api-redoc"),
    re_path(r"^api/(?P<rest>.*)$", views.api_not_found, name="api-not-found"),
    # Browsers ask for /favicon.ico on pages that name no icon (the Django admin's).
    path("favicon.ico", views.favicon, name="favicon"),
    path("admin/", include(([path("", portal_views.admin_overview, name="admin-overview")], "portal"))),
    path("", include("console.access.urls")),
    # Envoy ext_authz checks (console/access/authz.py; normally answered by AuthzMiddleware first).
    re_path(r"^authz/check(?P<path>/.*)?$", http.authz_view, name="authz-check"),
    path("django-admin/", admin.site.urls),
]
