"""``/api/v1/audit/``: the compliance API.

- ``events/`` search (same filters as the page: start, end, actor, action, target, target_type,
  target_id, project, endpoint (id), source, outcome, q), cursor-paginated newest first;
  ``events/{id}/``; ``events/export/csv/`` and ``events/export/jsonl/`` (streamed, audited).
  Auditors see every event, project owners their projects' events, others none (403 on the
  list, 404 on an event).
- ``seals/`` and ``verify/`` (POST: run the full verification, audited): auditors.
- ``ingest-batches/`` (auditors) and ``ingest-batches/{id}/retry/`` (platform admins).
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import CursorPagination
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from audit import exports, ingest, selectors, services
from audit.api.serializers import (
    AuditEventSerializer,
    AuditSealSerializer,
    IngestBatchSerializer,
    VerificationSerializer,
)
from audit.filters import EventFilterForm
from audit.models import AuditSeal, IngestBatch
from audit.verify import verify
from console.api.permissions import IsPlatformAdmin

FILTER_PARAMETERS = [
    OpenApiParameter("start", OpenApiTypes.DATETIME, description="Events at or after this time."),
    OpenApiParameter("end", OpenApiTypes.DATETIME, description="Events before this time."),
    OpenApiParameter("actor", OpenApiTypes.STR, description="Actor name (substring) or actor id."),
    OpenApiParameter("action", OpenApiTypes.STR, description="Action prefix, e.g. endpoint. or k8s.patch."),
    OpenApiParameter("target", OpenApiTypes.STR, description="Target description (substring) or target id."),
    OpenApiParameter("target_type", OpenApiTypes.STR, description="Exact target type (endpoint, grant, ...)."),
    OpenApiParameter("target_id", OpenApiTypes.STR, description="Exact target id."),
    OpenApiParameter("project", OpenApiTypes.STR, description="Project name."),
    OpenApiParameter("endpoint", OpenApiTypes.INT, description="Endpoint id: its console, Kubernetes and "
                                                               "inference events."),
    OpenApiParameter("source", OpenApiTypes.STR, enum=["console", "kubernetes", "authz", "inference"]),
    OpenApiParameter("outcome", OpenApiTypes.STR, enum=["success", "failure", "denied", "error"]),
    OpenApiParameter("q", OpenApiTypes.STR, description="Free text over names, targets and details."),
]


class CanReadTrail(BasePermission):
    message = "Only auditors and project owners may read the audit trail."

    def has_permission(self, request, view) -> bool:
        return selectors.can_view_any(request.user)


class IsAuditor(BasePermission):
    message = "Only auditors may do this."

    def has_permission(self, request, view) -> bool:
        return selectors.can_view_all(request.user)


class EventCursorPagination(CursorPagination):
    ordering = ("-occurred_at", "-id")
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


class _StreamRenderer(BaseRenderer):
    """Lets content negotiation accept the export media types (the view streams them itself)."""

    format = None
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return data


class CSVRenderer(_StreamRenderer):
    media_type = "text/csv"
    format = "csv"


class JSONLinesRenderer(_StreamRenderer):
    media_type = "application/x-ndjson"
    format = "jsonl"


def _filters(request):
    form = EventFilterForm(request.query_params or None, user=request.user)
    if form.is_bound and not form.is_valid():
        raise ValidationError({field: list(messages) for field, messages in form.errors.items()})
    return form.filters()


@extend_schema_view(
    list=extend_schema(summary="Search the audit trail", parameters=FILTER_PARAMETERS),
    retrieve=extend_schema(summary="One audit event"),
)
class AuditEventViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = AuditEventSerializer
    pagination_class = EventCursorPagination
    permission_classes = [IsAuthenticated]

    def get_permissions(self):
        if self.action == "retrieve":
            return [IsAuthenticated()]
        return [IsAuthenticated(), CanReadTrail()]

    def get_queryset(self):
        if self.action == "retrieve":
            return selectors.event_list_visible_to(user=self.request.user)
        return selectors.event_search(user=self.request.user, filters=_filters(self.request))

    @extend_schema(
        summary="Export the filtered trail (streamed; the export is audited)",
        parameters=[OpenApiParameter("fmt", OpenApiTypes.STR, OpenApiParameter.PATH, enum=["csv", "jsonl"]),
                    *FILTER_PARAMETERS],
        responses={(200, "text/csv"): OpenApiTypes.BINARY, (200, "application/x-ndjson"): OpenApiTypes.BINARY},
    )
    @action(detail=False, methods=["get"], url_path=r"export/(?P<fmt>csv|jsonl)", pagination_class=None,
            renderer_classes=[JSONRenderer, CSVRenderer, JSONLinesRenderer])
    def export(self, request, fmt: str):
        return exports.export_response(user=request.user, fmt=fmt, filters=_filters(request))


@extend_schema_view(list=extend_schema(summary="Seals of the trail (auditors)"))
class AuditSealViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    serializer_class = AuditSealSerializer
    permission_classes = [IsAuthenticated, IsAuditor]

    def get_queryset(self):
        return AuditSeal.objects.defer("fingerprints").order_by("-sequence")


class VerifyView(APIView):
    """Run the full verification now (auditors); the run is recorded in the trail."""

    permission_classes = [IsAuthenticated, IsAuditor]
    required_token_scope = "read"  # noqa: S105 - a scope name; verifying changes nothing but its own record

    @extend_schema(summary="Verify the audit trail", request=None, responses={200: VerificationSerializer})
    def post(self, request):
        report = verify()
        services.record_verification(actor=request.user, report=report)
        return Response(VerificationSerializer(report.summary()).data)


@extend_schema_view(
    list=extend_schema(summary="Ingest batches (auditors)", parameters=[
        OpenApiParameter("status", OpenApiTypes.STR, enum=IngestBatch.Status.values),
        OpenApiParameter("kind", OpenApiTypes.STR, enum=IngestBatch.Kind.values),
    ]),
    retrieve=extend_schema(summary="One ingest batch with its error"),
)
class IngestBatchViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = IngestBatchSerializer
    permission_classes = [IsAuthenticated, IsAuditor]

    def get_queryset(self):
        status_filter = self.request.query_params.get("status", "")
        kind = self.request.query_params.get("kind", "")
        return selectors.batch_list(
            status=status_filter if status_filter in IngestBatch.Status.values else "",
            kind=kind if kind in IngestBatch.Kind.values else "",
        )

    @extend_schema(summary="Queue a failed batch again (platform admins)", request=None,
                   responses={202: IngestBatchSerializer, 409: OpenApiResponse(description="Not a failed batch.")})
    @action(detail=True, methods=["post"], permission_classes=[IsAuthenticated, IsPlatformAdmin])
    def retry(self, request, pk=None):
        batch = self.get_object()
        try:
            batch = ingest.batch_retry(actor=request.user, batch=batch)
        except ValueError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return Response(IngestBatchSerializer(batch).data, status=status.HTTP_202_ACCEPTED)


