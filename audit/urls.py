"""Routes of the audit app: the compliance pages (namespace ``audit``, under /audit/) and the
ingest receivers (namespace ``ingest``, under /ingest/; see console/urls.py)."""

from django.urls import path

from audit.views import ingest, trail

app_name = "audit"

urlpatterns = [
    path("", trail.event_list, name="event-list"),
    path("events/<id:pk>/", trail.event_detail, name="event-detail"),
    path("objects/<str:target_type>/<path:target_id>/", trail.object_history, name="object-history"),
    path("export/<str:fmt>/", trail.event_export, name="event-export"),
    path("integrity/", trail.integrity, name="integrity"),
    path("ingest/", trail.batch_list, name="batch-list"),
    path("ingest/<id:pk>/", trail.batch_detail, name="batch-detail"),
    path("ingest/<id:pk>/retry/", trail.batch_retry, name="batch-retry"),
]

ingest_urlpatterns = [
    path("kserve/<str:ingest_key>/", ingest.kserve_receiver, name="kserve"),
    path("kubernetes/", ingest.kubernetes_receiver, name="kubernetes"),
]
