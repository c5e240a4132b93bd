"""``/api/v1/endpoints/<id>/pods/``, ``…/events/`` and ``…/logs/``: the Operations tab
(``endpoints.views.operations``) for API clients, with the same rules. Pods and events: anyone
who sees the endpoint. Logs: those who may deploy it; for everyone else the endpoint does not
exist (404), since logs can hold request data. A cluster that cannot answer gives 200 with
``error`` set, like the page."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.decorators import action
from rest_framework.response import Response

from console.api.viewsets import ProtectedGenericViewSet
from endpoints import operations as ops
from endpoints import selectors
from endpoints.services import operations as operations_service


class ContainerSerializer(serializers.Serializer):
    name = serializers.CharField()
    init = serializers.BooleanField()
    state = serializers.CharField()
    ready = serializers.BooleanField()
    restarts = serializers.IntegerField()


class PodSerializer(serializers.Serializer):
    name = serializers.CharField()
    component = serializers.CharField()
    revision = serializers.CharField()
    phase = serializers.CharField()
    status = serializers.CharField(help_text="kubectl's STATUS column (Init:CrashLoopBackOff, Running…).")
    ready = serializers.CharField(help_text="Ready containers / containers.")
    restarts = serializers.IntegerField()
    node = serializers.CharField()
    created = serializers.DateTimeField(allow_null=True)
    traffic_percent = serializers.IntegerField(allow_null=True)
    containers = ContainerSerializer(many=True)


class PodsSerializer(serializers.Serializer):
    replicas = serializers.DictField(help_text="ready pods, pods, min and max replicas asked for")
    pods = PodSerializer(many=True)
    error = serializers.CharField(help_text="Why the cluster could not be read; empty when it was.")


class EventSerializer(serializers.Serializer):
    type = serializers.CharField()
    reason = serializers.CharField()
    object = serializers.CharField()
    message = serializers.CharField()
    count = serializers.IntegerField()
    last_seen = serializers.DateTimeField(allow_null=True)
    source = serializers.CharField()


class EventsSerializer(serializers.Serializer):
    events = EventSerializer(many=True)
    error = serializers.CharField()


class LogSerializer(serializers.Serializer):
    pod = serializers.CharField()
    container = serializers.CharField()
    tail = serializers.IntegerField()
    previous = serializers.BooleanField()
    text = serializers.CharField()
    truncated = serializers.BooleanField()
    error = serializers.CharField()


class LogQuerySerializer(serializers.Serializer):
    pod = serializers.CharField(max_length=253)
    container = serializers.CharField(max_length=63, required=False, allow_blank=True, default="")
    tail = serializers.IntegerField(min_value=ops.MIN_TAIL, max_value=ops.MAX_TAIL, default=ops.DEFAULT_TAIL)
    previous = serializers.BooleanField(default=False)


class EndpointOperationsViewSet(ProtectedGenericViewSet):
    """Live pods, events and logs of an endpoint (registered beside ``EndpointViewSet``)."""

    lookup_value_regex = r"\d+"
    queryset = selectors.endpoint_queryset()

    @property
    def visibility_action(self) -> str:
        # Logs: found only among the endpoints the caller may deploy (404 for the rest).
        return "deploy" if getattr(self, "action", None) == "logs" else "view"

    @extend_schema(summary="Pods of an endpoint", responses={200: PodsSerializer}, filters=False)
    @action(detail=True, methods=["get"])
    def pods(self, request, pk=None):
        endpoint = self.get_object()
        reading = operations_service.endpoint_pods(endpoint=endpoint)
        return Response({"replicas": ops.replica_summary(reading.pods, min_replicas=endpoint.min_replicas,
                                                         max_replicas=endpoint.max_replicas),
                         "pods": [p.as_dict() for p in reading.pods], "error": reading.error})

    @extend_schema(summary="Kubernetes events of an endpoint", responses={200: EventsSerializer}, filters=False,
                   description="Events about the InferenceService and its pods, newest first.")
    @action(detail=True, methods=["get"])
    def events(self, request, pk=None):
        reading = operations_service.endpoint_operations(endpoint=self.get_object())
        return Response({"events": [e.as_dict() for e in reading.events], "error": reading.error})

    @extend_schema(summary="A container's log", responses={200: LogSerializer}, filters=False,
                   parameters=[
                       OpenApiParameter("pod", OpenApiTypes.STR, required=True, description="One of the endpoint's pods."),
                       OpenApiParameter("container", OpenApiTypes.STR,
                                        description="kserve-container, storage-initializer, queue-proxy, agent… "
                                                    "(default: the one that explains the pod)."),
                       OpenApiParameter("tail", OpenApiTypes.INT, description="Last lines, 10–5000 (200)."),
                       OpenApiParameter("previous", OpenApiTypes.BOOL, description="The previous instance's log."),
                   ],
                   description="Needs deploy on the endpoint (404 otherwise). Every read is audited "
                               "(endpoint.logs_read; once per pod and container every 5 minutes).")
    @action(detail=True, methods=["get"])
    def logs(self, request, pk=None):
        endpoint = self.get_object()
        query = LogQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        # A pod or container that is not the endpoint's: ValidationError, a 400 naming the field.
        reading = operations_service.endpoint_read_log(actor=request.user, endpoint=endpoint, **query.validated_data)
        return Response({"pod": reading.pod, "container": reading.container, "tail": reading.tail,
                         "previous": reading.previous, "text": reading.text, "truncated": reading.truncated,
                         "error": reading.error})


def register(router) -> None:
    router.register("endpoints", EndpointOperationsViewSet, basename="endpoint-operations")


extra_urlpatterns: list = []
