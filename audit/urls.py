"""Routes of the audit app: the compliance pages (namespace ``audit``, under /audit/) and the
ingest receivers (namespace ``ingest``, under /ingest/; see console/urls.py)."""

from django.urls import path

from audit.views import ingest

app_name = "audit"

urlpatterns: list = []

ingest_urlpatterns = [
    path("kserve/<str:ingest_key>/", ingest.kserve_receiver, name="kserve"),
    path("kubernetes/", ingest.kubernetes_receiver, name="kubernetes"),
]
