"""Endpoint pages: the list, and the endpoint's tabs (overview with its status and "how to
call it", configuration, manifest, revisions) with the status fragment the overview polls.
Changing an endpoint (wizard, plan page, actions, deletion) is ``endpoints.views.changes``; the
monitoring tabs (``monitoring.views``) share the frame of these pages (``endpoint_frame``).
"""

from __future__ import annotations

from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import render
from django.urls import NoReverseMatch, path, reverse

from audit.selectors import can_view_all
from console.permissions import PermissionChecker
from console.redaction import redact_ingest_keys
from console.views.base import ProtectedDetailView, ProtectedListView
from endpoints import calling, cluster_rules, reconcile, selectors
from endpoints import spec as specs
from endpoints.calling import how_to_call
from endpoints.filtersets import EndpointFilterSet
from endpoints.models import Endpoint, EndpointStatus
from endpoints.services.endpoints import available_runtime_specs

ACTIVE_PHASES = (EndpointStatus.Phase.PENDING, EndpointStatus.Phase.DEPLOYING)
HTMX_STOP_POLLING = 286
# An endpoint's pages: its project's name and its own.
ENDPOINT_ROUTE = "endpoints/<slug:project>/<slug:name>/"


# Panels a higher layer adds to the overview below "How to call it" ("Try it", from access
# control), registered from its AppConfig.ready: callables (request, endpoint) -> a dict with the
# panel's "template" and its context, or None for no panel.
_OVERVIEW_PANELS: list = []


def register_overview_panel(panel) -> None:
    if panel not in _OVERVIEW_PANELS:
        _OVERVIEW_PANELS.append(panel)


# --- list -------------------------------------------------------------------------------------------

class EndpointListView(ProtectedListView):
    """Endpoints the user may see, filtered by project, status and a search term."""

    template_name = "endpoints/endpoint/list.html"
    paginate_by = 25
    context_object_name = "endpoints"
    filterset_class = EndpointFilterSet

    def get_base_queryset(self):
        return selectors.endpoint_queryset().order_by("project__name", "name")

    def get_filterset_kwargs(self, queryset):
        return {**super().get_filterset_kwargs(queryset), "only": ("search", "project", "phase")}

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        checker = PermissionChecker(self.request.user)
        rows = list(context["object_list"])
        checker.prefetch(rows, ["deploy"])
        can_create = selectors.project_list_visible_to(user=self.request.user, action="deploy").exists()
        for endpoint in rows:
            endpoint.can_deploy = endpoint.state != Endpoint.State.DELETING and checker.can(endpoint, "deploy")
            endpoint.current_status = selectors.endpoint_status(endpoint)
        context.update(
            title="Endpoints",
            description="Deployed models: each endpoint is one KServe InferenceService.",
            filter_form=self.filterset.form,
            object_list=rows,
            models_url=_optional_url("endpoints:model-list"),
            create_url=reverse("endpoints:endpoint-create") if can_create else "",
            create_label="Deploy a model",
            object_name_plural="endpoints",
        )
        return context


# --- detail tabs --------------------------------------------------------------------------------

def _optional_url(name: str) -> str:
    """A URL of a page another part of the console provides, or "" while it does not exist."""
    try:
        return reverse(name)
    except NoReverseMatch:
        return ""


def detail_url(endpoint: Endpoint) -> str:
    """The endpoint's overview page."""
    return reverse("endpoints:endpoint-detail", kwargs={"project": endpoint.project.name, "name": endpoint.name})


TABS = (
    ("endpoint-detail", "Overview"),
    ("endpoint-configuration", "Configuration"),
    ("endpoint-manifest", "Manifest"),
    ("endpoint-revisions", "Revisions"),
    ("endpoint-operations", "Operations"),  # endpoints.views.operations
)


def endpoint_frame(request, endpoint: Endpoint, tab: str = "") -> dict:
    """What endpoints/endpoint/detail_base.html needs, for every page of an endpoint (its own
    tabs here and the monitoring tabs): status, the actions the user may take, the tabs, and
    the link to the endpoint's audit history for those who may read it (auditors and owners
    of its project)."""
    checker = PermissionChecker(request.user)
    can_deploy = endpoint.state != Endpoint.State.DELETING and checker.can(endpoint, "deploy")
    kwargs = {"project": endpoint.project.name, "name": endpoint.name}
    can_read_trail = can_view_all(request.user) or checker.can(endpoint.project, "manage")
    return {
        "title": endpoint.name,
        "endpoint": endpoint,
        "status": selectors.endpoint_status(endpoint),
        "serving": calling.serving(endpoint),
        "can_deploy": can_deploy,
        "audit_history_url": reverse("audit:object-history",
                                     kwargs={"target_type": "endpoint", "target_id": endpoint.pk})
        if can_read_trail else "",
        "tabs": [{"label": label, "url": reverse(f"endpoints:{url}", kwargs=kwargs), "active": url == tab}
                 for url, label in TABS],
    }


class EndpointPageMixin:
    """A page of one endpoint, named in the URL by its project's name and its own; the base
    view finds it among the endpoints the user may see (404 otherwise)."""

    slug_field = "name"
    slug_url_kwarg = "name"

    def get_base_queryset(self):
        return selectors.endpoint_queryset().filter(project__name=self.kwargs["project"])


class EndpointTabView(EndpointPageMixin, ProtectedDetailView):
    """One tab of the endpoint page; subclasses add their context (``tab_context``)."""

    tab = "endpoint-detail"
    template_name = ""

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(endpoint_frame(self.request, self.object, self.tab))
        context.update(self.tab_context(self.object))
        return context

    def tab_context(self, endpoint) -> dict:
        return {}


class EndpointDetailView(EndpointTabView):
    """Overview: status, traffic, and how to call the endpoint."""

    tab = "endpoint-detail"
    template_name = "endpoints/endpoint/overview.html"

    def tab_context(self, endpoint):
        runtime = specs.effective_runtime(endpoint, available_runtime_specs(endpoint.project))
        panels = [p for p in (panel(self.request, endpoint) for panel in _OVERVIEW_PANELS) if p]
        return {"how_to_call": how_to_call(endpoint, runtime), "panels": panels, **status_context(endpoint)}


class EndpointConfigurationView(EndpointTabView):
    """Every desired field, grouped like the wizard."""

    tab = "endpoint-configuration"
    template_name = "endpoints/endpoint/configuration.html"

    def tab_context(self, endpoint):
        revision = endpoint.revisions.filter(generation=endpoint.generation).first()
        spec = revision.spec if revision is not None else specs.desired_spec(endpoint)
        notes = []
        if revision is not None:  # what the manifest, rendered for the cluster, left out
            dropped = cluster_rules.dropped_from_manifest(reconcile.render(revision.spec)["spec"], revision.manifest)
            if dropped:
                notes.append(cluster_rules.logger_loss_note(dropped, cluster_name=endpoint.project.cluster.name))
        return {"sections": configuration_sections(endpoint), "cluster_notes": notes,
                "spec_fields": sorted(specs.audit_view(spec).items())}


class EndpointManifestView(EndpointTabView):
    """The canonical YAML of the current revision: exactly what the console applies."""

    tab = "endpoint-manifest"
    template_name = "endpoints/endpoint/manifest.html"

    def tab_context(self, endpoint):
        revision = endpoint.revisions.filter(generation=endpoint.generation).first()
        manifest = revision.manifest if revision is not None else reconcile.render(specs.desired_spec(endpoint))
        return {"revision": revision, "manifest_yaml": reconcile.canonical_yaml(redact_ingest_keys(manifest))}


class EndpointRevisionsView(EndpointTabView):
    """History: one row per generation with its diff against the previous one."""

    tab = "endpoint-revisions"
    template_name = "endpoints/endpoint/revisions.html"
    per_page = 20

    def tab_context(self, endpoint):
        revisions = selectors.endpoint_revisions(endpoint=endpoint)
        paginator = Paginator(revisions, self.per_page)
        page = paginator.get_page(self.request.GET.get("page"))
        start = (page.number - 1) * self.per_page
        # One extra row: the previous revision of the page's last one, for its diff.
        rows = list(revisions[start:start + self.per_page + 1])
        entries = []
        for index, revision in enumerate(rows[: self.per_page]):
            previous = rows[index + 1] if index + 1 < len(rows) else None
            entries.append({
                "revision": revision,
                "changes": specs.field_changes(previous.spec if previous else None, revision.spec),
                "is_current": revision.generation == endpoint.generation,
                "first": previous is None,
            })
        return {"entries": entries, "page_obj": page}


class EndpointStatusView(EndpointPageMixin, ProtectedDetailView):
    """The overview's status card as an htmx fragment; it polls itself while the endpoint is
    Pending or Deploying and stops once it settles."""

    def get(self, request, *args, **kwargs):
        try:
            endpoint = self.get_object()
        except Http404:
            if not request.headers.get("HX-Request"):
                raise
            # 286 tells htmx to stop polling: the endpoint was deleted (or access withdrawn)
            # while the page was open, and asking again every 3 s would only repeat the error.
            return render(request, "endpoints/endpoint/_status_gone.html", status=HTMX_STOP_POLLING)
        # As a fragment it also refreshes the phase badge in the page heading (out of band), and
        # "How to call it" once the URL is known: the page shows it without a reload.
        context = {**status_context(endpoint), "fragment": True}
        if context["status"] is not None and context["status"].url:
            runtime = specs.effective_runtime(endpoint, available_runtime_specs(endpoint.project))
            context["how_to_call"] = how_to_call(endpoint, runtime)
        return render(request, "endpoints/endpoint/_status.html", context)


def status_context(endpoint: Endpoint) -> dict:
    status = selectors.endpoint_status(endpoint)
    phase = status.phase if status else EndpointStatus.Phase.UNKNOWN
    return {
        "endpoint": endpoint,
        "status": status,
        "phase": phase,
        "polling": endpoint.state != Endpoint.State.DELETING and phase in ACTIVE_PHASES,
        "status_url": reverse("endpoints:endpoint-status",
                              kwargs={"project": endpoint.project.name, "name": endpoint.name}),
        "applied_generation": status.applied_generation if status else 0,
        "in_sync": bool(status) and status.applied_generation == endpoint.generation,
        "traffic": _traffic_rows(endpoint, status),
    }


def _traffic_rows(endpoint: Endpoint, status: EndpointStatus | None) -> list[dict]:
    rows = []
    for target in (status.traffic if status else None) or []:
        if not isinstance(target, dict):
            continue
        rows.append({"revision": target.get("revisionName") or target.get("tag") or "latest",
                     "tag": target.get("tag", ""), "percent": target.get("percent"),
                     "latest": target.get("latestRevision")})
    return rows


def configuration_sections(endpoint: Endpoint) -> list[dict]:
    """The desired fields as labelled groups, in the wizard's order."""
    profile = endpoint.hardware_profile
    canary = endpoint.canary_version

    def dash(value):
        return value if value not in (None, "") else None

    return [
        {"legend": "Model & runtime", "items": [
            ("Project", f"{endpoint.project.name} (namespace {endpoint.project.namespace} on "
                        f"{endpoint.project.cluster.name})"),
            ("Model version", f"{endpoint.model_version.model.name} v{endpoint.model_version.version}"),
            ("Storage URI", endpoint.model_version.storage_uri),
            ("Model format", (endpoint.model_version.model_format + " " + endpoint.model_version.format_version).strip()),
            ("Protocol", endpoint.get_protocol_display()),
            ("Runtime", endpoint.runtime.name if endpoint.runtime_id else "Automatic (KServe picks)"),
            ("Environment", ", ".join(f"{e.get('name')}={e.get('value', '')}" for e in endpoint.env or []
                                      if isinstance(e, dict)) or None),
            ("Extra arguments", " ".join(str(a) for a in endpoint.args or []) or None),
            ("Description", dash(endpoint.description)),
        ]},
        {"legend": "Scaling", "items": [
            ("Deployment mode", endpoint.deployment_mode),
            ("Replicas", f"{endpoint.min_replicas}–{endpoint.max_replicas}"
                         + (" (scale to zero)" if endpoint.min_replicas == 0 else "")),
            ("Scale metric", endpoint.get_scale_metric_display() if endpoint.scale_metric else None),
            ("Scale target", dash(endpoint.scale_target)),
            ("Container concurrency", dash(endpoint.container_concurrency)),
            ("Request timeout (s)", dash(endpoint.timeout_seconds)),
        ]},
        {"legend": "Hardware", "items": [
            ("Hardware profile", str(profile) if profile else None),
            ("Accelerators per replica", f"{endpoint.accelerator_count} × {profile.accelerator_resource}"
             if profile and profile.accelerator_resource and endpoint.accelerator_count else None),
            ("CPU request / limit", f"{endpoint.cpu_request or '—'} / {endpoint.cpu_limit or '—'}"),
            ("Memory request / limit", f"{endpoint.memory_request or '—'} / {endpoint.memory_limit or '—'}"),
        ]},
        {"legend": "Rollout", "items": [
            ("Canary version", f"v{canary.version}" if canary else None),
            ("Canary traffic", f"{endpoint.canary_traffic_percent}%" if canary else None),
        ]},
        {"legend": "Logging", "items": [
            ("Payload logging", endpoint.get_logging_mode_display()),
        ]},
    ]


urlpatterns = [
    path("endpoints/", EndpointListView.as_view(), name="endpoint-list"),
    path(ENDPOINT_ROUTE, EndpointDetailView.as_view(), name="endpoint-detail"),
    path(ENDPOINT_ROUTE + "configuration/", EndpointConfigurationView.as_view(), name="endpoint-configuration"),
    path(ENDPOINT_ROUTE + "manifest/", EndpointManifestView.as_view(), name="endpoint-manifest"),
    path(ENDPOINT_ROUTE + "revisions/", EndpointRevisionsView.as_view(), name="endpoint-revisions"),
    path(ENDPOINT_ROUTE + "status/", EndpointStatusView.as_view(), name="endpoint-status"),
]
