"""Storage connections: create, change, rotate, delete, opt in; the preflight check of a storage
URI with a connection's credentials; and the Secrets and ServiceAccounts they become on a
cluster (applied before an endpoint that needs them, repaired and cleaned up by the periodic
pass). Secret values are decrypted only here and leave only inside a Secret manifest sent to
the cluster; audit details carry field names, never values (docs/storage.md)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from audit import services as audit
from console import crypto
from endpoints import connections as rules
from endpoints import storage_check
from endpoints.cluster import ClusterError
from endpoints.models import ConnectionOptIn, Endpoint, ModelVersion, Project, StorageConnection

MANAGED_KINDS = ("Secret", "ServiceAccount", "ConfigMap")
logger = logging.getLogger(__name__)


# --- secret values -----------------------------------------------------------------------------


@sensitive_variables()
def secret_values(connection: StorageConnection) -> dict:
    """The connection's decrypted secret values (for the cluster Secret and the preflight only)."""
    if not connection.secret_ciphertext:
        return {}
    return json.loads(crypto.decrypt(connection.secret_ciphertext))


def _store_secrets(connection: StorageConnection, values: dict) -> None:
    connection.secret_ciphertext = crypto.encrypt(json.dumps(values, sort_keys=True)) if values else ""
    connection.secret_fields = sorted(values)


def redact(text: str, connection: StorageConnection | None = None, values: dict | None = None) -> str:
    """``text`` with every secret value of the connection replaced by a mask (error messages from a
    cluster or a storage server could quote what they were sent)."""
    values = values if values is not None else (secret_values(connection) if connection is not None else {})
    for value in sorted((v for v in values.values() if isinstance(v, str) and len(v) >= 4), key=len, reverse=True):
        text = text.replace(value, "••••••••")
    return text


def _field_errors(exc: rules.ConnectionError_) -> ValidationError:
    return ValidationError({exc.field: [exc.message]})


def _public_config(connection: StorageConnection) -> dict:
    """The settings as audit details show them (a CA bundle is long and public: its size only)."""
    config = dict(connection.config)
    if config.get("ca_bundle"):
        config["ca_bundle"] = f"{len(config['ca_bundle'])} characters of PEM"
    return config


# --- who uses a connection ---------------------------------------------------------------------


def endpoints_using(connection: StorageConnection, *, project: Project | None = None):
    """Endpoints (not being deleted) whose primary or canary version uses the connection."""
    queryset = Endpoint.objects.filter(
        Q(model_version__connection=connection) | Q(canary_version__connection=connection)
    ).exclude(state=Endpoint.State.DELETING).select_related("project")
    if project is not None:
        queryset = queryset.filter(project=project)
    return queryset.distinct().order_by("project__name", "name")


def usable_in(project: Project):
    """The connections a project's model versions may use: its own and the platform-wide ones it opted into."""
    return StorageConnection.objects.filter(Q(project=project) | Q(project__isnull=True, opt_ins__project=project)
                                            ).distinct().order_by("name")


# --- writes ------------------------------------------------------------------------------------


@transaction.atomic
@sensitive_variables()
def connection_create(*, actor, project: Project | None, name: str, kind: str, config: dict | None = None,
                      secrets: dict | None = None, display_name: str = "", description: str = "") -> StorageConnection:
    if kind not in rules.KINDS:
        raise ValidationError({"kind": [f"Choose one of: {', '.join(rules.KINDS)}."]})
    if not rules.NAME_RE.match(name or ""):
        raise ValidationError({"name": ["Use 1–40 lowercase letters, digits and '-', starting and ending with a "
                                        "letter or digit."]})
    if StorageConnection.objects.filter(project=project, name=name).exists():
        where = f"project {project.name}" if project else "the platform"
        raise ValidationError({"name": [f"{where.capitalize()} already has a connection named {name}."]})
    try:
        clean = rules.clean_config(kind, config or {})
        values = rules.clean_secrets(kind, clean, secrets or {})
    except rules.ConnectionError_ as exc:
        raise _field_errors(exc) from None
    connection = StorageConnection(project=project, name=name, kind=kind, config=clean, display_name=display_name,
                                   description=description, created_by=actor)
    _store_secrets(connection, values)
    connection.full_clean(exclude=["secret_ciphertext", "secret_fields"])
    connection.save()
    audit.record(action="connection.create", actor=actor, target=connection, project=project,
                 details={"new": {"name": name, "kind": kind, "config": _public_config(connection),
                                  "secret_fields": connection.secret_fields,
                                  "scope": "platform" if project is None else "project"}})
    return connection


@transaction.atomic
@sensitive_variables()
def connection_update(*, actor, connection: StorageConnection, config: dict | None = None,
                      display_name: str | None = None, description: str | None = None,
                      secrets: dict | None = None) -> StorageConnection:
    """Change settings and, when new secret values are given, rotate (blank values keep the stored ones)."""
    connection = StorageConnection.objects.select_for_update().get(pk=connection.pk)
    old_config = _public_config(connection)
    new_config = connection.config
    if config is not None:
        try:
            new_config = rules.clean_config(connection.kind, config)
        except rules.ConnectionError_ as exc:
            raise _field_errors(exc) from None
    given = {k: v for k, v in (secrets or {}).items() if v not in (None, "")}
    previous = secret_values(connection)
    try:
        values = rules.clean_secrets(connection.kind, new_config, given, previous=previous)
    except rules.ConnectionError_ as exc:
        raise _field_errors(exc) from None
    rotated = values != previous
    changes_old, changes_new = {}, {}
    if new_config != connection.config:
        connection.config = new_config
        changes_old["config"], changes_new["config"] = old_config, _public_config(connection)
    for name, value in (("display_name", display_name), ("description", description)):
        if value is not None and value != getattr(connection, name):
            changes_old[name], changes_new[name] = getattr(connection, name), value
            setattr(connection, name, value)
    if rotated:
        _store_secrets(connection, values)
        connection.secret_version += 1
        connection.secret_rotated_at = timezone.now()
    if not changes_new and not rotated:
        return connection
    connection.save()
    using = [f"{e.project.name}/{e.name}" for e in endpoints_using(connection)]
    if changes_new:
        audit.record(action="connection.update", actor=actor, target=connection, project=connection.project,
                     details={"old": changes_old, "new": changes_new, "endpoints": using})
    if rotated:
        audit.record(action="connection.rotate", actor=actor, target=connection, project=connection.project,
                     details={"secret_version": connection.secret_version,
                              "secret_fields_changed": sorted(k for k in set(values) | set(previous)
                                                              if values.get(k) != previous.get(k)),
                              "endpoints": using,
                              "restarted": [f"{e.project.name}/{e.name}" for e in _restart_after_rotation(
                                  connection, actor=actor)]})
    _enqueue_cluster_sync(connection)
    return connection


def rotation_plan(connection: StorageConnection) -> dict:
    """What rotating the connection's secret does (shown before the rotation): the Secret is
    updated in every namespace that has it; endpoints whose serving container reads the secret
    when it starts (Hugging Face tokens) are restarted through a new generation; the others keep
    running (KServe reads storage credentials only when a pod starts and downloads) and use the
    new values at their next new revision or scale-up."""
    using = list(endpoints_using(connection))
    restart = [e for e in using if connection.kind == "hf"]
    return {"endpoints": using, "restart": restart, "keep": [e for e in using if e not in restart],
            "namespaces": sorted({e.project.namespace for e in using})}


def _restart_after_rotation(connection: StorageConnection, *, actor) -> list[Endpoint]:
    from endpoints.services.endpoints import restart_for_credentials

    plan = rotation_plan(connection)
    for endpoint in plan["restart"]:
        restart_for_credentials(actor=actor, endpoint=endpoint, connection=connection)
    return plan["restart"]


@transaction.atomic
def connection_delete(*, actor, connection: StorageConnection) -> None:
    """Delete a connection no version uses; refused with the list otherwise. Its Secrets and
    ServiceAccounts are removed from the clusters by the next pass (orphans)."""
    connection = StorageConnection.objects.select_for_update().get(pk=connection.pk)
    using = list(endpoints_using(connection))
    if using:
        names = ", ".join(f"{e.project.name}/{e.name}" for e in using)
        raise ValidationError({"__all__": [f"Connection {connection.name} is used by {len(using)} endpoint"
                                           f"{'s' if len(using) != 1 else ''}: {names}. Move them to other "
                                           "versions or delete them first."]})
    versions = list(ModelVersion.objects.filter(connection=connection).select_related("model", "model__project"))
    if versions:
        names = ", ".join(f"{v.model.project.name}/{v.model.name} v{v.version}" for v in versions[:20])
        raise ValidationError({"__all__": [f"Connection {connection.name} is the storage connection of "
                                           f"{len(versions)} model version{'s' if len(versions) != 1 else ''} "
                                           f"({names}); model versions are immutable, so it stays while they exist."]})
    audit.record(action="connection.delete", actor=actor, target=connection, project=connection.project,
                 details={"old": {"name": connection.name, "kind": connection.kind,
                                  "config": _public_config(connection)}})
    projects = list(Project.objects.filter(Q(pk=connection.project_id) | Q(connection_opt_ins__connection=connection)))
    connection.delete()
    for project in projects:
        _enqueue_project_sync(project)


@transaction.atomic
def connection_opt_in(*, actor, connection: StorageConnection, project: Project) -> None:
    if not connection.is_platform:
        raise ValidationError({"__all__": ["Only platform-wide connections are opted into."]})
    _row, created = ConnectionOptIn.objects.get_or_create(connection=connection, project=project,
                                                          defaults={"created_by": actor})
    if created:
        audit.record(action="connection.opt_in", actor=actor, target=connection, project=project,
                     details={"project": project.name})


@transaction.atomic
def connection_opt_out(*, actor, connection: StorageConnection, project: Project) -> None:
    using = list(endpoints_using(connection, project=project))
    if using:
        raise ValidationError({"__all__": [f"Endpoints of {project.name} use {connection.name}: "
                                           f"{', '.join(e.name for e in using)}."]})
    deleted, _ = ConnectionOptIn.objects.filter(connection=connection, project=project).delete()
    if deleted:
        audit.record(action="connection.opt_out", actor=actor, target=connection, project=project,
                     details={"project": project.name})
        _enqueue_project_sync(project)


# --- preflight ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Preflight:
    """A storage check as pages show it: the check plus which connection made it."""

    uri: str
    connection_name: str
    check: storage_check.StorageCheck

    @property
    def ok(self) -> bool:
        return self.check.state == "ok"

    @property
    def blocking(self) -> bool:
        """Definite answers that the artifact cannot be downloaded (the storage said so)."""
        return self.check.state in ("missing_container", "missing_object", "denied", "invalid")


@sensitive_variables()
def preflight(uri: str, connection: StorageConnection | None, *, timeout: float = 5.0) -> Preflight:
    """Check with the connection's credentials that ``uri`` exists and is readable."""
    if connection is None:
        check = storage_check.StorageCheck(state="not_checked", message="Public storage: not checked before deploy "
                                                                        "(choose a connection to have it checked).")
        return Preflight(uri=uri, connection_name="", check=check)
    problem = rules.uri_problem(connection.kind, connection.config, uri)
    if problem:
        return Preflight(uri=uri, connection_name=connection.name,
                         check=storage_check.StorageCheck(state="invalid", message=problem))
    if connection.kind == "ngc":
        # A NIM cache is a PVC in the namespace: nothing to read from the console; the NIM
        # downloads its engine with the key when it starts.
        return Preflight(uri=uri, connection_name=connection.name, check=storage_check.StorageCheck(
            state="not_checked", message="A NIM cache volume is not checked before deploy; the NIM downloads its "
                                         "engine from NGC when it starts."))
    values = secret_values(connection)
    try:
        check = storage_check.check_storage(connection.kind, connection.config, values, uri, timeout=timeout)
    except Exception as exc:  # noqa: BLE001 - a check that breaks is an answer, not a failed page
        # Only the type is logged: the exception's text could quote what was sent to the storage.
        logger.warning("storage check with connection %s failed: %s", connection.pk, type(exc).__name__)
        check = storage_check.StorageCheck(
            state="unreachable", message=f"The check could not be completed ({type(exc).__name__}); try again later.")
    # Belt and braces: a storage server or library that quoted a credential never reaches a page.
    safe = storage_check.StorageCheck(state=check.state, message=redact(check.message, values=values),
                                      detail=json.loads(redact(json.dumps(check.detail, default=str), values=values)))
    return Preflight(uri=uri, connection_name=connection.name, check=safe)


# --- on the cluster ----------------------------------------------------------------------------


def _enqueue_project_sync(project: Project) -> None:
    from endpoints import tasks

    tasks.sync_connections_task.delay_on_commit(project_id=project.pk)


def _enqueue_cluster_sync(connection: StorageConnection) -> None:
    projects = {e.project for e in endpoints_using(connection)}
    if connection.project_id:
        projects.add(connection.project)
    for project in projects:
        _enqueue_project_sync(project)


def connections_for_namespace(project: Project) -> list[StorageConnection]:
    """The connections whose objects belong in the project's namespace: those of the versions its
    endpoints (primary or canary) serve."""
    ids = set(Endpoint.objects.filter(project=project).exclude(state=Endpoint.State.DELETING)
              .values_list("model_version__connection", flat=True))
    ids |= set(Endpoint.objects.filter(project=project).exclude(state=Endpoint.State.DELETING)
               .values_list("canary_version__connection", flat=True))
    ids.discard(None)
    return list(StorageConnection.objects.filter(pk__in=ids).order_by("pk"))


def desired_objects(project: Project, capabilities) -> list[dict]:
    """Every Secret, ServiceAccount and ConfigMap the project's namespace should hold."""
    objects: list[dict] = []
    for connection in connections_for_namespace(project):
        objects += manifests_for(connection, project.namespace, capabilities)
    return objects


@sensitive_variables()
def manifests_for(connection: StorageConnection, namespace: str, capabilities, *, values: dict | None = None
                  ) -> list[dict]:
    """``values``: the connection's secret values when the caller has decrypted them already."""
    return rules.cluster_objects(connection_name=connection.name, platform=connection.is_platform,
                                 kind=connection.kind, config=connection.config,
                                 secrets=values if values is not None else secret_values(connection),
                                 secret_version=connection.secret_version, namespace=namespace,
                                 capabilities=capabilities)


def managed_selector() -> str:
    from django.conf import settings

    return f"{rules.LABEL_MANAGED_BY}=inference-console,{rules.LABEL_INSTANCE}={settings.CONSOLE_INSTANCE}," \
           f"{rules.LABEL_CONNECTION}"


@sensitive_variables()
def apply_for_endpoint(client, endpoint: Endpoint, capabilities) -> list[str]:
    """Apply the objects of the connections the endpoint's versions use (before the
    InferenceService, so its pods find them). Returns the connection names."""
    names = []
    for version in (endpoint.model_version, endpoint.canary_version if endpoint.canary_version_id else None):
        if version is None or not version.connection_id:
            continue
        connection = version.connection
        values = secret_values(connection)
        for manifest in manifests_for(connection, endpoint.project.namespace, capabilities, values=values):
            try:
                client.apply(manifest)
            except ClusterError as exc:
                # The API server's message may quote the object: never let a value through.
                exc.message = redact(exc.message, values=values)
                for cause in exc.causes:
                    cause.message = redact(cause.message, values=values)
                exc.args = (exc.message,)
                raise
        names.append(connection.name)
    if names and not endpoint.project.has_connection_objects:
        Project.objects.filter(pk=endpoint.project_id).update(has_connection_objects=True)
    return names


def _owned(live: dict, manifest: dict) -> dict:
    """The parts of a live object the console sets (data, type, annotations and labels it owns,
    the account's secret lists), to compare with the manifest."""
    meta = live.get("metadata") or {}
    wanted_meta = manifest.get("metadata") or {}
    out = {"labels": {k: (meta.get("labels") or {}).get(k) for k in wanted_meta.get("labels") or {}},
           "annotations": {k: (meta.get("annotations") or {}).get(k) for k in wanted_meta.get("annotations") or {}}}
    for key in ("data", "type", "secrets", "imagePullSecrets"):
        if key in manifest:
            out[key] = live.get(key)
    return out


def _expected(manifest: dict) -> dict:
    meta = manifest.get("metadata") or {}
    out = {"labels": dict(meta.get("labels") or {}), "annotations": dict(meta.get("annotations") or {})}
    for key in ("data", "type", "secrets", "imagePullSecrets"):
        if key in manifest:
            out[key] = manifest[key]
    return out


@sensitive_variables()
def sync_namespace(client, project: Project, capabilities, *, report: dict) -> list[tuple[str, str]]:
    """Make the namespace hold exactly the connection objects its endpoints need: apply what is
    missing, repair what was edited outside the console (audited, values never shown), and return
    the managed objects no connection wants any more (kind, name) for the caller's deletion cap."""
    desired = {(m["kind"], m["metadata"]["name"]): m for m in desired_objects(project, capabilities)}
    if not desired and not project.has_connection_objects:
        return []
    live: dict[tuple[str, str], dict] = {}
    for kind in MANAGED_KINDS:
        items, _rv = client.list(project.namespace, managed_selector(), kind=kind)
        for item in items:
            live[(kind, item["metadata"]["name"])] = item
    for key, manifest in desired.items():
        current = live.pop(key, None)
        expected = _expected(manifest)
        owned = _owned(current, manifest) if current is not None else None
        if owned == expected:
            continue
        client.apply(manifest)
        if current is None:
            report["connection_objects_applied"] = report.get("connection_objects_applied", 0) + 1
            continue
        report["connection_objects_repaired"] = report.get("connection_objects_repaired", 0) + 1
        changed = sorted(k for k, v in expected.items() if owned.get(k) != v)
        connection_name = (manifest["metadata"].get("labels") or {}).get(rules.LABEL_CONNECTION, "")
        audit.record(action="connection.drift_corrected", actor=None, actor_name="reconciler",
                     target_type=key[0].lower(), target_id=f"{project.namespace}/{key[1]}",
                     target_repr=f"{key[0]} {project.namespace}/{key[1]}", project=project,
                     details={"connection": connection_name, "changed": changed,
                              "reason": f"the {key[0]} was changed outside the console (values not shown)"})
    has_objects = bool(desired or live)
    if has_objects != project.has_connection_objects:
        Project.objects.filter(pk=project.pk).update(has_connection_objects=has_objects)
        project.has_connection_objects = has_objects
    return [(kind, name) for (kind, name) in live]


def delete_orphans(client, project: Project, orphans: list[tuple[str, str]]) -> int:
    deleted = 0
    for kind, name in orphans:
        if client.delete(kind, project.namespace, name):
            deleted += 1
            audit.record(action="connection.object_deleted", actor=None, actor_name="reconciler",
                         target_type=kind.lower(), target_id=f"{project.namespace}/{name}",
                         target_repr=f"{kind} {project.namespace}/{name}", project=project,
                         details={"reason": "no endpoint in the namespace uses its connection any more"})
    return deleted


def sync_project(*, project_id: int) -> dict:
    """One project's connection objects, now (the periodic pass does the same for every project)."""
    from django.conf import settings

    from endpoints.services.endpoints import cluster_reading

    project = Project.objects.select_related("cluster").filter(pk=project_id).first()
    report: dict = {}
    if project is None or not project.cluster.enabled:
        return report
    client = project.cluster.client()
    orphans = sync_namespace(client, project, cluster_reading(project), report=report)
    # Over the deletion cap nothing is deleted here: the periodic pass refuses and raises the alert.
    deleted = delete_orphans(client, project, orphans) if len(orphans) <= settings.RECONCILE_MAX_DELETIONS else 0
    report["connection_objects_deleted"] = deleted
    return report
