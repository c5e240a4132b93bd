"""UI routes of the endpoints app (namespace ``endpoints``)."""

from endpoints.views import endpoint, registry

app_name = "endpoints"

urlpatterns = [*registry.urlpatterns, *endpoint.urlpatterns]
