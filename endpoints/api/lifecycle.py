"""Edit (PUT/PATCH) and DELETE for the registry, projects and the platform catalog, mixed into
the viewsets of ``endpoints.api.registry``. Writes go through ``endpoints.services.lifecycle``;
a delete its rules refuse (``InUse``) answers 409 with the reasons in ``detail``. Fields that
never change (names, projects, clusters) are refused with 400 rather than ignored.

Permissions are the viewsets' own: editing a model or version needs ``deploy``, deleting it and
editing or deleting a project need ``manage`` (``action_permissions``); catalog objects are for
platform admins.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.response import Response

from endpoints.models import RegisteredModel
from endpoints.services import lifecycle


class InUseConflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The object is still in use."
    default_code = "in_use"


def refused(exc: lifecycle.InUse) -> InUseConflict:
    return InUseConflict(" ".join(exc.messages))


class RegisteredModelEditSerializer(serializers.Serializer):
    task = serializers.ChoiceField(choices=RegisteredModel.Task.choices)
    description = serializers.CharField(allow_blank=True)


class ModelVersionEditSerializer(serializers.Serializer):
    description = serializers.CharField(allow_blank=True)


class ProjectEditSerializer(serializers.Serializer):
    display_name = serializers.CharField(allow_blank=True, max_length=100)
    description = serializers.CharField(allow_blank=True)


class CatalogDeleteMixin:
    """``destroy`` through ``delete_service``: a refusal (``InUse``) answers 409 with the reasons.
    The catalog viewsets (clusters, profiles, runtimes) use it alone; their update stays theirs."""

    def delete_service(self, instance) -> None:  # pragma: no cover - every subclass overrides it
        raise NotImplementedError

    @extend_schema(responses={204: None, 409: None})
    def destroy(self, request, *args, **kwargs):
        instance = self.get_object()
        try:
            self.delete_service(instance)
        except lifecycle.InUse as exc:
            raise refused(exc) from exc
        return Response(status=status.HTTP_204_NO_CONTENT)


class LifecycleMixin(CatalogDeleteMixin):
    """``update``/``partial_update`` through ``update_service`` with ``edit_serializer_class``,
    ``destroy`` through ``delete_service``; answers with the viewset's own representation."""

    edit_serializer_class: type[serializers.Serializer]

    def update_service(self, instance, changes: dict):  # pragma: no cover - every subclass overrides it
        raise NotImplementedError

    def _edited(self, request, partial: bool):
        instance = self.get_object()
        serializer = self.edit_serializer_class(data=request.data, partial=partial)
        submitted = set(request.data.keys()) if hasattr(request.data, "keys") else set()
        fixed = sorted(submitted - set(serializer.fields))
        if fixed:
            raise ValidationError({name: ["This field cannot be changed."] for name in fixed})
        serializer.is_valid(raise_exception=True)
        changes = {k: v for k, v in serializer.validated_data.items() if getattr(instance, k) != v}
        if changes:
            instance = self.update_service(instance, changes)
        instance = self.get_queryset().get(pk=instance.pk)
        return Response(self.get_serializer(instance).data)

    def update(self, request, *args, **kwargs):
        return self._edited(request, partial=False)

    def partial_update(self, request, *args, **kwargs):
        return self._edited(request, partial=True)


class RegisteredModelLifecycleMixin(LifecycleMixin):
    edit_serializer_class = RegisteredModelEditSerializer

    def update_service(self, model, changes):
        return lifecycle.model_update(actor=self.request.user, model=model, **changes)

    def delete_service(self, model):
        lifecycle.model_delete(actor=self.request.user, model=model)


class ModelVersionLifecycleMixin(LifecycleMixin):
    """Also ``archive``/``unarchive``: a version kept for its history but no longer deployable
    (endpoints already on it keep it)."""

    edit_serializer_class = ModelVersionEditSerializer

    def _archived(self, archived: bool):
        version = lifecycle.model_version_archive(actor=self.request.user, version=self.get_object(),
                                                  archived=archived)
        return Response(self.get_serializer(self.get_queryset().get(pk=version.pk)).data)

    @extend_schema(request=None, description="Archive the version (needs manage on the model): it is kept, with "
                                             "what refers to it, but can no longer be chosen for an endpoint.")
    @action(detail=True, methods=["post"])
    def archive(self, request, pk=None):
        return self._archived(True)

    @extend_schema(request=None, description="Make an archived version deployable again (needs manage).")
    @action(detail=True, methods=["post"])
    def unarchive(self, request, pk=None):
        return self._archived(False)

    def update_service(self, version, changes):
        return lifecycle.model_version_update(actor=self.request.user, version=version, **changes)

    def delete_service(self, version):
        lifecycle.model_version_delete(actor=self.request.user, version=version)


class ProjectLifecycleMixin(LifecycleMixin):
    edit_serializer_class = ProjectEditSerializer

    def update_service(self, project, changes):
        return lifecycle.project_update(actor=self.request.user, project=project, **changes)

    def delete_service(self, project):
        lifecycle.project_delete(actor=self.request.user, project=project)


