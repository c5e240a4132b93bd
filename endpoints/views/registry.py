"""UI of the model registry: registered models, their versions (with reference profiles and
where each is deployed) and aliases. The platform-admin pages are ``endpoints.views.admin``.

Views stay thin: reads go through ``endpoints.selectors`` (which start from the permission
chokepoint), writes through ``endpoints.services``, whose field errors are shown on the form.
Registry pages are for every signed-in user and show only what they may see (invisible → 404,
visible but not allowed → 403).
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin
from django.db.models import Count, F, Max
from django.shortcuts import get_object_or_404
from django.urls import NoReverseMatch, path, reverse

from console.permissions import PermissionChecker, restrict
from console.views.base import ProtectedDetailView, ProtectedListView
from endpoints import selectors
from endpoints.filtersets import RegisteredModelFilterSet
from endpoints.forms.registry import (
    AliasForm,
    ModelVersionForm,
    RegisteredModelForm,
)
from endpoints.models import Endpoint, RegisteredModel
from endpoints.services import connections as connection_services
from endpoints.services.registry import alias_set, model_register, model_version_create
from endpoints.views.common import PAGE_SIZE, ServiceFormView, crumbs


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


class ModelListView(ProtectedListView):
    """Registered models the user may see, filtered by project and a search term."""

    template_name = "endpoints/registry/model_list.html"
    paginate_by = PAGE_SIZE
    # Aggregating queries ignore Meta.ordering: order explicitly for stable pages.
    queryset = (RegisteredModel.objects.select_related("project", "owner")
                .annotate(version_count=Count("versions"), latest_version=Max("versions__version"))
                .order_by("project__name", "name"))

    filterset_class = RegisteredModelFilterSet

    def get_filterset_kwargs(self, queryset):
        return {**super().get_filterset_kwargs(queryset), "only": ("project", "q")}

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        user = self.request.user
        can_register = selectors.project_list_visible_to(user=user, action="deploy").exists()
        context.update(
            title="Models", filter_form=self.filterset.form, object_name_plural="models",
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


class RegisteredModelDetailView(ProtectedDetailView):
    """One model: its versions with aliases, reference profiles and where each is deployed."""

    template_name = "endpoints/registry/model_detail.html"
    queryset = RegisteredModel.objects.select_related("project", "owner")
    context_object_name = "model"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        user = self.request.user
        model = self.object
        checker = PermissionChecker(user)
        checker.prefetch([model], ["deploy", "manage"])
        versions = list(selectors.versions_with_deployments(user=user).filter(model=model).order_by("-version"))
        for version in versions:
            version.profile = profile_summary(version.reference_profile)
            version.deployments = [(e, endpoint_url(e)) for e in version.visible_endpoints]
            version.canary_deployments = [(e, endpoint_url(e)) for e in version.visible_canary_endpoints]
        aliases = [(alias.name, alias.version_number) for alias in
                   model.aliases.annotate(version_number=F("version__version")).order_by("name")]
        context.update(
            title=model.name, versions=versions, aliases=aliases,
            can_deploy=checker.can(model, "deploy"), can_manage=checker.can(model, "manage"),
            endpoint_create_url=endpoint_create_url(),
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
            connection=data.get("connection"), skip_storage_check=data.get("skip_storage_check", False),
        )

    def get_form_kwargs(self):
        kwargs = super().get_form_kwargs()
        # Connections the user may use in the model's project (its own and opted-in platform ones).
        kwargs["connections"] = restrict(connection_services.usable_in(self.model.project), self.request.user, "deploy")
        return kwargs

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


urlpatterns = [
    path("models/", ModelListView.as_view(), name="model-list"),
    path("models/new/", ModelCreateView.as_view(), name="model-create"),
    path("models/<id:pk>/", RegisteredModelDetailView.as_view(), name="model-detail"),
    path("models/<id:pk>/versions/new/", ModelVersionCreateView.as_view(), name="version-create"),
    path("models/<id:pk>/versions/<id:version>/alias/", ModelAliasView.as_view(), name="version-alias"),
]
