"""The model registry: models registered in a project, their immutable numbered versions (with
the reference profile drift is measured against) and aliases pointing at a version."""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max

from audit import services as audit
from endpoints import profiles, validation
from endpoints.models import ModelAlias, ModelVersion, Project, RegisteredModel, StorageConnection
from endpoints.services import connections as connection_services
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


def check_version_storage(*, model: RegisteredModel, storage_uri: str, connection: StorageConnection | None,
                          skip_check: bool = False):
    """Refuse a version whose artifact the connection cannot serve or the storage says is not
    there (the preflight, with the connection's credentials), so a wrong bucket, key or secret
    shows at registration instead of as a failed endpoint. ``skip_check`` registers anyway when
    the console cannot reach the storage (clusters often can when the console cannot); the
    storage's own refusals are never skipped. Returns the preflight (None without a connection)."""
    validate_storage_uri(storage_uri)
    if connection is None:
        return None
    if not connection_services.usable_in(model.project).filter(pk=connection.pk).exists():
        raise ValidationError({"connection": [f"Connection {connection.name} is not available in project "
                                              f"{model.project.name} (a platform-wide connection must be opted into)."]})
    result = connection_services.preflight(storage_uri, connection)
    if result.blocking:
        raise ValidationError({"storage_uri": [f"{result.check.message} (checked with connection {connection.name})."]})
    if result.check.state == "unreachable" and not skip_check:
        raise ValidationError({"storage_uri": [f"{result.check.message} — the console could not reach the storage to "
                                               "check it. If only the cluster can reach it, register without the "
                                               "check."]})
    return result


def model_version_create(*, actor, model: RegisteredModel, storage_uri: str, model_format: str,
                         format_version: str = "", input_signature: list | None = None,
                         prediction_column: str = "", reference_file=None, reference_filename: str = "",
                         source_run_uri: str = "", description: str = "", aliases: list[str] | None = None,
                         connection: StorageConnection | None = None, skip_storage_check: bool = False
                         ) -> ModelVersion:
    """Register the next version of ``model``. A reference sample (CSV or Parquet) computes
    the reference profile that drift is measured against; a bad file refuses the whole
    registration with the reason, so nothing half-made is stored. With a storage connection the
    artifact is checked first (outside the transaction: it is a network call)."""
    if source_run_uri.strip().split(":", 1)[0].strip().lower() in SCRIPT_SCHEMES:
        raise ValidationError({"source_run_uri": ["Give the training run's address (e.g. https://… or runs:/…), "
                                                  "not a script."]})
    if not model_format:
        raise ValidationError({"model_format": ["Choose the model's format (e.g. sklearn, xgboost, huggingface)."]})
    preflight = check_version_storage(model=model, storage_uri=storage_uri, connection=connection,
                                      skip_check=skip_storage_check)
    with transaction.atomic():
        return _create_version(actor=actor, model=model, storage_uri=storage_uri, model_format=model_format,
                               format_version=format_version, input_signature=input_signature,
                               prediction_column=prediction_column, reference_file=reference_file,
                               reference_filename=reference_filename, source_run_uri=source_run_uri,
                               description=description, aliases=aliases, connection=connection,
                               preflight=preflight)


def _create_version(*, actor, model, storage_uri, model_format, format_version, input_signature, prediction_column,
                    reference_file, reference_filename, source_run_uri, description, aliases, connection,
                    preflight) -> ModelVersion:
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
        source_run_uri=source_run_uri, description=description, created_by=actor, connection=connection,
    )
    for alias in aliases or []:
        _alias_set(model, alias, version)
    audit.record(action="modelversion.create", actor=actor, target=version, project=model.project,
                 details={"new": {"model": model.name, "version": number, "storage_uri": storage_uri,
                                  "format": model_format, "format_version": format_version,
                                  "reference_rows": rows, "aliases": aliases or [],
                                  **({"connection": connection.name,
                                      "storage_check": preflight.check.state if preflight else "not checked"}
                                     if connection is not None else {})}})
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
