"""UI routes of the endpoints app (namespace ``endpoints``)."""

from endpoints.views import (
               admin,
               changes,
               connections,
               endpoint,
               lifecycle,
               nim,
               operations,
               registry,
               signals,
)

app_name = "endpoints"

# The change routes come first: "endpoints/-/…/" must win over an endpoint's own pages.
urlpatterns = [*registry.urlpatterns, *admin.urlpatterns, *lifecycle.urlpatterns, *signals.urlpatterns,
               *connections.urlpatterns, *nim.urlpatterns, *changes.urlpatterns, *endpoint.urlpatterns, *operations.urlpatterns]
