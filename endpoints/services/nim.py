"""NVIDIA NIM runtimes and NIM endpoints (docs/nim.md): install one runtime per NIM from the
catalog, and deploy a NIM on a GPU profile that fits one of its shapes.

A NIM runtime is a console-installed ``ServingRuntime`` row whose ``nim`` field holds the catalog
entry, the NGC connection whose Secret and pull secret it names, and the model cache it serves
from; the worker applies it in each project namespace that deploys it, before the
InferenceService, like every custom runtime. A NIM endpoint is an ordinary endpoint: its model
version (``nim-<key>`` in the project, ``pvc://<cache>/``, the NIM's format and version, the NGC
connection) makes the worker write the NGC Secret and pull secret into the namespace first.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from audit import services as audit
from endpoints import connections as connection_rules
from endpoints import nim
from endpoints.models import (
    Cluster,
    Endpoint,
    HardwareProfile,
    ModelVersion,
    NimCatalogEntry,
    Project,
    RegisteredModel,
    ServingRuntime,
    StorageConnection,
)
from endpoints.services import connections as connection_services
from endpoints.services import endpoints as endpoint_services
from endpoints.services import registry

DEFAULT_CACHE = "nvidia-nim-pvc"
DEFAULT_CACHE_SIZE = "300Gi"  # NVIDIA's nvidia-nim-cache.yaml asks for 300G
# The NIM writes its downloaded engine to the cache: modes that allow writing. ReadWriteMany (NVIDIA's
# layout) lets every replica, on any node, share one download.
CACHE_ACCESS_MODES = ("ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod")


def entry_of(runtime: ServingRuntime) -> nim.NimEntry | None:
    """The catalog entry a NIM runtime was installed from (None: not a NIM runtime)."""
    if not runtime or not runtime.nim:
        return None
    return nim.entry_from_json(runtime.nim["entry"])


def hardware_of(profile: HardwareProfile) -> nim.Hardware:
    return nim.Hardware(name=profile.name, accelerator_resource=profile.accelerator_resource,
                        accelerator_product=profile.accelerator_product, node_selector=dict(profile.node_selector or {}),
                        max_accelerators=profile.max_accelerators_per_replica)


def fitting_profiles(entry: nim.NimEntry, profiles) -> list[HardwareProfile]:
    """The enabled profiles on which some GPU count satisfies one of the NIM's shapes."""
    return [p for p in profiles if p.enabled and nim.profile_can_fit(entry, hardware_of(p))]


def catalog() -> list[nim.NimEntry]:
    """The shipped NIMs, then those admins added or imported."""
    return [*nim.builtin_entries(), *(nim.entry_from_json(row.data) for row in NimCatalogEntry.objects.all())]


def catalog_rows() -> list[tuple[nim.NimEntry, str]]:
    """(entry, where it comes from) for the catalog page."""
    rows = [(entry, "Shipped with the console") for entry in nim.builtin_entries()]
    for row in NimCatalogEntry.objects.all():
        origin = row.get_source_display() + (f" ({row.imported_from})" if row.imported_from else "")
        rows.append((nim.entry_from_json(row.data), origin))
    return rows


@transaction.atomic
def nim_entry_create(*, actor, data: dict, source: str = NimCatalogEntry.Source.CUSTOM,
                     imported_from: str = "") -> NimCatalogEntry:
    """Add a NIM to the catalog (platform admins): checked like the shipped entries, refused when
    that key and version exist already (a new version is a new entry). Audited as
    ``nim.entry_create`` with the entry."""
    try:
        entry = nim.entry_from_json(data)
    except nim.NimError as exc:
        raise ValidationError({"data": [f"{exc.field}: {exc.message}" if exc.field != "__all__" else exc.message]}) from None
    if any(e.key == entry.key and e.version == entry.version for e in catalog()):
        raise ValidationError({"data": [f"The catalog has NIM {entry.key} {entry.version} already; a new version "
                                        "is a new entry."]})
    row = NimCatalogEntry.objects.create(key=entry.key, version=entry.version, data=entry.to_json(), source=source,
                                         imported_from=imported_from[:200], created_by=actor)
    audit.record(action="nim.entry_create", actor=actor, target=row,
                 details={"new": entry.to_json(), "source": source,
                          **({"imported_from": imported_from} if imported_from else {})})
    return row


def nim_entries_import(*, actor, cluster: Cluster) -> list[NimCatalogEntry]:
    """Import the NIMs installed on ``cluster`` by someone else: every ClusterServingRuntime whose
    format is ``nvidia-nim-*`` and that the catalog lacks becomes an entry (its GPU shapes are a
    guess — one GPU of 24 GiB — until an admin adds a corrected version)."""
    with cluster.client() as client:
        items, _rv = client.list(None, kind="ClusterServingRuntime")
    known = {(e.key, e.version) for e in catalog()}
    created = []
    for obj in items:
        try:
            entry = nim.entry_from_runtime(obj)
        except nim.NimError:
            continue
        if entry is None or (entry.key, entry.version) in known:
            continue
        name = (obj.get("metadata") or {}).get("name", "")
        created.append(nim_entry_create(actor=actor, data=entry.to_json(), source=NimCatalogEntry.Source.IMPORTED,
                                        imported_from=f"ClusterServingRuntime {name} on cluster {cluster.name}"))
        known.add((entry.key, entry.version))
    return created


def catalog_entry(key: str, version: str = "") -> nim.NimEntry | None:
    return next((e for e in catalog() if e.key == key and (not version or e.version == version)), None)


def secret_names(connection: StorageConnection) -> tuple[str, str]:
    """(the Opaque Secret with NGC_API_KEY, the nvcr.io pull secret) of an NGC connection."""
    name = connection_rules.object_name(connection.name, platform=connection.is_platform)
    return name, name + connection_rules.PULL_SUFFIX


def runtime_manifest(runtime: ServingRuntime, namespace: str, labels: dict) -> dict:
    """The namespaced ServingRuntime the worker applies for a NIM runtime row."""
    entry = entry_of(runtime)
    connection = StorageConnection.objects.filter(pk=runtime.nim.get("connection_id")).first()
    if connection is None:
        raise ValueError(f"NIM runtime {runtime.name} has lost its NGC connection.")
    secret, pull = secret_names(connection)
    return nim.runtime_manifest(entry, name=runtime.name, secret_name=secret, pull_secret_name=pull,
                                namespace=namespace, labels=labels)


def _ngc_connection_problem(connection: StorageConnection | None, project: Project | None = None) -> str | None:
    if connection is None:
        return "Choose the NGC connection whose API key the NIM downloads with."
    if connection.kind != StorageConnection.Kind.NGC:
        return f"Connection {connection.name} is a {connection.get_kind_display()} connection, not an NGC API key."
    if project is not None:
        if not connection_services.usable_in(project).filter(pk=connection.pk).exists():
            return (f"Connection {connection.name} is not available to project {project.name}: use one of the "
                    "project's NGC connections, or opt the project into a platform-wide one first.")
        return None
    if not connection.is_platform:
        return ("A NIM runtime serves every project: choose a platform-wide NGC connection (projects opt into it "
                "before they deploy).")
    return None


def _cache_problems(*, name: str, create: bool, size: str, storage_class: str, access_mode: str) -> dict:
    errors: dict[str, list[str]] = {}
    if not nim._NAME.match(name or "") or len(name) > 63:
        errors["cache_name"] = ["The cache is a PersistentVolumeClaim name (lowercase letters, digits, '-', '.')."]
    if not create:
        return errors
    if not nim._QUANTITY.match(size or "") or nim.quantity_is_zero(size):
        errors["cache_size"] = [f"{size!r} is not a storage size (a Kubernetes quantity such as 300Gi)."]
    if storage_class and (not nim._NAME.match(storage_class) or len(storage_class) > 253):
        errors["cache_storage_class"] = ["A storage class name: lowercase letters, digits, '-' and '.' (leave it "
                                         "empty for the cluster's default class)."]
    if access_mode not in CACHE_ACCESS_MODES:
        errors["cache_access_mode"] = [f"Choose one of {', '.join(CACHE_ACCESS_MODES)} (the NIM writes its "
                                       "engine to the cache)."]
    return errors


def cache_of(runtime: ServingRuntime) -> dict:
    """The model cache a NIM runtime serves from: {"name", "create", "size", "storage_class",
    "access_mode"} (``create`` false: the claim is the cluster admin's, the console only names it)."""
    cache = dict((runtime.nim or {}).get("cache") or {})
    cache.setdefault("create", False)
    return cache


def cache_manifest(runtime: ServingRuntime, namespace: str) -> dict | None:
    """The PersistentVolumeClaim the console applies for a NIM runtime installed with "create the
    cache" (None otherwise)."""
    cache = cache_of(runtime)
    if not runtime.nim or not cache["create"]:
        return None
    labels = {"app.kubernetes.io/managed-by": "inference-console",
              "inference-console.io/instance": settings.CONSOLE_INSTANCE,
              "inference-console.io/nim-runtime": runtime.name}
    return nim.cache_pvc_manifest(name=cache["name"], namespace=namespace, size=cache["size"],
                                  storage_class=cache.get("storage_class", ""),
                                  access_mode=cache.get("access_mode", "ReadWriteMany"), labels=labels)


@transaction.atomic
def nim_runtime_install(*, actor, entry: nim.NimEntry, connection: StorageConnection,
                        cache_name: str = DEFAULT_CACHE, cache_create: bool = False,
                        cache_size: str = DEFAULT_CACHE_SIZE, cache_storage_class: str = "",
                        cache_access_mode: str = "ReadWriteMany", project: Project | None = None) -> ServingRuntime:
    """Install a NIM as a runtime (platform admins): the ServingRuntime is applied in each project
    namespace that deploys it, with the model-cache PersistentVolumeClaim when ``cache_create``
    (NVIDIA's ``nvidia-nim-pvc``: ReadWriteMany, 300Gi). Audited as ``runtime.create`` with the
    NIM, the cache and the connection's name (never a value).

    With ``project`` (an Owner installing for their project; the caller checks ``manage``), the
    runtime serves that project only and may use any NGC connection available to it."""
    errors: dict[str, list[str]] = {}
    name = project_runtime_name(entry, project) if project is not None else entry.runtime_name
    if problem := _ngc_connection_problem(connection, project):
        errors["connection"] = [problem]
    cache_size, cache_storage_class = (cache_size or "").strip(), (cache_storage_class or "").strip()
    errors.update(_cache_problems(name=cache_name, create=cache_create, size=cache_size,
                                  storage_class=cache_storage_class, access_mode=cache_access_mode))
    if ServingRuntime.objects.filter(name=name).exists():
        errors["nim"] = [f"A runtime named {name} exists already (NIM {entry.key} {entry.version} is "
                         f"installed{' for ' + project.name if project is not None else ''})."]
    if errors:
        raise ValidationError(errors)
    cache = ({"name": cache_name, "create": True, "size": cache_size, "storage_class": cache_storage_class,
              "access_mode": cache_access_mode} if cache_create else {"name": cache_name, "create": False})
    runtime = ServingRuntime.objects.create(
        name=name, project=project,
        display_name=f"NIM {entry.display_name} {entry.version}" + (f" ({project.name})" if project else ""),
        description=f"NVIDIA NIM {entry.model_id} ({entry.api} API), image {entry.image}",
        supported_formats=[{"name": entry.model_format, "version": entry.version, "autoSelect": True, "priority": 1}],
        protocols=["v2", "grpc-v2"], openai_compatible=True, container_image=entry.image,
        nim={"entry": entry.to_json(), "connection_id": connection.pk, "connection": connection.name,
             "cache": cache},
    )
    audit.record(action="runtime.create", actor=actor, target=runtime, project=project,
                 details={"new": {"name": runtime.name, **({"project": project.name} if project else {}), "nim": f"{entry.key} {entry.version}", "image": entry.image,
                                  "model_format": entry.model_format, "connection": connection.name,
                                  "cache": cache}})
    return runtime


def ngc_connections_for(project: Project):
    """The NGC connections a NIM installed for ``project`` may use."""
    return connection_services.usable_in(project).filter(kind=StorageConnection.Kind.NGC)


def project_runtime_name(entry: nim.NimEntry, project: Project) -> str:
    """The name of a NIM runtime installed for one project (unique in the console; a Kubernetes
    name of at most 63 characters)."""
    suffix = f"-{project.name}"
    return entry.runtime_name[:63 - len(suffix)].rstrip("-.") + suffix


def nim_version(*, actor, project: Project, runtime: ServingRuntime, entry: nim.NimEntry) -> ModelVersion:
    """The project's model version of the NIM (registered on first deploy, reused after)."""
    if runtime.project_id is not None and runtime.project_id != project.pk:
        raise ValidationError({"runtime": [f"NIM runtime {runtime.name} was installed for project "
                                           f"{runtime.project.name} only."]})
    connection = StorageConnection.objects.filter(pk=runtime.nim.get("connection_id")).first()
    if connection is None or not connection_services.usable_in(project).filter(pk=connection.pk).exists():
        raise ValidationError({"runtime": [
            f"Project {project.name} has not opted into NGC connection {runtime.nim.get('connection')}: an Owner of "
            "the project opts in on the connection's page before a NIM can be deployed."]})
    model_name = f"nim-{entry.key}".replace(".", "-")[:63].rstrip("-")
    uri = nim.storage_uri(runtime.nim["cache"]["name"])
    model = RegisteredModel.objects.filter(project=project, name=model_name).first()
    if model is None:
        model = registry.model_register(actor=actor, project=project, name=model_name, task=entry.task,
                                        description=f"NVIDIA NIM {entry.model_id}")
    version = (model.versions.filter(storage_uri=uri, model_format=entry.model_format, format_version=entry.version,
                                     connection=connection, archived_at__isnull=True).order_by("-version").first())
    if version is None:
        version = registry.model_version_create(actor=actor, model=model, storage_uri=uri,
                                                model_format=entry.model_format, format_version=entry.version,
                                                connection=connection,
                                                description=f"NIM {entry.key} {entry.version} from the NIM cache")
    return version


def refuse_unfit(entry: nim.NimEntry, profile: HardwareProfile | None, count: int) -> None:
    """ValidationError on ``hardware_profile`` naming why the profile fits none of the NIM's shapes."""
    if problem := nim.fit_problem(entry, hardware_of(profile) if profile else None, count):
        raise ValidationError({"hardware_profile": [problem]})


def endpoint_config(entry: nim.NimEntry, *, runtime: ServingRuntime, version: ModelVersion,
                    hardware_profile: HardwareProfile | None, accelerator_count: int,
                    deployment_mode: str, min_replicas: int, max_replicas: int) -> dict:
    """The endpoint fields of a NIM deployment: the runtime by name, the OpenAI API, NVIDIA's
    autoscaling target (10 concurrent requests), the GPU profile and the NIM's CPU and memory
    (written on the model as well: a hardware profile's defaults would otherwise replace the
    runtime's)."""
    knative = str(deployment_mode) == Endpoint.DeploymentMode.KNATIVE
    return {"model_version": version, "runtime": runtime, "protocol": Endpoint.Protocol.OPENAI.value,
            "deployment_mode": str(deployment_mode), "min_replicas": min_replicas, "max_replicas": max_replicas,
            # NVIDIA's autoscaling.knative.dev/target "10" (Knative only; Standard mode's HPA scales on
            # CPU or memory, and KServe rejects concurrency there).
            "scale_metric": Endpoint.ScaleMetric.CONCURRENCY.value if knative else "",
            "scale_target": 10 if knative else None,
            "hardware_profile": hardware_profile, "accelerator_count": accelerator_count,
            "cpu_request": entry.cpu_request, "cpu_limit": entry.cpu_limit,
            "memory_request": entry.memory_request, "memory_limit": entry.memory_limit}


def nim_deploy(*, actor, project: Project, runtime: ServingRuntime, name: str, hardware_profile: HardwareProfile | None,
               accelerator_count: int, deployment_mode: str = Endpoint.DeploymentMode.STANDARD,
               min_replicas: int = 1, max_replicas: int = 1) -> Endpoint:
    """Deploy a NIM as an endpoint of ``project`` (API and tests; the page goes through the
    plan): refused unless the GPU profile fits one of the NIM's shapes; the endpoint services
    validate (Knative flags included) and audit the rest."""
    entry = entry_of(runtime)
    if entry is None:
        raise ValidationError({"runtime": ["Choose a NIM runtime."]})
    refuse_unfit(entry, hardware_profile, accelerator_count)
    with transaction.atomic():
        version = nim_version(actor=actor, project=project, runtime=runtime, entry=entry)
        config = endpoint_config(entry, runtime=runtime, version=version, hardware_profile=hardware_profile,
                                 accelerator_count=accelerator_count, deployment_mode=deployment_mode,
                                 min_replicas=min_replicas, max_replicas=max_replicas)
        return endpoint_services.endpoint_create(actor=actor, project=project, name=name, **config)


def endpoint_problems(endpoint: Endpoint, capabilities) -> dict[str, list[str]]:
    """The NIM rules of an endpoint whose runtime is a NIM runtime (any path: wizard, API, edit):
    the GPU profile fits one of the NIM's shapes, and Knative has the flags NIM pods need."""
    runtime = endpoint.runtime if endpoint.runtime_id else None
    entry = entry_of(runtime) if runtime is not None else None
    if entry is None:
        return {}
    errors: dict[str, list[str]] = {}
    if runtime.project_id is not None and runtime.project_id != endpoint.project_id:
        errors["runtime"] = [f"NIM runtime {runtime.name} was installed for another project only."]
    profile = endpoint.hardware_profile if endpoint.hardware_profile_id else None
    if problem := nim.fit_problem(entry, hardware_of(profile) if profile else None, endpoint.accelerator_count):
        errors["hardware_profile"] = [problem]
    knative = (str(endpoint.deployment_mode) == Endpoint.DeploymentMode.KNATIVE and capabilities is not None
               and capabilities.knative is not False)
    if knative and (problem := nim.knative_problem(capabilities.knative_features,
                                                   cluster=f"cluster {endpoint.project.cluster.name}")):
        errors["deployment_mode"] = [problem]
    return errors


def sync_namespace_runtimes(client, project: Project, *, report: dict) -> None:
    """The reconcile pass for the NIM runtimes the namespace's endpoints use: a missing one is
    applied, one edited outside the console (image, env, secrets, volumes…) is put back and the
    repair audited (``runtime.drift_corrected``, naming the changed fields)."""
    from endpoints import reconcile
    from endpoints.services.apply import serving_runtime_manifest

    runtimes = ServingRuntime.objects.filter(
        nim__isnull=False, pk__in=project.endpoints.exclude(state=Endpoint.State.DELETING).values("runtime"))
    for runtime in runtimes:
        _sync_cache(client, project, runtime, report=report)
        manifest = serving_runtime_manifest(runtime, project.namespace)
        live = client.get("ServingRuntime", project.namespace, runtime.name)
        if live is not None and reconcile.desired_subset(live, manifest).get("spec") == manifest["spec"]:
            continue
        client.apply_serving_runtime(manifest)
        if live is None:
            report["nim_runtimes_applied"] = report.get("nim_runtimes_applied", 0) + 1
            continue
        report["nim_runtimes_repaired"] = report.get("nim_runtimes_repaired", 0) + 1
        changed = sorted(key for key, value in manifest["spec"].items() if (live.get("spec") or {}).get(key) != value)
        audit.record(action="runtime.drift_corrected", actor=None, actor_name="reconciler", target=runtime,
                     project=project, details={"namespace": project.namespace, "changed": changed,
                                               "reason": "the ServingRuntime was changed outside the console"})


def _sync_cache(client, project: Project, runtime: ServingRuntime, *, report: dict) -> None:
    """Recreate the model-cache claim of a runtime installed with "create the cache" when it is gone
    from the namespace (audited ``runtime.cache_recreated``). An existing claim is left as it is:
    a bound claim's spec is immutable, and the console never deletes a claim holding a cache."""
    manifest = cache_manifest(runtime, project.namespace)
    if manifest is None or client.get("PersistentVolumeClaim", project.namespace, manifest["metadata"]["name"]):
        return
    client.apply(manifest)
    report["nim_caches_recreated"] = report.get("nim_caches_recreated", 0) + 1
    audit.record(action="runtime.cache_recreated", actor=None, actor_name="reconciler", target=runtime,
                 project=project, details={"namespace": project.namespace, "claim": manifest["metadata"]["name"],
                                           "size": manifest["spec"]["resources"]["requests"]["storage"],
                                           "reason": "the model-cache PersistentVolumeClaim was missing"})
