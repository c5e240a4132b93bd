"""The model registry: models registered in a project, their immutable numbered versions (with
the reference profile drift is measured against) and aliases pointing at a version."""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max

from audit import services as audit
from endpoints import profiles, validation
from endpoints.models import ModelAlias, ModelVersion, Project, RegisteredModel
from endpoints.validation import NAME_RE


@transaction.atomic
def model_register(*, actor, project: Project, name: str, task: str, description: str = "") -> RegisteredModel:
    if not NAME_RE.match(name) or len(name) > 63:
        raise ValidationError({"name": ["Use lowercase letters, digits and '-', starting with a letter."]})
    if RegisteredModel.objects.filter(project=project, name=name).exists():
        raise ValidationError({"name": [f"{project.name} already has a model named {name}."]})
    model = RegisteredModel(project=project, name=name, task=task, description=description, owner=actor)
    model.full_clean()
    model.save()
    audit.record(action="model.register", actor=actor, target=model, project=project,
                 details={"new": {"name": name, "task": task}})
    return model


def validate_storage_uri(uri: str, field: str = "storage_uri") -> None:
    errors = validation.storage_uri_errors(uri)
    if errors:
        raise ValidationError({field: errors})


SCRIPT_SCHEMES = frozenset({"javascript", "vbscript", "data"})


@transaction.atomic
def model_version_create(*, actor, model: RegisteredModel, storage_uri: str, model_format: str,
                         format_version: str = "", input_signature: list | None = None,
                         prediction_column: str = "", reference_file=None, reference_filename: str = "",
                         source_run_uri: str = "", description: str = "", aliases: list[str] | None = None
                         ) -> ModelVersion:
    """Register the next version of ``model``. A reference sample (CSV or Parquet) computes
    the reference profile that drift is measured against; a bad file refuses the whole
    registration with the reason, so nothing half-made is stored."""
    validate_storage_uri(storage_uri)
    if source_run_uri.strip().split(":", 1)[0].strip().lower() in SCRIPT_SCHEMES:
        raise ValidationError({"source_run_uri": ["Give the training run's address (e.g. https://… or runs:/…), "
                                                  "not a script."]})
    if not model_format:
        raise ValidationError({"model_format": ["Choose the model's format (e.g. sklearn, xgboost, huggingface)."]})
    profile = None
    rows = 0
    if reference_file is not None:
        try:
            profile = profiles.profile_from_file(reference_file, reference_filename,
                                                 prediction_column=prediction_column or None,
                                                 signature=input_signature or None)
        except profiles.ProfileError as exc:
            raise ValidationError({"reference_file": [str(exc)]}) from exc
        rows = profile["rows"]
        if not input_signature:
            input_signature = [{"name": f["name"], "type": f["type"]} for f in profile["features"]]
    # Lock the model row so concurrent registrations get consecutive numbers.
    RegisteredModel.objects.select_for_update().filter(pk=model.pk).first()
    number = (model.versions.aggregate(n=Max("version"))["n"] or 0) + 1
    version = ModelVersion.objects.create(
        model=model, version=number, storage_uri=storage_uri, model_format=model_format,
        format_version=format_version, input_signature=input_signature or [], prediction_column=prediction_column,
        reference_profile=profile, reference_filename=reference_filename[:255], reference_rows=rows,
        source_run_uri=source_run_uri, description=description, created_by=actor,
    )
    for alias in aliases or []:
        _alias_set(model, alias, version)
    audit.record(action="modelversion.create", actor=actor, target=version, project=model.project,
                 details={"new": {"model": model.name, "version": number, "storage_uri": storage_uri,
                                  "format": model_format, "format_version": format_version,
                                  "reference_rows": rows, "aliases": aliases or []}})
    return version


def _alias_set(model, name, version) -> None:
    if not re.match(r"^[a-z][-a-z0-9]{0,39}$", name):
        raise ValidationError({"aliases": [f"{name!r} is not a valid alias (lowercase letters, digits, '-')."]})
    ModelAlias.objects.update_or_create(model=model, name=name, defaults={"version": version})


@transaction.atomic
def alias_set(*, actor, version: ModelVersion, name: str) -> None:
    previous = ModelAlias.objects.filter(model=version.model, name=name).select_related("version").first()
    _alias_set(version.model, name, version)
    audit.record(action="model.alias", actor=actor, target=version.model, project=version.model.project,
                 details={"alias": name, "old": previous.version.version if previous else None,
                          "new": version.version})
