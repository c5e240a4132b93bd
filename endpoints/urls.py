"""UI routes of the endpoints app (namespace ``endpoints``)."""

from endpoints.views import admin, changes, endpoint, registry

app_name = "endpoints"

# The change routes come first: "endpoints/-/…/" must win over an endpoint's own pages.
urlpatterns = [*registry.urlpatterns, *admin.urlpatterns, *changes.urlpatterns, *endpoint.urlpatterns]
