"""``/api/v1/connections/``: storage connections.

- list (the caller's projects' connections and every platform-wide one; ``?project=``,
  ``?kind=``, ``?scope=``), create (in a project the caller may manage; platform-wide: platform
  admins), retrieve, ``PATCH`` (settings, names, and secret values: a new value is a rotation,
  a blank one keeps the stored value), ``DELETE`` (refused while endpoints or model versions use
  it);
- ``rotate`` (GET: the rotation plan; POST ``{"secrets": {...}}``), ``check`` (POST ``{"uri"}``:
  the storage check with the connection's credentials), ``opt-in``/``opt-out`` (POST
  ``{"project"}``: an Owner of the project, for a platform-wide connection), ``usage``.

Access: the rule ``endpoints.access_rules.storage_connections`` — invisible connections are 404;
changing, rotating and deleting need ``manage`` (403 without), a check needs ``deploy`` (it uses
the credentials), opting a project in or out needs ``manage`` on the project. Secret values are
write-only: no answer carries one (``secret_fields`` names the fields that are set). Writes go
through ``endpoints.services.connections``, which audits them; their field errors come back as
400 in the API's error shape (console/api/errors.py).
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.views.decorators.debug import sensitive_variables
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view, inline_serializer
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from console.api.viewsets import ProtectedGenericViewSet
from console.permissions import can, is_platform_admin
from endpoints import selectors
from endpoints.api.connection_serializers import (
    CheckRequestSerializer,
    CheckResultSerializer,
    OptInRequestSerializer,
    SecretsSerializer,
    StorageConnectionSerializer,
    UsageSerializer,
)
from endpoints.filtersets import ListFilterMixin, StorageConnectionFilterSet
from endpoints.models import StorageConnection
from endpoints.services.connections import (
    connection_create,
    connection_delete,
    connection_opt_in,
    connection_opt_out,
    connection_update,
    rotation_plan,
)

FILTERS = [
    OpenApiParameter("project", str, description="Only this project's connections (id or name)."),
    OpenApiParameter("kind", str, description="s3, gcs, azure, hf, oci or https."),
    OpenApiParameter("scope", str, description="project or platform."),
]

RotationPlanSerializer = inline_serializer("ConnectionRotationPlan", fields={
    "secret_version": serializers.IntegerField(),
    "namespaces": serializers.ListField(child=serializers.CharField()),
    "restart": serializers.ListField(child=serializers.CharField()),
    "keep": serializers.ListField(child=serializers.CharField()),
})


def service_errors(exc: DjangoValidationError) -> ValidationError:
    """A service's ValidationError in the API's shape (form-wide messages as non_field_errors)."""
    if not hasattr(exc, "error_dict"):
        return ValidationError({"non_field_errors": exc.messages})
    return ValidationError({("non_field_errors" if field == "__all__" else field): messages
                            for field, messages in exc.message_dict.items()})


def secret_keys_error(kind: str, secrets: dict) -> ValidationError | None:
    """Secret names the kind does not have (named, never echoed with their values)."""
    from endpoints.connections import KINDS

    known = {f.name for f in KINDS[kind].secrets}
    unknown = sorted(set(secrets) - known)
    if unknown:
        return ValidationError({"secrets": [f"Unknown secret field{'s' if len(unknown) > 1 else ''} for a "
                                            f"{KINDS[kind].label} connection: {', '.join(unknown)}. "
                                            f"It has: {', '.join(sorted(known)) or 'none'}."]})
    return None


@extend_schema_view(list=extend_schema(parameters=FILTERS))
class StorageConnectionViewSet(ListFilterMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin,
                               mixins.CreateModelMixin, mixins.UpdateModelMixin, mixins.DestroyModelMixin,
                               ProtectedGenericViewSet):
    """Storage connections the caller can see. Secret values are write-only."""

    serializer_class = StorageConnectionSerializer
    filterset_class = StorageConnectionFilterSet
    queryset = StorageConnection.objects.select_related("project", "created_by").order_by("project__name", "name")
    write_action = "manage"
    action_permissions = {"rotate": "manage", "check": "deploy", "opt_in": "view", "opt_out": "view",
                          "usage": "view"}
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def _respond(self, connection, code=status.HTTP_200_OK) -> Response:
        connection = StorageConnection.objects.select_related("project", "created_by").get(pk=connection.pk)
        return Response(self.get_serializer(connection).data, status=code)

    @sensitive_variables()
    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        project = data.get("project")
        if project is None and not is_platform_admin(request.user):
            raise PermissionDenied("Only platform admins create platform-wide connections.")
        if project is not None and not can(request.user, project, "manage"):
            raise PermissionDenied("Only the project's Owners create its connections.")
        secrets = data.get("secrets") or {}
        error = secret_keys_error(data["kind"], secrets)
        if error:
            raise error
        try:
            connection = connection_create(
                actor=request.user, project=project, name=data["name"], kind=data["kind"],
                config=data.get("config") or {}, secrets=secrets, display_name=data.get("display_name", ""),
                description=data.get("description", ""))
        except DjangoValidationError as exc:
            raise service_errors(exc) from None
        return self._respond(connection, status.HTTP_201_CREATED)

    @extend_schema(description="Change settings (merged into the stored ones), display name or description; "
                               "secret values given here replace the stored ones (a rotation), blank ones keep "
                               "them. Name, kind and project cannot change.")
    @sensitive_variables()
    def partial_update(self, request, *args, **kwargs):
        connection = self.get_object()
        serializer = self.get_serializer(connection, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        for name in ("name", "kind"):
            if name in data and data[name] != getattr(connection, name):
                raise ValidationError({name: [f"The {name} of a connection cannot change."]})
        if "project" in data and data["project"] != connection.project:
            raise ValidationError({"project": ["A connection cannot move to another project."]})
        secrets = data.get("secrets")
        if secrets:
            error = secret_keys_error(connection.kind, secrets)
            if error:
                raise error
        config = {**connection.config, **data["config"]} if "config" in data else None
        try:
            connection = connection_update(actor=request.user, connection=connection, config=config,
                                           display_name=data.get("display_name"),
                                           description=data.get("description"), secrets=secrets or None)
        except DjangoValidationError as exc:
            raise service_errors(exc) from None
        return self._respond(connection)

    def destroy(self, request, *args, **kwargs):
        connection = self.get_object()
        try:
            connection_delete(actor=request.user, connection=connection)
        except DjangoValidationError as exc:
            raise service_errors(exc) from None
        return Response(status=status.HTTP_204_NO_CONTENT)

    def _plan(self, connection) -> dict:
        plan = rotation_plan(connection)
        visible = set(selectors.endpoint_list_visible_to(user=self.request.user)
                      .filter(pk__in=[e.pk for e in plan["endpoints"]]).values_list("pk", flat=True))

        def names(endpoints):
            return [f"{e.project.name}/{e.name}" for e in endpoints if e.pk in visible]

        return {"secret_version": connection.secret_version,
                "namespaces": sorted({e.project.namespace for e in plan["endpoints"] if e.pk in visible}),
                "restart": names(plan["restart"]), "keep": names(plan["keep"])}

    @extend_schema(methods=["GET"], request=None, responses=RotationPlanSerializer,
                   description="What rotating does: the namespaces whose Secret is updated, the endpoints restarted "
                               "(Hugging Face tokens are read by the serving container at start) and those that "
                               "keep running (KServe reads storage credentials only when a pod starts).")
    @extend_schema(methods=["POST"], request=SecretsSerializer, responses=StorageConnectionSerializer,
                   description="Rotate: new secret values (at least one; blank ones keep the stored values).")
    @action(detail=True, methods=["get", "post"], url_path="rotate")
    @sensitive_variables()
    def rotate(self, request, pk=None):
        connection = self.get_object()
        if request.method == "GET":
            return Response(self._plan(connection))
        serializer = SecretsSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        secrets = {k: v for k, v in serializer.validated_data["secrets"].items() if v.strip()}
        if not secrets:
            raise ValidationError({"secrets": ["Give at least one new secret value."]})
        error = secret_keys_error(connection.kind, secrets)
        if error:
            raise error
        try:
            updated = connection_update(actor=request.user, connection=connection, secrets=secrets)
        except DjangoValidationError as exc:
            raise service_errors(exc) from None
        if updated.secret_version == connection.secret_version:
            raise ValidationError({"secrets": ["These are the values already stored: nothing was rotated."]})
        return self._respond(updated)

    @extend_schema(request=CheckRequestSerializer, responses=CheckResultSerializer,
                   description="Check now, with the connection's credentials, that a storage URI exists and is "
                               "readable (needs the deploy permission on the connection).")
    @action(detail=True, methods=["post"], url_path="check")
    def check(self, request, pk=None):
        connection = self.get_object()
        serializer = CheckRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        uri = serializer.validated_data["uri"].strip()
        result = selectors.connection_check(uri=uri, connection=connection)
        return Response({"state": result.state, "message": result.message, "detail": result.detail, "uri": uri,
                         "connection": connection.name})

    def _opt(self, request, opting_in: bool) -> Response:
        connection = self.get_object()
        serializer = OptInRequestSerializer(data=request.data, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        project = serializer.validated_data["project"]
        if not can(request.user, project, "manage"):
            raise PermissionDenied("Only the project's Owners opt it in or out.")
        try:
            (connection_opt_in if opting_in else connection_opt_out)(
                actor=request.user, connection=connection, project=project)
        except DjangoValidationError as exc:
            raise service_errors(exc) from None
        return self._usage(connection)

    def _usage(self, connection) -> Response:
        usage = selectors.connection_usage(user=self.request.user, connection=connection)
        return Response(UsageSerializer(usage).data)

    @extend_schema(request=OptInRequestSerializer, responses=UsageSerializer,
                   description="Opt a project into a platform-wide connection (an Owner of the project).")
    @action(detail=True, methods=["post"], url_path="opt-in")
    def opt_in(self, request, pk=None):
        return self._opt(request, True)

    @extend_schema(request=OptInRequestSerializer, responses=UsageSerializer,
                   description="Opt a project out again (refused while its endpoints use the connection).")
    @action(detail=True, methods=["post"], url_path="opt-out")
    def opt_out(self, request, pk=None):
        return self._opt(request, False)

    @extend_schema(request=None, responses=UsageSerializer,
                   description="Endpoints, model versions and opt-ins using the connection (those the caller "
                               "can see).")
    @action(detail=True, methods=["get"], url_path="usage")
    def usage(self, request, pk=None):
        return self._usage(self.get_object())


def register(router) -> None:
    router.register("connections", StorageConnectionViewSet, basename="api-connection")


extra_urlpatterns: list = []
