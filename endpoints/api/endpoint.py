"""``/api/v1/endpoints/``: endpoints, their plans, revisions and lifecycle actions.

The viewset subclasses the framework's scoped base (``console.api.viewsets``): reads start
from the permission chokepoint (the list is restricted, then filtered by
``endpoints.filtersets.EndpointFilterSet``, before pagination); writes
need ``deploy`` on the endpoint (or, to create, on the project) and go through the services,
which validate, audit, write a revision and enqueue reconciliation after commit. A plan is
computed without storing anything.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.response import Response

from console.api.viewsets import ProtectedGenericViewSet
from endpoints import selectors
from endpoints.api.endpoint_serializers import (
    EndpointCreateSerializer,
    EndpointSerializer,
    EndpointUpdateSerializer,
    PlanSerializer,
    RevisionSerializer,
    RollbackSerializer,
    plan_data,
)
from endpoints.filtersets import EndpointFilterSet, ListFilterMixin
from endpoints.models import Endpoint
from endpoints.planning import new_endpoint, plan_for, validate_proposed
from endpoints.services.endpoints import (
    endpoint_create,
    endpoint_delete,
    endpoint_promote_canary,
    endpoint_rollback,
    endpoint_set_state,
    endpoint_update,
)


@extend_schema_view(
    list=extend_schema(
        summary="Endpoints you may see",
        parameters=[
            OpenApiParameter("project", OpenApiTypes.STR, description="Project name or id."),
            OpenApiParameter("phase", OpenApiTypes.STR, description="Observed phase (Pending, Deploying, Ready, "
                                                                    "Degraded, Failed, Stopped, Unknown)."),
            OpenApiParameter("state", OpenApiTypes.STR, description="active, stopped or deleting."),
            OpenApiParameter("search", OpenApiTypes.STR, description="Part of the endpoint or model name."),
        ],
    ),
    retrieve=extend_schema(summary="One endpoint"),
)
class EndpointViewSet(ListFilterMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, ProtectedGenericViewSet):
    """Endpoints: each one KServe InferenceService, changed only through the services. The
    base viewset finds an endpoint among those the caller may see (404 otherwise) and checks
    ``deploy`` for every write and action (403 without it)."""

    serializer_class = EndpointSerializer
    lookup_value_regex = r"\d+"
    queryset = selectors.endpoint_queryset().order_by("project__name", "name")
    filterset_class = EndpointFilterSet

    def _respond(self, endpoint: Endpoint, code: int = status.HTTP_200_OK) -> Response:
        # The endpoint was just found through the chokepoint (or created by the caller): read
        # it back fresh, after the service's writes.
        fresh = selectors.endpoint_queryset().get(pk=endpoint.pk)
        return Response(EndpointSerializer(fresh, context=self.get_serializer_context()).data, status=code)

    # --- writes ------------------------------------------------------------------------------
    @extend_schema(summary="Create an endpoint", request=EndpointCreateSerializer,
                   responses={201: EndpointSerializer})
    def create(self, request):
        serializer = EndpointCreateSerializer(data=request.data, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        endpoint = endpoint_create(actor=request.user, project=data.pop("project"), name=data.pop("name"),
                                   model_version=data.pop("model_version"), **data)
        return self._respond(endpoint, status.HTTP_201_CREATED)

    @extend_schema(summary="Change an endpoint", request=EndpointUpdateSerializer,
                   responses={200: EndpointSerializer})
    def partial_update(self, request, pk=None):
        endpoint = self.get_object()
        serializer = EndpointUpdateSerializer(data=request.data, endpoint=endpoint,
                                              context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        endpoint = endpoint_update(actor=request.user, endpoint=endpoint, **serializer.validated_data)
        return self._respond(endpoint)

    @extend_schema(summary="Delete an endpoint", request=None, responses={202: EndpointSerializer},
                   description="Marks the endpoint for deletion; a worker deletes the InferenceService, then "
                               "the endpoint.")
    def destroy(self, request, pk=None):
        endpoint = endpoint_delete(actor=request.user, endpoint=self.get_object())
        return self._respond(endpoint, status.HTTP_202_ACCEPTED)

    # --- plans ---------------------------------------------------------------------------------
    @extend_schema(summary="Plan a change", operation_id="endpoints_plan_change", request=EndpointUpdateSerializer,
                   responses={200: PlanSerializer},
                   description="What the proposed changes would do (desired-field diff, manifest diff against the "
                               "live object, the API server's dry-run verdict, impact). Nothing is stored.")
    @action(detail=True, methods=["post"], url_path="plan")
    def plan(self, request, pk=None):
        current = self.get_object()
        serializer = EndpointUpdateSerializer(data=request.data, endpoint=current,
                                              context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        proposed = selectors.endpoint_queryset().get(pk=current.pk)
        for name, value in serializer.validated_data.items():
            setattr(proposed, name, value)
        return self._plan_response(proposed, current)

    @extend_schema(summary="Plan a new endpoint", operation_id="endpoints_plan_new", request=EndpointCreateSerializer,
                   responses={200: PlanSerializer},
                   description="What creating this endpoint would do. Nothing is stored.")
    @action(detail=False, methods=["post"], url_path="plan")
    def plan_create(self, request):
        serializer = EndpointCreateSerializer(data=request.data, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        proposed = new_endpoint(created_by=request.user, **serializer.validated_data)
        return self._plan_response(proposed, None)

    def _plan_response(self, proposed: Endpoint, current: Endpoint | None) -> Response:
        error = validate_proposed(proposed, current=current, user=self.request.user)
        if error is not None:
            raise error
        plan, note = plan_for(proposed, current=current)
        return Response(PlanSerializer(plan_data(plan, cluster_note=note)).data)

    # --- history and lifecycle ---------------------------------------------------------------------
    @extend_schema(summary="Revisions of an endpoint", responses={200: RevisionSerializer(many=True)},
                   filters=False)
    @action(detail=True, methods=["get"])
    def revisions(self, request, pk=None):
        endpoint = self.get_object()
        page = self.paginate_queryset(selectors.endpoint_revisions(endpoint=endpoint))
        return self.get_paginated_response(RevisionSerializer(page, many=True).data)

    @extend_schema(summary="Roll back to a revision", request=RollbackSerializer,
                   responses={200: EndpointSerializer},
                   description="A new generation with the desired state of an earlier revision.")
    @action(detail=True, methods=["post"])
    def rollback(self, request, pk=None):
        endpoint = self.get_object()
        serializer = RollbackSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        generation = serializer.validated_data["generation"]
        revision = selectors.endpoint_revisions(endpoint=endpoint).filter(generation=generation).first()
        if revision is None:
            raise ValidationError({"generation": [f"The endpoint has no revision with generation {generation}."]})
        return self._respond(endpoint_rollback(actor=request.user, endpoint=endpoint, revision=revision))

    @extend_schema(summary="Stop an endpoint", request=None, responses={200: EndpointSerializer},
                   description="KServe deletes the pods and keeps the InferenceService.")
    @action(detail=True, methods=["post"])
    def stop(self, request, pk=None):
        return self._respond(endpoint_set_state(actor=request.user, endpoint=self.get_object(),
                                                         stopped=True))

    @extend_schema(summary="Start a stopped endpoint", request=None, responses={200: EndpointSerializer})
    @action(detail=True, methods=["post"])
    def start(self, request, pk=None):
        return self._respond(endpoint_set_state(actor=request.user, endpoint=self.get_object(),
                                                         stopped=False))

    @extend_schema(summary="Promote the canary", request=None, responses={200: EndpointSerializer},
                   description="The canary version becomes the endpoint's model version with all traffic.")
    @action(detail=True, methods=["post"])
    def promote(self, request, pk=None):
        return self._respond(endpoint_promote_canary(actor=request.user, endpoint=self.get_object()))


def register(router) -> None:
    router.register("endpoints", EndpointViewSet, basename="endpoint")


extra_urlpatterns: list = []
