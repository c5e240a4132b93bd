"""``/api/v1/``: each app contributes its routes through its own ``api/urls.py``."""

from django.urls import path

from console.api.views import CurrentUserView

urlpatterns = [
    path("me/", CurrentUserView.as_view(), name="api-me"),
]
