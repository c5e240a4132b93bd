"""``/api/v1/`` routes of the endpoints app."""

from rest_framework.routers import DefaultRouter

from endpoints.api import connections, endpoint, nim, operations, registry, signals

router = DefaultRouter(trailing_slash=True)
registry.register(router)
endpoint.register(router)
operations.register(router)
connections.register(router)
signals.register(router)
nim.register(router)

urlpatterns = [*router.urls, *registry.extra_urlpatterns, *endpoint.extra_urlpatterns,
               *connections.extra_urlpatterns, *signals.extra_urlpatterns]
