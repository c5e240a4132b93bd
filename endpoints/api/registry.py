"""``/api/v1/`` for the model registry and the platform-admin objects:

- ``clusters/`` (platform admins only; the API token is write-only),
- ``projects/`` (everyone lists the projects they can see; platform admins create them, set
  quotas and rotate the payload-logger key),
- ``models/`` with ``models/{id}/versions/`` (list, and register a version with an optional
  multipart reference upload) and ``models/{id}/aliases/``,
- ``versions/`` (read),
- ``runtimes/`` and ``hardware-profiles/`` (everyone reads them to configure endpoints; platform
  admins write).

Every viewset subclasses the framework's scoped bases (``console.api.viewsets``): rows are
restricted before filtering (``endpoints.filtersets``) and pagination; invisible objects are
404, visible-but-forbidden ones 403. Writes go
through ``endpoints.services``; their ``ValidationError`` becomes a 400 with the same field
messages the forms show (console/api/errors.py).
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Count, Max, Prefetch
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.response import Response

from console.api.permissions import ChokepointPermission, IsPlatformAdmin
from console.api.viewsets import ProtectedGenericViewSet, ProtectedReadOnlyViewSet
from console.permissions import can, is_platform_admin, restrict
from endpoints import selectors
from endpoints.api.lifecycle import (
    CatalogDeleteMixin,
    ModelVersionLifecycleMixin,
    ProjectLifecycleMixin,
    RegisteredModelLifecycleMixin,
)
from endpoints.api.registry_serializers import (
    AliasResultSerializer,
    AliasSerializer,
    ClusterSerializer,
    HardwareProfileSerializer,
    ModelVersionCreateSerializer,
    ModelVersionDetailSerializer,
    ModelVersionSerializer,
    ProjectQuotaSerializer,
    ProjectSerializer,
    RegisteredModelSerializer,
    ServingRuntimeSerializer,
)
from endpoints.filtersets import ListFilterMixin, ModelVersionFilterSet, RegisteredModelFilterSet
from endpoints.models import HardwareProfile, Project, ProjectQuota, RegisteredModel, ServingRuntime
from endpoints.services import connections as connection_services
from endpoints.services import lifecycle
from endpoints.services.platform import (
    cluster_create,
    cluster_update,
    hardware_profile_create,
    hardware_profile_update,
    runtime_create,
    runtime_update,
)
from endpoints.services.projects import project_create, project_rotate_ingest_key, project_set_quota
from endpoints.services.registry import alias_set, model_register, model_version_create


class IsPlatformAdminOrReadOnly(BasePermission):
    """Every signed-in user reads; only platform admins write."""

    message = "Only platform admins may change this."

    def has_permission(self, request, view) -> bool:
        if request.method in SAFE_METHODS:
            return bool(request.user and request.user.is_authenticated)
        return is_platform_admin(request.user)


def changed_fields(instance, data: dict) -> dict:
    """The submitted fields whose value differs from ``instance`` (a PUT repeating unchanged
    values of a built-in runtime is then not a forbidden change)."""
    return {name: value for name, value in data.items() if getattr(instance, name) != value}


def refuse_rename(instance, data: dict) -> dict:
    data = dict(data)
    name = data.pop("name", instance.name)
    if name != instance.name:
        raise ValidationError({"name": [f"The name of a {instance._meta.verbose_name} cannot change."]})
    return data


class AdminWritableViewSet(CatalogDeleteMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin,
                           mixins.CreateModelMixin, mixins.UpdateModelMixin, ProtectedGenericViewSet):
    """Catalog objects written through ``create_service``/``update_service``/``delete_service``
    (a delete is refused with 409 while endpoints use the object or name it in their history:
    disable it instead, so endpoints that use it keep working). Their access rule
    (``endpoints.access_rules.catalog``) lets every signed-in user read and only platform
    admins ``change``."""

    permission_classes = [ChokepointPermission, IsPlatformAdminOrReadOnly]
    write_action = "change"

    def create_service(self, data: dict):  # pragma: no cover - every subclass overrides it
        raise NotImplementedError

    def update_service(self, instance, changes: dict):  # pragma: no cover - every subclass overrides it
        raise NotImplementedError

    def _respond(self, obj, code=status.HTTP_200_OK) -> Response:
        obj = self.get_queryset().get(pk=obj.pk)
        return Response(self.get_serializer(obj).data, status=code)

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return self._respond(self.create_service(dict(serializer.validated_data)), status.HTTP_201_CREATED)

    def update(self, request, *args, **kwargs):
        instance = self.get_object()
        serializer = self.get_serializer(instance, data=request.data, partial=kwargs.pop("partial", False))
        serializer.is_valid(raise_exception=True)
        changes = changed_fields(instance, refuse_rename(instance, serializer.validated_data))
        if changes:
            instance = self.update_service(instance, changes)
        return self._respond(instance)


# --- clusters, hardware profiles, runtimes ------------------------------------------------------------

class ClusterViewSet(AdminWritableViewSet):
    """Clusters where endpoints run (platform admins only). ``api_token`` is write-only."""

    serializer_class = ClusterSerializer
    permission_classes = [ChokepointPermission, IsPlatformAdmin]

    def get_base_queryset(self):
        return selectors.cluster_list().order_by("name")

    def create_service(self, data):
        return cluster_create(actor=self.request.user, verify=True, **data)

    def update_service(self, cluster, changes):
        return cluster_update(actor=self.request.user, cluster=cluster, verify=True, **changes)

    def delete_service(self, cluster):
        lifecycle.cluster_delete(actor=self.request.user, cluster=cluster)


class HardwareProfileViewSet(AdminWritableViewSet):
    """Hardware profiles endpoints may use (everyone reads; platform admins write)."""

    serializer_class = HardwareProfileSerializer
    queryset = HardwareProfile.objects.all()

    def create_service(self, data):
        return hardware_profile_create(actor=self.request.user, **data)

    def update_service(self, profile, changes):
        return hardware_profile_update(actor=self.request.user, profile=profile, **changes)

    def delete_service(self, profile):
        lifecycle.hardware_profile_delete(actor=self.request.user, profile=profile)


class ServingRuntimeViewSet(AdminWritableViewSet):
    """The runtime catalog (everyone reads; platform admins add custom runtimes and may only
    disable or describe built-in ones)."""

    serializer_class = ServingRuntimeSerializer
    queryset = ServingRuntime.objects.all()

    def create_service(self, data):
        return runtime_create(actor=self.request.user, **data)

    def update_service(self, runtime, changes):
        return runtime_update(actor=self.request.user, runtime=runtime, **changes)

    def delete_service(self, runtime):
        lifecycle.runtime_delete(actor=self.request.user, runtime=runtime)


# --- projects ---------------------------------------------------------------------------------------

@extend_schema_view(
    create=extend_schema(description="Create a project (platform admins). The namespace is checked on the cluster "
                                     "and created if missing; a namespace labelled 'control-plane' is refused."),
)
class ProjectViewSet(ProjectLifecycleMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin,
                     mixins.CreateModelMixin, ProtectedGenericViewSet):
    """Projects the caller can see. The ingest key is never returned. Owners (and platform
    admins) change the display name and description and delete a project without endpoints."""

    action_permissions = {"update": "manage", "partial_update": "manage", "destroy": "manage"}

    serializer_class = ProjectSerializer
    queryset = Project.objects.select_related("cluster").prefetch_related(
        Prefetch("quotas", queryset=ProjectQuota.objects.select_related("hardware_profile")
                 .order_by("hardware_profile__name")))

    def get_permissions(self):
        if self.action in ("create", "quota", "rotate_ingest_key"):
            return [ChokepointPermission(), IsPlatformAdmin()]
        return [ChokepointPermission()]

    def _respond(self, project, code=status.HTTP_200_OK) -> Response:
        project = self.get_queryset().get(pk=project.pk)
        return Response(ProjectSerializer(project, context=self.get_serializer_context()).data, status=code)

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        quotas = {q["hardware_profile"]: q["max_accelerators"] for q in data.get("quotas", [])
                  if q["max_accelerators"] is not None}
        project = project_create(
            actor=request.user, name=data["name"], cluster=data["cluster"], namespace=data.get("namespace", ""),
            display_name=data.get("display_name", ""), description=data.get("description", ""), quotas=quotas)
        return self._respond(project, status.HTTP_201_CREATED)

    @extend_schema(request=ProjectQuotaSerializer, responses=ProjectSerializer,
                   description="Set (or, with max_accelerators null, remove) the project's quota for one hardware "
                               "profile (platform admins).")
    @action(detail=True, methods=["post"], url_path="quota")
    def quota(self, request, pk=None):
        project = self.get_object()
        serializer = ProjectQuotaSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        project_set_quota(actor=request.user, project=project,
                          profile=serializer.validated_data["hardware_profile"],
                          max_accelerators=serializer.validated_data["max_accelerators"])
        return self._respond(project)

    @extend_schema(request=None, responses=ProjectSerializer,
                   description="Replace the payload-logger ingest key (platform admins): the old logger URL stops "
                               "working at once and endpoints with payload logging get a new generation.")
    @action(detail=True, methods=["post"], url_path="rotate-ingest-key")
    def rotate_ingest_key(self, request, pk=None):
        project = project_rotate_ingest_key(actor=request.user, project=self.get_object())
        return self._respond(project)


# --- registry ---------------------------------------------------------------------------------------

MODEL_FILTERS = [
    OpenApiParameter("project", str, description="Only models of this project (id or name)."),
    OpenApiParameter("search", str, description="Part of the name or description."),
    OpenApiParameter("q", str, description="The same as search (the name the models page uses)."),
]


@extend_schema_view(list=extend_schema(parameters=MODEL_FILTERS))
class RegisteredModelViewSet(RegisteredModelLifecycleMixin, ListFilterMixin, mixins.ListModelMixin,
                             mixins.RetrieveModelMixin, mixins.CreateModelMixin, ProtectedGenericViewSet):
    """Registered models the caller can see. Registering needs the deploy permission in the
    project; a project the caller cannot see is refused as nonexistent. Registering a version,
    setting an alias or editing the model needs deploy on the model (403 without it); deleting it
    needs manage (its project's Owners)."""

    action_permissions = {"destroy": "manage"}

    serializer_class = RegisteredModelSerializer
    # Aggregating queries ignore Meta.ordering: order explicitly for stable pages.
    queryset = (RegisteredModel.objects.select_related("project", "owner")
                .annotate(version_count=Count("versions"), latest_version=Max("versions__version"))
                .order_by("project__name", "name"))
    filterset_class = RegisteredModelFilterSet

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        if not can(request.user, data["project"], "deploy"):
            raise PermissionDenied
        model = model_register(actor=request.user, project=data["project"], name=data["name"],
                               task=data["task"], description=data.get("description", ""))
        model = self.get_queryset().get(pk=model.pk)
        return Response(self.get_serializer(model).data, status=status.HTTP_201_CREATED)

    @extend_schema(methods=["GET"], request=None, responses=ModelVersionSerializer(many=True), filters=False,
                   description="The model's versions, newest first.")
    @extend_schema(methods=["POST"],
                   request={"multipart/form-data": ModelVersionCreateSerializer,
                            "application/json": ModelVersionCreateSerializer},
                   responses={201: ModelVersionDetailSerializer},
                   description="Register the next version (needs the deploy permission). Upload a CSV or Parquet "
                               "reference sample as multipart/form-data to compute its reference profile; a bad "
                               "file is refused with the reason and nothing is stored.")
    @action(detail=True, methods=["get", "post"], url_path="versions",
            parser_classes=[JSONParser, MultiPartParser, FormParser])
    def versions(self, request, pk=None):
        model = self.get_object()
        if request.method == "GET":
            versions = selectors.versions_with_deployments(user=request.user).filter(model=model)
            page = self.paginate_queryset(versions.order_by("-version"))
            return self.get_paginated_response(ModelVersionSerializer(page, many=True).data)
        serializer = ModelVersionCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        upload = data.pop("reference_file", None)
        connection_id = data.pop("connection", None)
        if connection_id is not None:
            data["connection"] = restrict(connection_services.usable_in(model.project), request.user,
                                          "deploy").filter(pk=connection_id).first()
            if data["connection"] is None:
                raise ValidationError({"connection": [f"No storage connection {connection_id} is usable in project "
                                                      f"{model.project.name}."]})
        version = model_version_create(
            actor=request.user, model=model, reference_file=upload,
            reference_filename=upload.name if upload else "", **data)
        version = selectors.versions_with_deployments(user=request.user).get(pk=version.pk)
        return Response(ModelVersionDetailSerializer(version).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=AliasSerializer, responses=AliasResultSerializer,
                   description="Point an alias (champion, challenger, ...) at a version number; an existing alias "
                               "moves (needs the deploy permission).")
    @action(detail=True, methods=["post"], url_path="aliases")
    def aliases(self, request, pk=None):
        model = self.get_object()
        serializer = AliasSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        number = serializer.validated_data["version"]
        version = model.versions.filter(version=number).first()
        if version is None:
            raise ValidationError({"version": [f"{model.name} has no version {number}."]})
        try:
            alias_set(actor=request.user, version=version, name=serializer.validated_data["name"])
        except DjangoValidationError as exc:
            if hasattr(exc, "error_dict") and "aliases" in exc.message_dict:
                raise ValidationError({"name": exc.message_dict["aliases"]}) from exc
            raise
        return Response({"name": serializer.validated_data["name"], "version": number})


@extend_schema_view(list=extend_schema(parameters=[OpenApiParameter("model", int, description="Only this model's.")]))
class ModelVersionViewSet(ModelVersionLifecycleMixin, ListFilterMixin, ProtectedReadOnlyViewSet):
    """Model versions of models the caller can see (a version follows its model's access);
    the detail carries the full reference profile. Editing the description needs deploy on the
    model, deleting a version nothing serves or refers to (or archiving one) needs manage."""

    action_permissions = {"destroy": "manage", "archive": "manage", "unarchive": "manage"}

    serializer_class = ModelVersionSerializer
    filterset_class = ModelVersionFilterSet

    def get_serializer_class(self):
        return ModelVersionDetailSerializer if self.action == "retrieve" else ModelVersionSerializer

    def get_base_queryset(self):
        return selectors.versions_with_deployments(user=self.request.user).order_by("model_id", "-version")



def register(router) -> None:
    router.register("clusters", ClusterViewSet, basename="api-cluster")
    router.register("projects", ProjectViewSet, basename="api-project")
    router.register("models", RegisteredModelViewSet, basename="api-model")
    router.register("versions", ModelVersionViewSet, basename="api-version")
    router.register("runtimes", ServingRuntimeViewSet, basename="api-runtime")
    router.register("hardware-profiles", HardwareProfileViewSet, basename="api-hardware-profile")


extra_urlpatterns: list = []
