"""Platform-admin pages: clusters, projects (with their quotas and payload-logger key),
hardware profiles and runtimes. Anonymous visitors go to sign-in; anyone else signed in but not a
platform admin gets 403 (the page's existence is no secret), before any object the URL names is
loaded, so a non-admin learns nothing from a 404.
"""

from __future__ import annotations

from django.contrib import messages
from django.db import transaction
from django.shortcuts import get_object_or_404, redirect
from django.urls import path, reverse
from django.views.generic import TemplateView, View

from console.redaction import redact_ingest_keys
from console.views.base import PlatformAdminRequiredMixin, ProtectedDetailView, ProtectedListView
from endpoints import selectors
from endpoints.capabilities import KNATIVE_FLAGS
from endpoints.forms.registry import (
    BuiltinRuntimeForm,
    ClusterForm,
    HardwareProfileForm,
    ProjectForm,
    ProjectQuotaForm,
    RuntimeForm,
)
from endpoints.models import (
    ClusterCapabilities,
    Endpoint,
    HardwareProfile,
    Project,
    ProjectQuota,
    ServingRuntime,
)
from endpoints.services.alerts import UNRESOLVED
from endpoints.services.capabilities import cluster_discover, connection_summary
from endpoints.services.platform import (
    cluster_create,
    cluster_update,
    hardware_profile_create,
    hardware_profile_update,
    runtime_create,
    runtime_update,
)
from endpoints.services.projects import project_create, project_rotate_ingest_key, project_set_quota
from endpoints.spec import ingest_url
from endpoints.views.common import PAGE_SIZE, ServiceFormView, crumbs


class LoadObjectsMixin:
    """Loads the objects the URL names (``load_objects``) just before the handler runs. Placed
    after ``PlatformAdminRequiredMixin`` it runs only once the gate let the request through,
    so a non-admin learns nothing from a 404."""

    def dispatch(self, request, *args, **kwargs):
        self.load_objects()
        return super().dispatch(request, *args, **kwargs)

    def load_objects(self) -> None:
        """Load the objects the URL names (``self.kwargs``); 404 when missing."""


# --- platform admin: shared ------------------------------------------------------------------------

ADMIN_SECTIONS = (
    ("Clusters", "endpoints:cluster-list"),
    ("Projects", "endpoints:project-list"),
    ("Hardware profiles", "endpoints:hardware-list"),
    ("Runtimes", "endpoints:runtime-list"),
    ("Alerts", "endpoints:alert-list"),
    ("Notifications", "endpoints:channel-list"),
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

class ClusterListView(AdminPageMixin, ProtectedListView):
    template_name = "endpoints/admin/cluster_list.html"
    paginate_by = PAGE_SIZE
    admin_section = "Clusters"

    def get_base_queryset(self):
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
        return cluster_create(actor=self.request.user, verify=True, **form.service_fields())

    def success_message(self, cluster):
        return f"Cluster {cluster.name} added."

    def get_success_url_for(self, cluster):
        return reverse("endpoints:cluster-detail", kwargs={"pk": cluster.pk})


class ClusterEditView(AdminFormView):
    form_class = ClusterForm
    submit_label = "Save cluster"
    admin_section = "Clusters"
    list_url_name = "endpoints:cluster-list"

    def load_objects(self):
        self.cluster = get_object_or_404(selectors.cluster_list(), pk=self.kwargs["pk"])

    def get_form_kwargs(self):
        kwargs = super().get_form_kwargs()
        kwargs.update(editing=True, has_token=bool(self.cluster.api_token_ciphertext))
        return kwargs

    def get_initial(self):
        fields = ("description", "kind", "connection", "kubeconfig_path", "kubeconfig_context", "api_url",
                  "ingress_domain", "gateway_address", "enabled")
        return {name: getattr(self.cluster, name) for name in fields}  # never the token

    def call_service(self, form):
        return cluster_update(actor=self.request.user, cluster=self.cluster, verify=True, **form.service_fields())

    def success_message(self, cluster):
        return f"Cluster {cluster.name} saved."

    def get_success_url_for(self, cluster):
        return reverse("endpoints:cluster-detail", kwargs={"pk": cluster.pk})

    def get_context_data(self, **kwargs):
        kwargs["title"] = f"Edit cluster {self.cluster.name}"
        return super().get_context_data(**kwargs)


class ClusterDetailView(AdminPageMixin, ProtectedDetailView):
    """A cluster's connection and what the console last read from it (KServe release, modes,
    Knative limits, runtimes, accelerators) with what each implies; "Test connection" re-reads."""

    template_name = "endpoints/admin/cluster_detail.html"
    admin_section = "Clusters"
    context_object_name = "cluster"

    def get_base_queryset(self):
        return selectors.cluster_list()

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        cluster = self.object
        reading = ClusterCapabilities.objects.filter(cluster=cluster).first()
        caps = reading.capabilities if reading else None
        list_url = reverse("endpoints:cluster-list")
        context.update(
            title=f"Cluster {cluster.name}", reading=reading, caps=caps,
            implications=caps.implications() if caps else [],
            knative_flags=[{"field": f, "key": key, "allowed": caps.knative_allows(f)}
                           for f, key in KNATIVE_FLAGS.items()] if caps and caps.knative else [],
            project_count=Project.objects.filter(cluster=cluster).count(),
            open_alerts=list(cluster.alerts.filter(state__in=UNRESOLVED).order_by("-last_seen_at")),
            breadcrumbs=crumbs(("Clusters", list_url), (cluster.name, None)),
        )
        return context


class ClusterTestConnectionView(AdminPageMixin, View):
    """POST: read the cluster now (reachability, credentials, KServe, what is missing) and store it."""

    http_method_names = ["post"]

    def load_objects(self):
        self.cluster = get_object_or_404(selectors.cluster_list(), pk=self.kwargs["pk"])

    def post(self, request, *args, **kwargs):
        reading = cluster_discover(cluster=self.cluster, actor=request.user, record=True).capabilities
        if reading.usable:
            messages.success(request, f"Connected to {self.cluster.name}: KServe {reading.release_text} found.")
        else:
            messages.error(request, f"Test of {self.cluster.name} failed: {connection_summary(reading)}")
        return redirect("endpoints:cluster-detail", pk=self.cluster.pk)


# --- platform admin: projects ----------------------------------------------------------------------

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


def project_crumbs(project, last: str | None = None) -> list[dict]:
    items = [("Projects", reverse("endpoints:project-list"))]
    if last:
        items += [(project.name, reverse("endpoints:project-detail", kwargs={"name": project.name})), (last, None)]
    else:
        items.append((project.name, None))
    return crumbs(*items)


class ProjectAdminMixin(AdminPageMixin):
    """A page acting on the project the URL names (after the gate)."""

    admin_section = "Projects"

    def load_objects(self):
        self.project = selectors.project_get(user=self.request.user, name=self.kwargs["name"])

    def project_crumbs(self, last: str | None = None) -> list[dict]:
        return project_crumbs(self.project, last)


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
                     "tolerations", "default_cpu", "default_memory", "defaults_as_limits", "max_cpu", "max_memory",
                     "max_accelerators_per_replica", "capacity", "enabled")


class HardwareProfileListView(AdminPageMixin, ProtectedListView):
    template_name = "endpoints/admin/hardware_list.html"
    paginate_by = PAGE_SIZE
    admin_section = "Hardware profiles"

    queryset = HardwareProfile.objects.all()

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
        kwargs["delete_url"] = reverse("endpoints:hardware-delete", kwargs={"pk": self.profile.pk})
        return super().get_context_data(**kwargs)


# --- platform admin: runtimes ----------------------------------------------------------------------

RUNTIME_EDITABLE = ("display_name", "description", "supported_formats", "protocols", "openai_compatible",
                    "openai_route_prefix", "container_image", "container_args", "disabled")


class ServingRuntimeListView(AdminPageMixin, ProtectedListView):
    template_name = "endpoints/admin/runtime_list.html"
    paginate_by = PAGE_SIZE
    admin_section = "Runtimes"

    queryset = ServingRuntime.objects.select_related("installed_on").order_by("-built_in", "name")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(title="Runtimes", object_name_plural="runtimes",
                       description="Built-in entries mirror KServe's default ClusterServingRuntimes and can only be "
                                   "disabled; custom runtimes are applied by the console.",
                       create_url=reverse("endpoints:runtime-create"), create_label="Add a custom runtime",
                       nim_catalog_url=reverse("endpoints:nim-catalog"))
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
        return RuntimeForm if self.runtime.console_installs else BuiltinRuntimeForm

    def get_form_kwargs(self):
        kwargs = super().get_form_kwargs()
        if self.runtime.console_installs:
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
        elif self.runtime.discovered:
            kwargs["description"] = (f"Read from cluster {self.runtime.installed_on.name}, where it was installed "
                                     "outside the console: change it there. Here only its description and whether "
                                     "endpoints may use it can change.")
        kwargs["runtime"] = self.runtime
        if self.runtime.console_installs:
            kwargs["delete_url"] = reverse("endpoints:runtime-delete", kwargs={"pk": self.runtime.pk})
        return super().get_context_data(**kwargs)


urlpatterns = [
    path("admin/clusters/", ClusterListView.as_view(), name="cluster-list"),
    path("admin/clusters/new/", ClusterCreateView.as_view(), name="cluster-create"),
    path("admin/clusters/<id:pk>/", ClusterDetailView.as_view(), name="cluster-detail"),
    path("admin/clusters/<id:pk>/test/", ClusterTestConnectionView.as_view(), name="cluster-test"),
    path("admin/clusters/<id:pk>/edit/", ClusterEditView.as_view(), name="cluster-edit"),
    path("projects/new/", ProjectCreateView.as_view(), name="project-create"),
    path("projects/<slug:name>/quotas/", ProjectQuotaView.as_view(), name="project-quota"),
    path("projects/<slug:name>/rotate-ingest-key/", ProjectRotateKeyView.as_view(), name="project-rotate-key"),
    path("admin/hardware/", HardwareProfileListView.as_view(), name="hardware-list"),
    path("admin/hardware/new/", HardwareProfileCreateView.as_view(), name="hardware-create"),
    path("admin/hardware/<id:pk>/edit/", HardwareProfileEditView.as_view(), name="hardware-edit"),
    path("admin/runtimes/", ServingRuntimeListView.as_view(), name="runtime-list"),
    path("admin/runtimes/new/", ServingRuntimeCreateView.as_view(), name="runtime-create"),
    path("admin/runtimes/<id:pk>/edit/", ServingRuntimeEditView.as_view(), name="runtime-edit"),
]
