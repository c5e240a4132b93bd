"""NVIDIA NIM pages (docs/nim.md): the NIM catalog and installing a NIM runtime (platform admins),
and deploying a NIM (anyone who may deploy to a project), which ends on the same plan page as the
endpoint wizard — nothing is applied before the plan is confirmed."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.views import View
from django.views.generic import TemplateView

from console.permissions import get_visible_or_404
from endpoints import planning
from endpoints.cluster import ClusterError
from endpoints.forms.endpoint import apply_service_errors
from endpoints.forms.nim import (
    NimDeployForm,
    NimEntryForm,
    NimImportForm,
    NimInstallForm,
    ProjectNimInstallForm,
)
from endpoints.models import Project, ServingRuntime
from endpoints.services import nim as nim_services
from endpoints.views.admin import AdminFormView, AdminPageMixin
from endpoints.views.changes import _plan_redirect
from endpoints.views.common import ServiceFormView, crumbs


class NimCatalogView(AdminPageMixin, TemplateView):
    """The NIMs the console ships, which are installed, and with which NGC connection."""

    template_name = "endpoints/admin/nim_catalog.html"
    admin_section = "Runtimes"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        installed = {r.name: r for r in ServingRuntime.objects.filter(nim__isnull=False)}
        rows = [{"entry": e, "origin": origin, "runtime": installed.get(e.runtime_name)}
                for e, origin in nim_services.catalog_rows()]
        context.update(title="NVIDIA NIM catalog", rows=rows, install_url=reverse("endpoints:nim-install"),
                       add_url=reverse("endpoints:nim-entry-create"), import_form=NimImportForm(),
                       import_url=reverse("endpoints:nim-import"),
                       description="One runtime per NIM: a platform admin installs it with an NGC connection; "
                                   "data scientists then deploy it on a GPU profile that fits.",
                       breadcrumbs=crumbs(("Runtimes", reverse("endpoints:runtime-list")), ("NIM catalog", None)))
        return context


class _NimInstall:
    """What both install views do: the catalog's "Install" link preselects the NIM, and the form
    goes to ``nim_runtime_install`` (for ``install_project``: None is platform-wide)."""

    service_field_map = {"nim": "nim", "connection": "connection", "cache_name": "cache_name",
                         "cache_size": "cache_size", "cache_storage_class": "cache_storage_class",
                         "cache_access_mode": "cache_access_mode"}

    def install_project(self):
        return None

    def get_initial(self):
        initial = super().get_initial()
        if self.request.GET.get("nim"):
            initial["nim"] = self.request.GET["nim"]
        return initial

    def call_service(self, form):
        data = form.cleaned_data
        return nim_services.nim_runtime_install(
            actor=self.request.user, entry=form.entry(), connection=data["connection"],
            project=self.install_project(), cache_name=data["cache_name"], cache_create=data["cache_create"],
            cache_size=data["cache_size"] or "", cache_storage_class=data["cache_storage_class"],
            cache_access_mode=data["cache_access_mode"] or "ReadWriteMany")


class NimInstallView(_NimInstall, AdminFormView):
    form_class = NimInstallForm
    title = "Install a NIM runtime"
    submit_label = "Install"
    admin_section = "Runtimes"
    list_url_name = "endpoints:nim-catalog"

    def success_message(self, runtime):
        return f"NIM runtime {runtime.name} installed."

    def get_success_url_for(self, runtime):
        return reverse("endpoints:nim-catalog")


class ProjectNimInstallView(_NimInstall, LoginRequiredMixin, ServiceFormView):
    """An Owner installs a NIM runtime for their project (``manage`` on the project: 404 when
    invisible, 403 when only visible)."""

    title = "Install a NIM runtime for this project"
    submit_label = "Install"

    def dispatch(self, request, *args, **kwargs):
        if request.user.is_authenticated:
            self.project = get_visible_or_404(Project.objects.select_related("cluster"), request.user, "manage",
                                              name=kwargs["name"])
        return super().dispatch(request, *args, **kwargs)

    def get_form(self, form_class=None):
        return ProjectNimInstallForm(**self.get_form_kwargs(), project=self.project)

    def install_project(self):
        return self.project

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["breadcrumbs"] = crumbs(("Projects", reverse("endpoints:project-list")),
                                        (self.project.name, reverse("endpoints:project-detail",
                                                                    kwargs={"name": self.project.name})),
                                        ("Install a NIM", None))
        return context

    def success_message(self, runtime):
        return f"NIM runtime {runtime.name} installed for {self.project.name}: deploy it from Deploy an NVIDIA NIM."

    def get_success_url_for(self, runtime):
        return reverse("endpoints:nim-deploy") + f"?project={self.project.pk}&runtime={runtime.pk}"


class NimEntryCreateView(AdminFormView):
    form_class = NimEntryForm
    title = "Add a NIM to the catalog"
    submit_label = "Add to the catalog"
    admin_section = "Runtimes"
    list_url_name = "endpoints:nim-catalog"
    service_field_map = {"data": "data"}

    def call_service(self, form):
        return nim_services.nim_entry_create(actor=self.request.user, data=form.cleaned_data["data"])

    def success_message(self, row):
        return f"NIM {row.key} {row.version} added to the catalog."

    def get_success_url_for(self, row):
        return reverse("endpoints:nim-catalog")


class NimImportView(AdminPageMixin, View):
    """POST: import the NIM runtimes a cluster holds into the catalog."""

    http_method_names = ["post"]

    def load_objects(self) -> None:
        pass

    def post(self, request):
        form = NimImportForm(request.POST)
        if not form.is_valid():
            messages.error(request, "Choose the cluster to import from.")
            return redirect("endpoints:nim-catalog")
        cluster = form.cleaned_data["cluster"]
        try:
            created = nim_services.nim_entries_import(actor=request.user, cluster=cluster)
        except ClusterError as exc:
            messages.error(request, f"Could not read the runtimes of cluster {cluster.name}: {exc}")
            return redirect("endpoints:nim-catalog")
        if created:
            messages.success(request, f"Imported from {cluster.name}: "
                                      f"{', '.join(f'{row.key} {row.version}' for row in created)}.")
        else:
            messages.info(request, f"Cluster {cluster.name} has no NIM runtime the catalog lacks.")
        return redirect("endpoints:nim-catalog")


class NimDeployView(LoginRequiredMixin, View):
    """Deploy a NIM: pick the NIM, then only the GPU profiles that fit it; submitting shows the plan."""

    template_name = "endpoints/endpoint/nim_form.html"

    def _page(self, request, form, status=200):
        return render(request, self.template_name, {
            "title": "Deploy an NVIDIA NIM", "form": form, "submit_label": "Review the plan",
            "cancel_url": reverse("endpoints:endpoint-list"), "entry": form.nim_entry,
            "description": "A NIM serves an OpenAI-compatible API on GPUs. Nothing is deployed until you have "
                           "reviewed the plan.",
        }, status=status)

    def get(self, request):
        initial = {name: request.GET[name] for name in ("project", "runtime") if request.GET.get(name, "").isdigit()}
        return self._page(request, NimDeployForm(user=request.user, initial=initial))

    def post(self, request):
        form = NimDeployForm(request.POST, user=request.user)
        if form.is_valid():
            data = form.cleaned_data
            runtime, project, profile = data["runtime"], data["project"], data["hardware_profile"]
            entry = nim_services.entry_of(runtime)
            error = None
            try:
                nim_services.refuse_unfit(entry, profile, data["accelerator_count"])
                # The NIM's model version in the project (registered, audited, the first time).
                version = nim_services.nim_version(actor=request.user, project=project, runtime=runtime, entry=entry)
            except ValidationError as exc:
                error = exc
            if error is None:
                config = nim_services.endpoint_config(entry, runtime=runtime, version=version, hardware_profile=profile,
                                                      accelerator_count=data["accelerator_count"],
                                                      deployment_mode=data["deployment_mode"],
                                                      min_replicas=data["min_replicas"],
                                                      max_replicas=data["max_replicas"])
                proposed = planning.new_endpoint(project=project, name=data["name"], created_by=request.user, **config)
                error = planning.validate_proposed(proposed, current=None, user=request.user)
                if error is None:
                    return _plan_redirect(request, {"kind": "create", "project_id": project.pk, "name": data["name"],
                                                    "changes": planning.encode_changes(config), "generation": None})
            apply_service_errors(form, error)
        return self._page(request, form, status=400)


urlpatterns = [
    path("admin/nims/", NimCatalogView.as_view(), name="nim-catalog"),
    path("admin/nims/install/", NimInstallView.as_view(), name="nim-install"),
    path("projects/<slug:name>/nims/install/", ProjectNimInstallView.as_view(), name="project-nim-install"),
    path("admin/nims/new/", NimEntryCreateView.as_view(), name="nim-entry-create"),
    path("admin/nims/import/", NimImportView.as_view(), name="nim-import"),
    path("endpoints/-/nim/", NimDeployView.as_view(), name="nim-deploy"),
]
