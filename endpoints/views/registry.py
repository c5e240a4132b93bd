"""UI of the model registry and of the platform-admin pages (clusters, projects, hardware
profiles, runtimes).

Views stay thin: reads go through ``endpoints.selectors`` (which start from the permission
chokepoint), writes through ``endpoints.services``, whose field errors are shown on the form.
Registry pages are for every signed-in user and show only what they may see (invisible → 404,
visible but not allowed → 403). Admin pages are for platform admins; anyone else signed in gets
403 (the page's existence is no secret).
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, F, Max, Prefetch, Sum
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect
from django.urls import NoReverseMatch, path, reverse
from django.views.generic import FormView, ListView, TemplateView

from console.permissions import PermissionChecker, visible
from console.redaction import redact_ingest_keys
from console.views.base import PlatformAdminRequiredMixin
from endpoints import selectors
from endpoints.forms.registry import (
    AliasForm,
    BuiltinRuntimeForm,
    ClusterForm,
    HardwareProfileForm,
    ModelFilterForm,
    ModelVersionForm,
    ProjectForm,
    ProjectQuotaForm,
    RegisteredModelForm,
    RuntimeForm,
    add_service_errors,
)
from endpoints.models import Endpoint, ModelAlias, ProjectQuota
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
from endpoints.spec import ingest_url

PAGE_SIZE = 25


def crumbs(*items: tuple[str, str | None]) -> list[dict]:
    """Breadcrumb trail for ``endpoints/registry/_breadcrumbs.html``; the last item is the page."""
    return [{"label": label, "url": url} for label, url in items]


def endpoint_url(endpoint: Endpoint) -> str | None:
    """Link to an endpoint's page (owned by the endpoint views), or None when it has none."""
    for kwargs in ({"project": endpoint.project.name, "name": endpoint.name}, {"pk": endpoint.pk}):
        try:
            return reverse("endpoints:endpoint-detail", kwargs=kwargs)
        except NoReverseMatch:
            continue
    return None


def endpoint_create_url() -> str | None:
    """The endpoint wizard (owned by the endpoint views), or None when it is not installed."""
    try:
        return reverse("endpoints:endpoint-create")
    except NoReverseMatch:
        return None


class LoadObjectsMixin:
    """Loads the objects the URL names (``load_objects``) just before the handler runs. Placed
    after ``PlatformAdminRequiredMixin`` it runs only once the gate let the request through,
    so a non-admin learns nothing from a 404."""

    def dispatch(self, request, *args, **kwargs):
        self.load_objects()
        return super().dispatch(request, *args, **kwargs)

    def load_objects(self) -> None:
        """Load the objects the URL names (``self.kwargs``); 404 when missing."""


class ServiceFormView(FormView):
    """A form whose valid data goes to one service call; the service's ``ValidationError``
    comes back as form errors and nothing is stored."""

    template_name = "endpoints/registry/form.html"
    service_field_map: dict[str, str] = {}
    title = ""
    submit_label = "Save"

    def call_service(self, form):  # pragma: no cover - every subclass overrides it
        raise NotImplementedError

    def success_message(self, result) -> str:
        return ""

    def get_success_url_for(self, result) -> str:  # pragma: no cover - every subclass overrides it
        raise NotImplementedError

    def form_valid(self, form):
        try:
            result = self.call_service(form)
        except ValidationError as exc:
            add_service_errors(form, exc, self.service_field_map)
            return self.form_invalid(form)
        text = self.success_message(result)
        if text:
            messages.success(self.request, text)
        return HttpResponseRedirect(self.get_success_url_for(result))

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.setdefault("title", self.title)
        context.setdefault("submit_label", self.submit_label)
        return context


# --- registry ------------------------------------------------------------------------------------

def profile_summary(profile: dict | None) -> dict | None:
    """What the pages show of a reference profile: size and, per feature, type, bin or category
    count and share of missing values."""
    if not profile:
        return None

    def feature(entry: dict, role: str) -> dict:
        if entry["type"] == "numeric":
            bins = f"{len(entry.get('proportions', []))} bins"
            extent = f"{entry.get('min', 0):.4g} to {entry.get('max', 0):.4g}"
        else:
            named = [c for c in entry.get("categories", []) if c != "__other__"]
            bins = f"{len(named)} categories"
            extent = ", ".join(named[:5]) + (" …" if len(named) > 5 else "")
        return {"name": entry["name"], "type": entry["type"], "bins": bins, "extent": extent, "role": role,
                "missing_percent": round(100 * float(entry.get("missing", 0.0)), 1)}

    features = [feature(f, "feature") for f in profile.get("features", [])]
    if profile.get("prediction"):
        features.append(feature(profile["prediction"], "prediction"))
    return {"rows": profile.get("rows", 0), "feature_count": len(profile.get("features", [])),
            "has_prediction": bool(profile.get("prediction")), "features": features}


def versions_with_deployments(*, model, user):
    """The model's versions with aliases and the endpoints (visible to ``user``) that serve
    each one as primary or canary: a fixed number of queries whatever the counts."""
    endpoints = visible(Endpoint.objects.select_related("project").order_by("project__name", "name"), user, "view")
    return (
        model.versions.select_related("created_by")
        .prefetch_related(
            Prefetch("aliases", queryset=ModelAlias.objects.order_by("name")),
            Prefetch("endpoints", queryset=endpoints, to_attr="visible_endpoints"),
            Prefetch("canary_endpoints", queryset=endpoints, to_attr="visible_canary_endpoints"),
        )
        .order_by("-version")
    )


class ModelListView(LoginRequiredMixin, ListView):
    """Registered models the user may see, filtered by project and a search term."""

    template_name = "endpoints/registry/model_list.html"
    paginate_by = PAGE_SIZE

    def get_filter_form(self) -> ModelFilterForm:
        if not hasattr(self, "_filter_form"):
            form = ModelFilterForm(self.request.GET or None,
                                   projects=selectors.project_list_visible_to(user=self.request.user))
            form.is_valid()
            self._filter_form = form
        return self._filter_form

    def get_queryset(self):
        data = getattr(self.get_filter_form(), "cleaned_data", {})
        qs = selectors.model_list_visible_to(user=self.request.user, project=data.get("project"),
                                             search=data.get("q", ""))
        # Aggregating queries ignore Meta.ordering: order explicitly for stable pages.
        return qs.annotate(latest_version=Max("versions__version")).order_by("project__name", "name")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        user = self.request.user
        can_register = selectors.project_list_visible_to(user=user, action="deploy").exists()
        context.update(
            title="Models", filter_form=self.get_filter_form(), object_name_plural="models",
            description="Models registered in the projects you can see, with their versions.",
            create_url=reverse("endpoints:model-create") if can_register else None, create_label="Register a model",
        )
        return context


class ModelCreateView(LoginRequiredMixin, ServiceFormView):
    """Register a model in a project the user may deploy in."""

    form_class = RegisteredModelForm
    title = "Register a model"
    submit_label = "Register model"

    def get_form_kwargs(self):
        kwargs = super().get_form_kwargs()
        kwargs["projects"] = selectors.project_list_visible_to(user=self.request.user, action="deploy")
        return kwargs

    def get(self, request, *args, **kwargs):
        if not selectors.project_list_visible_to(user=request.user, action="deploy").exists():
            messages.info(request, "You may not register models in any project yet. Ask a project owner or a "
                                   "platform admin for the Deployer role on a project.")
        return super().get(request, *args, **kwargs)

    def get_initial(self):
        initial = super().get_initial()
        project = self.request.GET.get("project")
        if project:
            initial["project"] = selectors.project_list_visible_to(
                user=self.request.user, action="deploy").filter(name=project).first()
        return initial

    def call_service(self, form):
        data = form.cleaned_data
        return model_register(actor=self.request.user, project=data["project"], name=data["name"],
                              task=data["task"], description=data["description"])

    def success_message(self, model):
        return f"Model {model.name} registered in {model.project.name}. Register its first version next."

    def get_success_url_for(self, model):
        return reverse("endpoints:model-detail", kwargs={"pk": model.pk})

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(
            description="A model is registered once and versioned over time; each version can be deployed.",
            cancel_url=reverse("endpoints:model-list"),
            breadcrumbs=crumbs(("Models", reverse("endpoints:model-list")), ("Register", None)),
        )
        return context


class RegisteredModelDetailView(LoginRequiredMixin, TemplateView):
    """One model: its versions with aliases, reference profiles and where each is deployed."""

    template_name = "endpoints/registry/model_detail.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        user = self.request.user
        model = selectors.model_get(user=user, pk=self.kwargs["pk"])
        checker = PermissionChecker(user)
        checker.prefetch([model], ["deploy"])
        versions = list(versions_with_deployments(model=model, user=user))
        for version in versions:
            version.profile = profile_summary(version.reference_profile)
            version.deployments = [(e, endpoint_url(e)) for e in version.visible_endpoints]
            version.canary_deployments = [(e, endpoint_url(e)) for e in version.visible_canary_endpoints]
        aliases = [(alias.name, alias.version_number) for alias in
                   model.aliases.annotate(version_number=F("version__version")).order_by("name")]
        context.update(
            title=model.name, object=model, model=model, versions=versions, aliases=aliases,
            can_deploy=checker.can(model, "deploy"), endpoint_create_url=endpoint_create_url(),
            breadcrumbs=crumbs(("Models", reverse("endpoints:model-list")), (model.name, None)),
        )
        return context


class ModelVersionCreateView(LoginRequiredMixin, ServiceFormView):
    """Register the next version of a model, with an optional reference sample upload."""

    form_class = ModelVersionForm
    template_name = "endpoints/registry/version_form.html"
    submit_label = "Register version"

    def dispatch(self, request, *args, **kwargs):
        if request.user.is_authenticated:
            self.model = selectors.model_get(user=request.user, pk=kwargs["pk"], action="deploy")
        return super().dispatch(request, *args, **kwargs)

    def call_service(self, form):
        data = form.cleaned_data
        upload = data.get("reference_file")
        return model_version_create(
            actor=self.request.user, model=self.model, storage_uri=data["storage_uri"].strip(),
            model_format=data["model_format"].strip(), format_version=data["format_version"].strip(),
            input_signature=data["input_signature"] or None, prediction_column=data["prediction_column"].strip(),
            reference_file=upload, reference_filename=upload.name if upload else "",
            source_run_uri=data["source_run_uri"], description=data["description"], aliases=data["aliases"],
        )

    def success_message(self, version):
        suffix = f" with a reference profile of {version.reference_rows} rows" if version.reference_profile else ""
        return f"Version {version.version} of {self.model.name} registered{suffix}."

    def get_success_url_for(self, version):
        return reverse("endpoints:model-detail", kwargs={"pk": self.model.pk}) + f"#version-{version.version}"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        model_url = reverse("endpoints:model-detail", kwargs={"pk": self.model.pk})
        formats = sorted({f["name"] for runtime in selectors.runtime_list().filter(disabled=False)
                          for f in runtime.supported_formats if isinstance(f, dict) and f.get("name")})
        context.update(
            title=f"Register a version of {self.model.name}", model=self.model, cancel_url=model_url,
            format_options=formats,
            description="Versions are immutable and numbered automatically. A reference sample lets the "
                        "console measure drift of the traffic the version receives.",
            breadcrumbs=crumbs(("Models", reverse("endpoints:model-list")), (self.model.name, model_url),
                               ("New version", None)),
        )
        return context


class ModelAliasView(LoginRequiredMixin, ServiceFormView):
    """Point an alias of the model at one version."""

    form_class = AliasForm
    submit_label = "Set alias"
    service_field_map = {"aliases": "name"}

    def dispatch(self, request, *args, **kwargs):
        if request.user.is_authenticated:
            self.model = selectors.model_get(user=request.user, pk=kwargs["pk"], action="deploy")
            self.version = get_object_or_404(self.model.versions.all(), version=kwargs["version"])
        return super().dispatch(request, *args, **kwargs)

    def call_service(self, form):
        alias_set(actor=self.request.user, version=self.version, name=form.cleaned_data["name"])
        return form.cleaned_data["name"]

    def success_message(self, name):
        return f"Alias {name} now points at version {self.version.version}."

    def get_success_url_for(self, name):
        return reverse("endpoints:model-detail", kwargs={"pk": self.model.pk}) + f"#version-{self.version.version}"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        model_url = reverse("endpoints:model-detail", kwargs={"pk": self.model.pk})
        context.update(
            title=f"Set an alias on {self.model.name} version {self.version.version}", cancel_url=model_url,
            description="Endpoints and automation can refer to an alias instead of a version number.",
            breadcrumbs=crumbs(("Models", reverse("endpoints:model-list")), (self.model.name, model_url),
                               (f"Version {self.version.version}", None)),
        )
        return context


# --- platform admin: shared ------------------------------------------------------------------------

ADMIN_SECTIONS = (
    ("Clusters", "endpoints:cluster-list"),
    ("Projects", "endpoints:project-list"),
    ("Hardware profiles", "endpoints:hardware-list"),
    ("Runtimes", "endpoints:runtime-list"),
)


class AdminPageMixin(PlatformAdminRequiredMixin, LoadObjectsMixin):
    """Platform-admin page with the admin section tabs."""

    admin_section = ""

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["admin_tabs"] = [{"label": label, "url": reverse(name), "active": label == self.admin_section}
                                 for label, name in ADMIN_SECTIONS]
        return context


class AdminFormView(AdminPageMixin, ServiceFormView):
    template_name = "endpoints/admin/form.html"
    list_url_name = ""

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        list_url = reverse(self.list_url_name)
        context.setdefault("cancel_url", list_url)
        context.setdefault("breadcrumbs", crumbs((self.admin_section, list_url), (context["title"], None)))
        return context


# --- platform admin: clusters ----------------------------------------------------------------------

class ClusterListView(AdminPageMixin, ListView):
    template_name = "endpoints/admin/cluster_list.html"
    paginate_by = PAGE_SIZE
    admin_section = "Clusters"

    def get_queryset(self):
        return selectors.cluster_list().order_by("name")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(title="Clusters", object_name_plural="clusters",
                       description="Where endpoints run. Credentials are stored and never shown back.",
                       create_url=reverse("endpoints:cluster-create"), create_label="Add a cluster")
        return context


class ClusterCreateView(AdminFormView):
    form_class = ClusterForm
    title = "Add a cluster"
    submit_label = "Add cluster"
    admin_section = "Clusters"
    list_url_name = "endpoints:cluster-list"

    def call_service(self, form):
        return cluster_create(actor=self.request.user, **form.service_fields())

    def success_message(self, cluster):
        return f"Cluster {cluster.name} added."

    def get_success_url_for(self, cluster):
        return reverse("endpoints:cluster-list")


class ClusterEditView(AdminFormView):
    form_class = ClusterForm
    submit_label = "Save cluster"
    admin_section = "Clusters"
    list_url_name = "endpoints:cluster-list"

    def load_objects(self):
        self.cluster = get_object_or_404(selectors.cluster_list(), pk=self.kwargs["pk"])

    def get_form_kwargs(self):
        kwargs = super().get_form_kwargs()
        kwargs.update(editing=True, has_token=bool(self.cluster.api_token))
        return kwargs

    def get_initial(self):
        fields = ("description", "kind", "connection", "kubeconfig_path", "kubeconfig_context", "api_url",
                  "ingress_domain", "enabled")
        return {name: getattr(self.cluster, name) for name in fields}  # never the token

    def call_service(self, form):
        return cluster_update(actor=self.request.user, cluster=self.cluster, **form.service_fields())

    def success_message(self, cluster):
        return f"Cluster {cluster.name} saved."

    def get_success_url_for(self, cluster):
        return reverse("endpoints:cluster-list")

    def get_context_data(self, **kwargs):
        kwargs["title"] = f"Edit cluster {self.cluster.name}"
        return super().get_context_data(**kwargs)


# --- platform admin: projects ----------------------------------------------------------------------

class ProjectListView(AdminPageMixin, ListView):
    template_name = "endpoints/admin/project_list.html"
    paginate_by = PAGE_SIZE
    admin_section = "Projects"

    def get_queryset(self):
        return selectors.project_list_visible_to(user=self.request.user).annotate(
            model_count=Count("models", distinct=True), endpoint_count=Count("endpoints", distinct=True)
        ).order_by("name")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(title="Projects", object_name_plural="projects",
                       description="Tenants: each project is one namespace on one cluster.",
                       create_url=reverse("endpoints:project-create"), create_label="Create a project")
        return context


class ProjectCreateView(AdminFormView):
    form_class = ProjectForm
    title = "Create a project"
    submit_label = "Create project"
    admin_section = "Projects"
    list_url_name = "endpoints:project-list"

    def get_form_kwargs(self):
        kwargs = super().get_form_kwargs()
        kwargs.update(clusters=selectors.cluster_list().filter(enabled=True),
                      profiles=list(selectors.hardware_profile_list()))
        return kwargs

    def call_service(self, form):
        data = form.cleaned_data
        quotas = {profile: limit for profile, limit in form.quotas().items() if limit is not None}
        return project_create(
            actor=self.request.user, name=data["name"], cluster=data["cluster"], namespace=data["namespace"],
            display_name=data["display_name"], description=data["description"], quotas=quotas,
        )

    def success_message(self, project):
        return f"Project {project.name} created on {project.cluster.name} in namespace {project.namespace}."

    def get_success_url_for(self, project):
        return reverse("endpoints:project-detail", kwargs={"name": project.name})

    def get_context_data(self, **kwargs):
        kwargs.setdefault("description", "The console checks the namespace on the cluster, creates it if it is "
                                         "missing and labels it as managed by the console.")
        return super().get_context_data(**kwargs)


def quota_usage(*, project, user) -> dict[int, int]:
    """Accelerators requested at max replicas per hardware profile by the project's endpoints."""
    endpoints = visible(Endpoint.objects.filter(project=project, hardware_profile__isnull=False), user, "view")
    rows = (endpoints.exclude(state=Endpoint.State.DELETING).values("hardware_profile_id")
            .annotate(total=Sum(F("accelerator_count") * F("max_replicas"))))
    return {row["hardware_profile_id"]: row["total"] or 0 for row in rows}


class ProjectAdminMixin(AdminPageMixin):
    admin_section = "Projects"

    def load_objects(self):
        self.project = selectors.project_get(user=self.request.user, name=self.kwargs["name"])

    def project_crumbs(self, last: str | None = None) -> list[dict]:
        items = [("Projects", reverse("endpoints:project-list"))]
        if last:
            items += [(self.project.name, reverse("endpoints:project-detail", kwargs={"name": self.project.name})),
                      (last, None)]
        else:
            items.append((self.project.name, None))
        return crumbs(*items)


class ProjectDetailView(ProjectAdminMixin, TemplateView):
    """A project's namespace, cluster, accelerator quotas and payload-logger key."""

    template_name = "endpoints/admin/project_detail.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        project = self.project
        quotas = {q.hardware_profile_id: q.max_accelerators for q in ProjectQuota.objects.filter(project=project)}
        usage = quota_usage(project=project, user=self.request.user)
        rows = [{"profile": p, "quota": quotas.get(p.pk), "used": usage.get(p.pk, 0)}
                for p in selectors.hardware_profile_list() if p.has_accelerator or p.pk in quotas or p.pk in usage]
        context.update(
            title=f"Project {project.name}", project=project, quota_rows=rows,
            logger_url=redact_ingest_keys(ingest_url(project)),
            model_count=selectors.model_list_visible_to(user=self.request.user, project=project).count(),
            endpoint_count=selectors.endpoint_list_visible_to(user=self.request.user, project=project.name).count(),
            models_url=reverse("endpoints:model-list") + f"?project={project.name}",
            breadcrumbs=self.project_crumbs(),
        )
        return context


class ProjectQuotaView(ProjectAdminMixin, ServiceFormView):
    """Edit the project's accelerator quota for every hardware profile at once."""

    form_class = ProjectQuotaForm
    template_name = "endpoints/admin/form.html"
    submit_label = "Save quotas"

    def get_form_kwargs(self):
        kwargs = super().get_form_kwargs()
        self.current = {q.hardware_profile_id: q.max_accelerators for q in ProjectQuota.objects.filter(
            project=self.project)}
        kwargs.update(profiles=list(selectors.hardware_profile_list()), current=self.current)
        return kwargs

    @transaction.atomic
    def call_service(self, form):
        changed = 0
        for profile, limit in form.quotas().items():
            if self.current.get(profile.pk) != limit:
                project_set_quota(actor=self.request.user, project=self.project, profile=profile,
                                  max_accelerators=limit)
                changed += 1
        return changed

    def success_message(self, changed):
        return f"{changed} quota{'s' if changed != 1 else ''} changed." if changed else "No quota changed."

    def get_success_url_for(self, changed):
        return reverse("endpoints:project-detail", kwargs={"name": self.project.name})

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(
            title=f"Accelerator quotas of {self.project.name}",
            description="Changes that would take the project's endpoints over a quota are refused; an empty "
                        "field means no limit.",
            cancel_url=reverse("endpoints:project-detail", kwargs={"name": self.project.name}),
            breadcrumbs=self.project_crumbs("Quotas"),
        )
        return context


class ProjectRotateKeyView(ProjectAdminMixin, TemplateView):
    """Confirm, then replace the project's payload-logger ingest key."""

    template_name = "endpoints/admin/rotate_key_confirm.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        project = self.project
        logging_endpoints = (selectors.endpoint_list_visible_to(user=self.request.user, project=project.name)
                             .exclude(state=Endpoint.State.DELETING)
                             .exclude(logging_mode=Endpoint.LoggingMode.OFF).count())
        detail_url = reverse("endpoints:project-detail", kwargs={"name": project.name})
        context.update(
            title=f"Rotate the ingest key of {project.name}", object=project, cancel_url=detail_url,
            confirm_label="Rotate key",
            summary="A new key replaces the one in the payload logger URL. The current URL stops working at once.",
            consequences=[
                f"{logging_endpoints} endpoint{'s' if logging_endpoints != 1 else ''} with payload logging "
                "get a new generation pointing their logger at the new URL.",
                "Inference events posted with the old key until then are refused.",
            ],
            logger_url=redact_ingest_keys(ingest_url(project)),
            breadcrumbs=self.project_crumbs("Rotate ingest key"),
        )
        return context

    def post(self, request, *args, **kwargs):
        project = project_rotate_ingest_key(actor=request.user, project=self.project)
        messages.success(request, f"Ingest key rotated; the new key ends in {project.ingest_key[-4:]}.")
        return redirect("endpoints:project-detail", name=project.name)


# --- platform admin: hardware profiles -------------------------------------------------------------

HARDWARE_EDITABLE = ("display_name", "description", "accelerator_resource", "accelerator_product", "node_selector",
                     "tolerations", "default_cpu", "default_memory", "max_cpu", "max_memory",
                     "max_accelerators_per_replica", "capacity", "enabled")


class HardwareProfileListView(AdminPageMixin, ListView):
    template_name = "endpoints/admin/hardware_list.html"
    paginate_by = PAGE_SIZE
    admin_section = "Hardware profiles"

    def get_queryset(self):
        return selectors.hardware_profile_list()

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(title="Hardware profiles", object_name_plural="hardware profiles",
                       description="Accelerator and CPU choices offered to endpoints, with placement and bounds.",
                       create_url=reverse("endpoints:hardware-create"), create_label="Add a hardware profile")
        return context


class HardwareProfileCreateView(AdminFormView):
    form_class = HardwareProfileForm
    title = "Add a hardware profile"
    submit_label = "Add profile"
    admin_section = "Hardware profiles"
    list_url_name = "endpoints:hardware-list"

    def call_service(self, form):
        return hardware_profile_create(actor=self.request.user, **form.cleaned_data)

    def success_message(self, profile):
        return f"Hardware profile {profile.name} added."

    def get_success_url_for(self, profile):
        return reverse("endpoints:hardware-list")


class HardwareProfileEditView(AdminFormView):
    form_class = HardwareProfileForm
    submit_label = "Save profile"
    admin_section = "Hardware profiles"
    list_url_name = "endpoints:hardware-list"

    def load_objects(self):
        self.profile = get_object_or_404(selectors.hardware_profile_list(), pk=self.kwargs["pk"])

    def get_form_kwargs(self):
        kwargs = super().get_form_kwargs()
        kwargs["editing"] = True
        return kwargs

    def get_initial(self):
        return {name: getattr(self.profile, name) for name in HARDWARE_EDITABLE}

    def call_service(self, form):
        return hardware_profile_update(actor=self.request.user, profile=self.profile, **form.cleaned_data)

    def success_message(self, profile):
        return f"Hardware profile {profile.name} saved."

    def get_success_url_for(self, profile):
        return reverse("endpoints:hardware-list")

    def get_context_data(self, **kwargs):
        kwargs["title"] = f"Edit hardware profile {self.profile.name}"
        return super().get_context_data(**kwargs)


# --- platform admin: runtimes ----------------------------------------------------------------------

RUNTIME_EDITABLE = ("display_name", "description", "supported_formats", "protocols", "openai_compatible",
                    "openai_route_prefix", "container_image", "container_args", "disabled")


class ServingRuntimeListView(AdminPageMixin, ListView):
    template_name = "endpoints/admin/runtime_list.html"
    paginate_by = PAGE_SIZE
    admin_section = "Runtimes"

    def get_queryset(self):
        return selectors.runtime_list().order_by("-built_in", "name")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(title="Runtimes", object_name_plural="runtimes",
                       description="Built-in entries mirror KServe's default ClusterServingRuntimes and can only be "
                                   "disabled; custom runtimes are applied by the console.",
                       create_url=reverse("endpoints:runtime-create"), create_label="Add a custom runtime")
        return context


class ServingRuntimeCreateView(AdminFormView):
    form_class = RuntimeForm
    title = "Add a custom runtime"
    submit_label = "Add runtime"
    admin_section = "Runtimes"
    list_url_name = "endpoints:runtime-list"

    def call_service(self, form):
        return runtime_create(actor=self.request.user, **form.cleaned_data)

    def success_message(self, runtime):
        return f"Runtime {runtime.name} added."

    def get_success_url_for(self, runtime):
        return reverse("endpoints:runtime-list")


class ServingRuntimeEditView(AdminFormView):
    submit_label = "Save runtime"
    admin_section = "Runtimes"
    list_url_name = "endpoints:runtime-list"

    def load_objects(self):
        self.runtime = get_object_or_404(selectors.runtime_list(), pk=self.kwargs["pk"])

    def get_form_class(self):
        return BuiltinRuntimeForm if self.runtime.built_in else RuntimeForm

    def get_form_kwargs(self):
        kwargs = super().get_form_kwargs()
        if not self.runtime.built_in:
            kwargs["editing"] = True
        return kwargs

    def get_initial(self):
        return {name: getattr(self.runtime, name) for name in RUNTIME_EDITABLE}

    def call_service(self, form):
        return runtime_update(actor=self.request.user, runtime=self.runtime, **form.cleaned_data)

    def success_message(self, runtime):
        return f"Runtime {runtime.name} saved."

    def get_success_url_for(self, runtime):
        return reverse("endpoints:runtime-list")

    def get_context_data(self, **kwargs):
        kwargs["title"] = f"Edit runtime {self.runtime.name}"
        if self.runtime.built_in:
            kwargs["description"] = ("A built-in runtime mirrors KServe's default ClusterServingRuntime; only its "
                                     "description and whether endpoints may use it can change.")
        kwargs["runtime"] = self.runtime
        return super().get_context_data(**kwargs)


urlpatterns = [
    path("models/", ModelListView.as_view(), name="model-list"),
    path("models/new/", ModelCreateView.as_view(), name="model-create"),
    path("models/<int:pk>/", RegisteredModelDetailView.as_view(), name="model-detail"),
    path("models/<int:pk>/versions/new/", ModelVersionCreateView.as_view(), name="version-create"),
    path("models/<int:pk>/versions/<int:version>/alias/", ModelAliasView.as_view(), name="version-alias"),
    path("admin/clusters/", ClusterListView.as_view(), name="cluster-list"),
    path("admin/clusters/new/", ClusterCreateView.as_view(), name="cluster-create"),
    path("admin/clusters/<int:pk>/edit/", ClusterEditView.as_view(), name="cluster-edit"),
    path("projects/", ProjectListView.as_view(), name="project-list"),
    path("projects/new/", ProjectCreateView.as_view(), name="project-create"),
    path("projects/<slug:name>/", ProjectDetailView.as_view(), name="project-detail"),
    path("projects/<slug:name>/quotas/", ProjectQuotaView.as_view(), name="project-quota"),
    path("projects/<slug:name>/rotate-ingest-key/", ProjectRotateKeyView.as_view(), name="project-rotate-key"),
    path("admin/hardware/", HardwareProfileListView.as_view(), name="hardware-list"),
    path("admin/hardware/new/", HardwareProfileCreateView.as_view(), name="hardware-create"),
    path("admin/hardware/<int:pk>/edit/", HardwareProfileEditView.as_view(), name="hardware-edit"),
    path("admin/runtimes/", ServingRuntimeListView.as_view(), name="runtime-list"),
    path("admin/runtimes/new/", ServingRuntimeCreateView.as_view(), name="runtime-create"),
    path("admin/runtimes/<int:pk>/edit/", ServingRuntimeEditView.as_view(), name="runtime-edit"),
]
