"""``/api/v1/nim-runtimes/``: NVIDIA NIM runtimes (docs/nim.md). Every signed-in user lists them
(the catalog entry each was installed from, never a secret); platform admins install one from the
catalog; anyone who may deploy to a project deploys a NIM there (``POST …/<id>/deploy/``), refused
with the reason when the GPU profile fits none of the NIM's shapes or Knative lacks the flags."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.response import Response

from console.api.permissions import ChokepointPermission
from console.api.viewsets import ProtectedGenericViewSet
from console.ids import parse_id
from console.permissions import get_visible_or_404, is_platform_admin
from endpoints import selectors
from endpoints.api.endpoint_serializers import EndpointSerializer, UsableRelatedField
from endpoints.api.registry import IsPlatformAdminOrReadOnly
from endpoints.models import Endpoint, HardwareProfile, Project, ServingRuntime, StorageConnection
from endpoints.services import nim as nim_services


class NimRuntimeSerializer(serializers.ModelSerializer):
    """An installed NIM runtime: its name and the catalog entry, connection and cache it uses."""

    nim = serializers.SerializerMethodField()

    class Meta:
        model = ServingRuntime
        fields = ["id", "name", "display_name", "disabled", "project", "nim"]
        read_only_fields = fields

    def get_nim(self, runtime) -> dict:
        return {"entry": runtime.nim["entry"], "connection": runtime.nim.get("connection"),
                "cache": nim_services.cache_of(runtime)}


class NimInstallSerializer(serializers.Serializer):
    nim = serializers.CharField(help_text="Catalog key and version, e.g. llama3-8b-instruct@1.0.0.")
    project = serializers.IntegerField(
        required=False, allow_null=True,
        help_text="Install for this project only (its Owners may); omitted: platform-wide (platform admins).")
    connection = serializers.PrimaryKeyRelatedField(
        queryset=StorageConnection.objects.filter(kind=StorageConnection.Kind.NGC, project__isnull=True),
        help_text="A platform-wide NGC connection; for a project, an NGC connection available to it.")
    cache_name = serializers.CharField(required=False, default=nim_services.DEFAULT_CACHE)
    cache_create = serializers.BooleanField(
        required=False, default=False,
        help_text="Create the model-cache PersistentVolumeClaim in each namespace that deploys the NIM.")
    cache_size = serializers.CharField(required=False, default=nim_services.DEFAULT_CACHE_SIZE)
    cache_storage_class = serializers.CharField(required=False, default="", allow_blank=True)
    cache_access_mode = serializers.CharField(required=False, default="ReadWriteMany")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if (project := self.context.get("project")) is not None:
            self.fields["connection"].queryset = nim_services.ngc_connections_for(project)

    def validate_nim(self, value):
        key, _, version = value.partition("@")
        entry = nim_services.catalog_entry(key, version)
        if entry is None:
            raise ValidationError("No NIM with that key and version in the catalog.")
        return entry


class NimDeploySerializer(serializers.Serializer):
    project = UsableRelatedField(queryset=Project.objects.none(), help_text="A project you may deploy to.")
    name = serializers.CharField(help_text="The endpoint's name.")
    hardware_profile = UsableRelatedField(queryset=HardwareProfile.objects.none(),
                                          help_text="A GPU profile that fits one of the NIM's shapes.")
    accelerator_count = serializers.IntegerField(min_value=1, default=1)
    deployment_mode = serializers.ChoiceField(choices=Endpoint.DeploymentMode.values,
                                              default=Endpoint.DeploymentMode.STANDARD)
    min_replicas = serializers.IntegerField(min_value=0, default=1)
    max_replicas = serializers.IntegerField(min_value=1, default=1)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        user = getattr(self.context.get("request"), "user", None)
        self.fields["project"].queryset = selectors.project_list_visible_to(user=user, action="deploy")
        self.fields["hardware_profile"].queryset = selectors.hardware_choices()


class NimRuntimeViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ProtectedGenericViewSet):
    """NIM runtimes. Reading and deploying need only a signed-in user (the project field is
    limited to projects the caller may deploy to); installing needs a platform admin."""

    serializer_class = NimRuntimeSerializer
    queryset = ServingRuntime.objects.filter(nim__isnull=False).order_by("name")  # narrowed in get_queryset
    permission_classes = [ChokepointPermission, IsPlatformAdminOrReadOnly]
    write_action = "change"
    action_permissions = {"deploy": "view"}

    def get_permissions(self):
        if self.action in ("deploy", "create"):
            # deploy: the project field carries the deploy check; create: platform admins, or the
            # Owner of the project named in the body (checked in create()).
            return [ChokepointPermission()]
        return super().get_permissions()

    def get_base_queryset(self):
        return selectors.nim_runtimes_visible_to(user=self.request.user)

    def _install_project(self, request) -> Project | None:
        """The project of a project install (manage needed: 404 invisible, 403 only visible), None
        for a platform-wide install (platform admins only)."""
        raw = request.data.get("project") if hasattr(request.data, "get") else None
        if raw in (None, ""):
            if not is_platform_admin(request.user):
                raise PermissionDenied("Only platform admins install a NIM for every project; an Owner names "
                                       "the project.")
            return None
        pk = parse_id(raw)
        if pk is None:
            raise ValidationError({"project": ["A project id."]})
        return get_visible_or_404(Project.objects.all(), request.user, "manage", pk=pk)

    @extend_schema(summary="Install a NIM runtime (platform admins; Owners for their project)",
                   request=NimInstallSerializer, responses={201: NimRuntimeSerializer})
    def create(self, request):
        project = self._install_project(request)
        serializer = NimInstallSerializer(data=request.data, context={**self.get_serializer_context(),
                                                                      "project": project})
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        runtime = nim_services.nim_runtime_install(actor=request.user, entry=data["nim"], project=project,
                                                   connection=data["connection"], cache_name=data["cache_name"],
                                                   cache_create=data["cache_create"], cache_size=data["cache_size"],
                                                   cache_storage_class=data["cache_storage_class"],
                                                   cache_access_mode=data["cache_access_mode"])
        return Response(NimRuntimeSerializer(runtime).data, status=status.HTTP_201_CREATED)

    @extend_schema(summary="Deploy this NIM as an endpoint", request=NimDeploySerializer,
                   responses={201: EndpointSerializer})
    @action(detail=True, methods=["post"], url_path="deploy")
    def deploy(self, request, pk=None):
        runtime = self.get_object()
        serializer = NimDeploySerializer(data=request.data, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        endpoint = nim_services.nim_deploy(actor=request.user, runtime=runtime, **data)
        fresh = selectors.endpoint_queryset().get(pk=endpoint.pk)
        return Response(EndpointSerializer(fresh, context=self.get_serializer_context()).data,
                        status=status.HTTP_201_CREATED)


def register(router) -> None:
    router.register("nim-runtimes", NimRuntimeViewSet, basename="api-nim-runtime")
