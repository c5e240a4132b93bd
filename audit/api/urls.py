"""``/api/v1/audit/`` routes."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from audit.api import views

router = SimpleRouter(trailing_slash=True)
router.register("audit/events", views.AuditEventViewSet, basename="audit-event")
router.register("audit/seals", views.AuditSealViewSet, basename="audit-seal")
router.register("audit/ingest-batches", views.IngestBatchViewSet, basename="audit-ingest-batch")

urlpatterns = [
    *router.urls,
    path("audit/verify/", views.VerifyView.as_view(), name="audit-verify"),
]
