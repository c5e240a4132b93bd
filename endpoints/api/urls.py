"""``/api/v1/`` routes of the endpoints app."""

from rest_framework.routers import DefaultRouter

from endpoints.api import endpoint, registry

router = DefaultRouter(trailing_slash=True)
registry.register(router)
endpoint.register(router)

urlpatterns = [*router.urls, *registry.extra_urlpatterns, *endpoint.extra_urlpatterns]
