"""Edit and delete pages (endpoints.services.lifecycle) and the project page its members see.

- Models and versions: edit needs ``deploy`` on the model (Deployers register them), delete
  needs ``manage`` (the project's Owners); invisible → 404, visible without the action → 403.
- Projects: every member (any role on the project) sees its page — endpoints, models and
  members; edit and delete need ``manage`` (Owners and platform admins); outsiders get 404.
- Clusters, hardware profiles and runtimes: platform admins only (403 for everyone else before
  any object is looked up, like the other admin pages).

A delete that the rules refuse (``InUse``) answers 409 with the reasons on the confirm page;
the confirm page lists them before anyone presses the button.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin
from django.db.models import Count
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import NoReverseMatch, path, reverse
from django.views.generic import View

from console.permissions import PermissionChecker, is_platform_admin
from console.redaction import redact_ingest_keys
from console.views.base import PlatformAdminRequiredMixin, ProtectedDetailView, ProtectedListView
from endpoints import selectors
from endpoints.forms.lifecycle import ModelVersionEditForm, ProjectEditForm, RegisteredModelEditForm
from endpoints.models import Endpoint, Project, ProjectQuota
from endpoints.services import lifecycle
from endpoints.spec import ingest_url
from endpoints.views.admin import ADMIN_SECTIONS, LoadObjectsMixin, project_crumbs
from endpoints.views.common import PAGE_SIZE, ServiceFormView, crumbs
from endpoints.views.registry import endpoint_url

DELETE_TEMPLATE = "endpoints/lifecycle/delete_confirm.html"


def _optional_url(route: str, **kwargs) -> str | None:
    try:
        return reverse(route, kwargs=kwargs)
    except NoReverseMatch:
        return None


def model_url(model) -> str:
    return reverse("endpoints:model-detail", kwargs={"pk": model.pk})


# --- delete confirm pages ----------------------------------------------------------------------------

class DeleteView(View):
    """Confirm, then delete through a lifecycle service. Subclasses load the object
    (``get_target``, after their permission gate), name the blockers, the service and the
    texts. A refusal (``lifecycle.InUse``) is the confirm page again, with the reasons, as 409."""

    kind = ""
    summary = ""

    def get_target(self):  # pragma: no cover - every subclass overrides it
        raise NotImplementedError

    def blockers(self, obj) -> list[str]:  # pragma: no cover
        raise NotImplementedError

    def perform(self, obj) -> None:  # pragma: no cover
        raise NotImplementedError

    def consequences(self, obj) -> list[str]:
        return ["The audit trail keeps every event about it, including this deletion."]

    def cancel_url(self, obj) -> str:  # pragma: no cover
        raise NotImplementedError

    def success_url(self, obj) -> str:  # pragma: no cover
        raise NotImplementedError

    def breadcrumbs(self, obj) -> list[dict]:
        return []

    def _render(self, obj, refusal: list[str] | None, status: int = 200):
        blockers = refusal if refusal is not None else self.blockers(obj)
        return render(self.request, DELETE_TEMPLATE, {
            "title": f"Delete {self.kind} {obj}", "object": obj, "summary": self.summary,
            "consequences": self.consequences(obj), "blockers": blockers, "refused": refusal is not None,
            "confirm_label": f"Delete {self.kind}", "cancel_url": self.cancel_url(obj),
            "breadcrumbs": self.breadcrumbs(obj),
        }, status=status)

    def get(self, request, *args, **kwargs):
        return self._render(self.get_target(), None)

    def post(self, request, *args, **kwargs):
        obj = self.get_target()
        name = str(obj)
        url = self.success_url(obj)
        try:
            self.perform(obj)
        except lifecycle.InUse as exc:
            return self._render(obj, exc.messages, status=409)
        messages.success(request, f"{self.kind.capitalize()} {name} deleted.")
        return redirect(url)


class AdminDeleteView(PlatformAdminRequiredMixin, LoadObjectsMixin, DeleteView):
    """Delete a platform object (admins only, gated before the object is loaded)."""

    def get_target(self):
        return self.target


# --- models and versions -------------------------------------------------------------------------------

class ModelEditView(LoginRequiredMixin, ServiceFormView):
    form_class = RegisteredModelEditForm
    submit_label = "Save model"

    def dispatch(self, request, *args, **kwargs):
        if request.user.is_authenticated:
            self.model = selectors.model_get(user=request.user, pk=kwargs["pk"], action="deploy")
        return super().dispatch(request, *args, **kwargs)

    def get_initial(self):
        return {"task": self.model.task, "description": self.model.description}

    def call_service(self, form):
        return lifecycle.model_update(actor=self.request.user, model=self.model, **form.cleaned_data)

    def success_message(self, model):
        return f"Model {model.name} saved."

    def get_success_url_for(self, model):
        return model_url(model)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(
            title=f"Edit model {self.model.name}", cancel_url=model_url(self.model),
            description="A model's name and project never change: endpoints' revisions and monitoring refer to them.",
            breadcrumbs=crumbs(("Models", reverse("endpoints:model-list")), (self.model.name, model_url(self.model)),
                               ("Edit", None)),
        )
        return context


class ModelDeleteView(LoginRequiredMixin, DeleteView):
    kind = "model"
    summary = "The model, its versions and aliases are deleted, with the grants given on the model."

    def get_target(self):
        return selectors.model_get(user=self.request.user, pk=self.kwargs["pk"], action="manage")

    def blockers(self, model):
        return lifecycle.model_delete_blockers(model)

    def perform(self, model):
        lifecycle.model_delete(actor=self.request.user, model=model)

    def cancel_url(self, model):
        return model_url(model)

    def success_url(self, model):
        return reverse("endpoints:model-list")

    def breadcrumbs(self, model):
        return crumbs(("Models", reverse("endpoints:model-list")), (model.name, model_url(model)), ("Delete", None))


class VersionMixin:
    version_action = "deploy"

    def load_version(self):
        self.model = selectors.model_get(user=self.request.user, pk=self.kwargs["pk"], action=self.version_action)
        return get_object_or_404(self.model.versions.select_related("model__project"), version=self.kwargs["version"])


class VersionEditView(LoginRequiredMixin, VersionMixin, ServiceFormView):
    form_class = ModelVersionEditForm
    submit_label = "Save version"

    def dispatch(self, request, *args, **kwargs):
        if request.user.is_authenticated:
            self.version = self.load_version()
        return super().dispatch(request, *args, **kwargs)

    def get_initial(self):
        return {"description": self.version.description}

    def call_service(self, form):
        return lifecycle.model_version_update(actor=self.request.user, version=self.version, **form.cleaned_data)

    def success_message(self, version):
        return f"Version {version.version} of {self.model.name} saved."

    def get_success_url_for(self, version):
        return model_url(self.model) + f"#version-{version.version}"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(
            title=f"Edit version {self.version.version} of {self.model.name}",
            cancel_url=model_url(self.model) + f"#version-{self.version.version}",
            breadcrumbs=crumbs(("Models", reverse("endpoints:model-list")), (self.model.name, model_url(self.model)),
                               (f"Version {self.version.version}", None)),
        )
        return context


class VersionDeleteView(LoginRequiredMixin, VersionMixin, DeleteView):
    kind = "version"
    version_action = "manage"
    summary = "The version and the aliases pointing at it are deleted. Its number is not reused."

    def get_target(self):
        return self.load_version()

    def blockers(self, version):
        return lifecycle.version_delete_blockers(version)

    def perform(self, version):
        lifecycle.model_version_delete(actor=self.request.user, version=version)

    def cancel_url(self, version):
        return model_url(self.model) + f"#version-{version.version}"

    def success_url(self, version):
        return model_url(self.model)

    def breadcrumbs(self, version):
        return crumbs(("Models", reverse("endpoints:model-list")), (self.model.name, model_url(self.model)),
                      (f"Delete version {version.version}", None))


class VersionArchiveView(LoginRequiredMixin, VersionMixin, View):
    """Archive a version (``archived=1``) or bring it back (``archived=0``); needs manage."""

    version_action = "manage"

    def post(self, request, *args, **kwargs):
        version = self.load_version()
        archived = request.POST.get("archived", "1") != "0"
        lifecycle.model_version_archive(actor=request.user, version=version, archived=archived)
        if archived:
            messages.success(request, f"Version {version.version} of {self.model.name} archived: it can no longer be "
                                      "deployed; endpoints already on it keep it.")
        else:
            messages.success(request, f"Version {version.version} of {self.model.name} can be deployed again.")
        return redirect(model_url(self.model) + f"#version-{version.version}")


# --- projects --------------------------------------------------------------------------------------------

def project_url(project) -> str:
    return reverse("endpoints:project-detail", kwargs={"name": project.name})


class ProjectListView(ProtectedListView):
    """The projects the user is a member of (every project for platform admins)."""

    template_name = "endpoints/admin/project_list.html"
    paginate_by = PAGE_SIZE
    queryset = Project.objects.select_related("cluster").annotate(
        model_count=Count("models", distinct=True), endpoint_count=Count("endpoints", distinct=True)
    ).order_by("name")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        admin = is_platform_admin(self.request.user)
        context.update(
            title="Projects", object_name_plural="projects",
            description="Tenants: each project is one namespace on one cluster. You see the projects you hold a role on.",
            create_url=reverse("endpoints:project-create") if admin else None, create_label="Create a project",
            admin_tabs=[{"label": label, "url": reverse(name), "active": label == "Projects"}
                        for label, name in ADMIN_SECTIONS] if admin else None,
        )
        return context


class ProjectDetailView(ProtectedDetailView):
    """A project for its members: its endpoints and models (those the viewer may see), who holds
    a role on it, its quotas; Owners edit and delete it, platform admins also set quotas and
    rotate the payload-logger key. Outsiders get 404."""

    template_name = "endpoints/lifecycle/project_detail.html"
    queryset = Project.objects.select_related("cluster", "created_by")
    slug_field = slug_url_kwarg = "name"
    context_object_name = "project"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        user = self.request.user
        project = self.object
        admin = is_platform_admin(user)
        checker = PermissionChecker(user)
        checker.prefetch([project], ["manage", "deploy"])
        can_manage = checker.can(project, "manage")
        endpoints = [(e, endpoint_url(e)) for e in selectors.endpoint_list_visible_to(user=user, project=project.name)
                     .exclude(state=Endpoint.State.DELETING).order_by("name")]
        quotas = {q.hardware_profile_id: q.max_accelerators for q in ProjectQuota.objects.filter(project=project)}
        usage = selectors.project_accelerator_usage(user=user, project=project)
        quota_rows = [{"profile": p, "quota": quotas.get(p.pk), "used": usage.get(p.pk, 0)}
                      for p in selectors.hardware_profile_list() if p.has_accelerator or p.pk in quotas or p.pk in usage]
        context.update(
            title=f"Project {project.name}", is_admin=admin, can_manage=can_manage,
            can_deploy=checker.can(project, "deploy"),
            endpoints=endpoints,
            models=list(selectors.model_list_visible_to(user=user, project=project).order_by("name")),
            members=selectors.project_members(project=project),
            quota_rows=quota_rows,
            logger_url=redact_ingest_keys(ingest_url(project)) if admin or can_manage else None,
            access_url=_optional_url("access:project-access", name=project.name) if can_manage else None,
            notifications_url=_optional_url("endpoints:project-notifications", name=project.name),
            admin_tabs=[{"label": label, "url": reverse(name), "active": label == "Projects"}
                        for label, name in ADMIN_SECTIONS] if admin else None,
            breadcrumbs=project_crumbs(project),
        )
        return context


class ProjectEditView(LoginRequiredMixin, ServiceFormView):
    form_class = ProjectEditForm
    submit_label = "Save project"

    def dispatch(self, request, *args, **kwargs):
        if request.user.is_authenticated:
            self.project = selectors.project_get(user=request.user, name=kwargs["name"], action="manage")
        return super().dispatch(request, *args, **kwargs)

    def get_initial(self):
        return {"display_name": self.project.display_name, "description": self.project.description}

    def call_service(self, form):
        return lifecycle.project_update(actor=self.request.user, project=self.project, **form.cleaned_data)

    def success_message(self, project):
        return f"Project {project.name} saved."

    def get_success_url_for(self, project):
        return project_url(project)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(
            title=f"Edit project {self.project.name}", cancel_url=project_url(self.project),
            description="The name, cluster and namespace of a project never change.",
            breadcrumbs=crumbs((self.project.name, project_url(self.project)), ("Edit", None)),
        )
        return context


class ProjectDeleteView(LoginRequiredMixin, DeleteView):
    kind = "project"
    summary = ("The project is deleted with its models, quotas, notification subscriptions and grants. The namespace "
               "stays on the cluster: the console never deletes a namespace.")

    def get_target(self):
        return selectors.project_get(user=self.request.user, name=self.kwargs["name"], action="manage")

    def blockers(self, project):
        return lifecycle.project_delete_blockers(project)

    def perform(self, project):
        lifecycle.project_delete(actor=self.request.user, project=project)

    def cancel_url(self, project):
        return project_url(project)

    def success_url(self, project):
        return reverse("endpoints:project-list") if is_platform_admin(self.request.user) else reverse("home")

    def breadcrumbs(self, project):
        return crumbs((project.name, project_url(project)), ("Delete", None))


# --- clusters, hardware profiles, runtimes (platform admins) ------------------------------------------------

class ClusterDeleteView(AdminDeleteView):
    kind = "cluster"
    summary = ("The cluster is removed from the console with its capability reading, its reconciler alerts and the "
               "runtimes discovered on it. Nothing on the cluster itself changes.")

    def load_objects(self):
        self.target = get_object_or_404(selectors.cluster_list(), pk=self.kwargs["pk"])

    def blockers(self, cluster):
        return lifecycle.cluster_delete_blockers(cluster)

    def perform(self, cluster):
        lifecycle.cluster_delete(actor=self.request.user, cluster=cluster)

    def cancel_url(self, cluster):
        return reverse("endpoints:cluster-detail", kwargs={"pk": cluster.pk})

    def success_url(self, cluster):
        return reverse("endpoints:cluster-list")


class HardwareProfileDeleteView(AdminDeleteView):
    kind = "hardware profile"
    summary = "The profile is deleted with the project quotas set for it."

    def load_objects(self):
        self.target = get_object_or_404(selectors.hardware_profile_list(), pk=self.kwargs["pk"])

    def blockers(self, profile):
        return lifecycle.hardware_profile_delete_blockers(profile)

    def perform(self, profile):
        lifecycle.hardware_profile_delete(actor=self.request.user, profile=profile)

    def cancel_url(self, profile):
        return reverse("endpoints:hardware-edit", kwargs={"pk": profile.pk})

    def success_url(self, profile):
        return reverse("endpoints:hardware-list")


class ServingRuntimeDeleteView(AdminDeleteView):
    kind = "runtime"
    summary = "The runtime leaves the catalog; no endpoint can choose it any more."

    def load_objects(self):
        self.target = get_object_or_404(selectors.runtime_list().select_related("installed_on"), pk=self.kwargs["pk"])

    def blockers(self, runtime):
        return lifecycle.runtime_delete_blockers(runtime)

    def perform(self, runtime):
        lifecycle.runtime_delete(actor=self.request.user, runtime=runtime)

    def cancel_url(self, runtime):
        return reverse("endpoints:runtime-edit", kwargs={"pk": runtime.pk})

    def success_url(self, runtime):
        return reverse("endpoints:runtime-list")


urlpatterns = [
    path("models/<id:pk>/edit/", ModelEditView.as_view(), name="model-edit"),
    path("models/<id:pk>/delete/", ModelDeleteView.as_view(), name="model-delete"),
    path("models/<id:pk>/versions/<id:version>/edit/", VersionEditView.as_view(), name="version-edit"),
    path("models/<id:pk>/versions/<id:version>/delete/", VersionDeleteView.as_view(), name="version-delete"),
    path("models/<id:pk>/versions/<id:version>/archive/", VersionArchiveView.as_view(), name="version-archive"),
    path("projects/", ProjectListView.as_view(), name="project-list"),
    path("projects/<slug:name>/", ProjectDetailView.as_view(), name="project-detail"),
    path("projects/<slug:name>/edit/", ProjectEditView.as_view(), name="project-edit"),
    path("projects/<slug:name>/delete/", ProjectDeleteView.as_view(), name="project-delete"),
    path("admin/clusters/<id:pk>/delete/", ClusterDeleteView.as_view(), name="cluster-delete"),
    path("admin/hardware/<id:pk>/delete/", HardwareProfileDeleteView.as_view(), name="hardware-delete"),
    path("admin/runtimes/<id:pk>/delete/", ServingRuntimeDeleteView.as_view(), name="runtime-delete"),
]
