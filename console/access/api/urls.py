"""``/api/v1/``: each app contributes its routes through its own ``api/urls.py``."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from console.access.api import views as access
from console.access.api.me import CurrentUserView

router = SimpleRouter(trailing_slash=True)
access.register(router)

urlpatterns = [
    path("me/", CurrentUserView.as_view(), name="api-me"),
    path("access/check/", access.AccessCheckView.as_view(), name="api-access-check"),
    *router.urls,
]
