"""Endpoint pages: list, the create/edit wizard, the plan page every change goes through
before it is applied, and the endpoint detail tabs (overview with "how to call it",
configuration, manifest, revisions).

Plan before apply: the wizard (and rollback, canary, promote, stop/start) never changes
anything. It validates, stores the proposed change in the session under a random token with
the endpoint's generation at that moment, and redirects to the plan page. Confirming the
plan calls the service; if the endpoint's generation moved meanwhile, the confirmation is
refused and the plan recomputed against the new state.
"""

from __future__ import annotations

import enum
import json
import re
import secrets
import shlex
from dataclasses import dataclass

from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, path, reverse
from django.utils import timezone
from django.views import View
from django.views.generic import ListView

from audit.selectors import can_view_all
from console.permissions import PermissionChecker, get_visible_or_404, visible
from console.redaction import redact_ingest_keys
from endpoints import plan as plans
from endpoints import reconcile, runtimes, selectors
from endpoints import spec as specs
from endpoints.forms.endpoint import (
    RELATED_FIELDS,
    CanaryForm,
    EndpointFilterForm,
    EndpointForm,
    apply_service_errors,
    hardware_choices,
    runtime_choices,
)
from endpoints.models import Endpoint, EndpointStatus, Project
from endpoints.services.endpoints import (
    available_runtime_specs,
    endpoint_create,
    endpoint_delete,
    endpoint_promote_canary,
    endpoint_rollback,
    endpoint_set_state,
    endpoint_update,
    validate_endpoint,
)

ACTIVE_PHASES = (EndpointStatus.Phase.PENDING, EndpointStatus.Phase.DEPLOYING)
HTMX_STOP_POLLING = 286
SESSION_KEY = "endpoint_plans"
MAX_PENDING_PLANS = 20


# --- loading through the chokepoint ---------------------------------------------------------

def _endpoint_queryset():
    return Endpoint.objects.select_related(
        "project", "project__cluster", "model_version", "model_version__model", "runtime", "hardware_profile",
        "status", "canary_version", "canary_version__model",
    )


def _endpoint_by_id(user, pk: int, action: str = "view") -> Endpoint:
    return get_visible_or_404(_endpoint_queryset(), user, action, pk=pk)


def _status(endpoint: Endpoint) -> EndpointStatus | None:
    try:
        return endpoint.status
    except EndpointStatus.DoesNotExist:
        return None


def _applied_mode(endpoint: Endpoint) -> str | None:
    """The deployment mode KServe recorded, or None when the endpoint was never applied (the
    mode may still change then). The stored mode cannot change after an apply (the service
    refuses), so the row's value is the applied one."""
    status = _status(endpoint)
    if status is not None and status.applied_generation > 0:
        return Endpoint.objects.filter(pk=endpoint.pk).values_list("deployment_mode", flat=True).first()
    return None


# --- pending changes in the session -----------------------------------------------------------

def _encode(changes: dict) -> dict:
    return {name: (value.pk if hasattr(value, "pk") else value) for name, value in changes.items()}


def _decode(changes: dict, *, user, endpoint: Endpoint | None) -> dict:
    """Resolve stored primary keys through the same restricted choices the form offers: an
    object the user lost access to (or an admin disabled) meanwhile is refused."""
    querysets = {
        "model_version": selectors.version_choices_for(user=user),
        "canary_version": selectors.version_choices_for(user=user),
        "runtime": runtime_choices(endpoint),
        "hardware_profile": hardware_choices(endpoint),
    }
    decoded = {}
    for name, value in changes.items():
        if name in RELATED_FIELDS and value is not None:
            obj = querysets[name].filter(pk=value).first()
            if obj is None:
                raise ValidationError({name: ["This choice is no longer available to you."]})
            value = obj
        decoded[name] = value
    return decoded


def _store_plan(request, entry: dict) -> str:
    token = secrets.token_urlsafe(18)
    pending = dict(request.session.get(SESSION_KEY) or {})
    entry = {**entry, "created_at": timezone.now().isoformat(), "user_id": request.user.pk}
    pending[token] = entry
    if len(pending) > MAX_PENDING_PLANS:
        for old in sorted(pending, key=lambda t: pending[t].get("created_at", ""))[: len(pending) - MAX_PENDING_PLANS]:
            pending.pop(old, None)
    request.session[SESSION_KEY] = pending
    return token


def _load_plan(request, token: str) -> dict:
    entry = (request.session.get(SESSION_KEY) or {}).get(token)
    if entry is None or entry.get("user_id") != request.user.pk:
        raise Http404("This plan has expired or was already confirmed.")
    return entry


def _save_plan(request, token: str, entry: dict) -> None:
    pending = dict(request.session.get(SESSION_KEY) or {})
    pending[token] = entry
    request.session[SESSION_KEY] = pending


def _drop_plan(request, token: str) -> None:
    pending = dict(request.session.get(SESSION_KEY) or {})
    pending.pop(token, None)
    request.session[SESSION_KEY] = pending


def _plan_redirect(request, entry: dict) -> HttpResponseRedirect:
    return redirect("endpoints:endpoint-plan", token=_store_plan(request, entry))


# --- proposing a change --------------------------------------------------------------------------

@dataclass
class Proposal:
    """A change as the plan page shows it: the endpoint as it would be (unsaved), the
    endpoint as it is (None for a new one), and the changed fields."""

    kind: str
    endpoint: Endpoint
    current: Endpoint | None
    changes: dict
    title: str
    description: str = ""


KIND_TITLES = {
    "create": "Create endpoint {name}",
    "update": "Change endpoint {name}",
    "rollback": "Roll back endpoint {name}",
    "promote": "Promote the canary of {name}",
    "stop": "Stop endpoint {name}",
    "start": "Start endpoint {name}",
}


def _current_state(endpoint: Endpoint) -> tuple[dict, dict]:
    revision = endpoint.revisions.filter(generation=endpoint.generation).first()
    if revision is not None:
        return revision.spec, revision.manifest
    spec = specs.desired_spec(endpoint)
    return spec, reconcile.render(spec)


def _proposal(request, entry: dict) -> Proposal:
    """Rebuild the proposed endpoint from a session entry, against the current state."""
    user = request.user
    kind = entry["kind"]
    if kind == "create":
        project = get_visible_or_404(Project.objects.select_related("cluster"), user, "deploy",
                                     pk=entry["project_id"])
        changes = _decode(entry["changes"], user=user, endpoint=None)
        proposed = new_endpoint(project=project, name=entry["name"], created_by=user, **changes)
        return Proposal(kind, proposed, None, changes, KIND_TITLES[kind].format(name=entry["name"]))
    current = _endpoint_by_id(user, entry["endpoint_id"], "deploy")
    if current.state == Endpoint.State.DELETING:
        raise Http404("The endpoint is being deleted.")
    proposed = _endpoint_by_id(user, entry["endpoint_id"], "deploy")
    changes: dict = {}
    description = ""
    if kind == "update":
        changes = _decode(entry["changes"], user=user, endpoint=current)
        for name, value in changes.items():
            setattr(proposed, name, value)
    elif kind == "rollback":
        revision = current.revisions.filter(generation=entry["revision"]).first()
        if revision is None:
            raise Http404("No such revision.")
        for name, value in specs.fields_from_spec(revision.spec).items():
            setattr(proposed, name, value)
        description = (f"A new generation with the desired state of generation {revision.generation} "
                       f"({revision.change_summary or 'no summary'}, {revision.created_at:%Y-%m-%d %H:%M} UTC).")
    elif kind == "promote":
        if not current.canary_version_id:
            raise Http404("The endpoint has no canary.")
        proposed.model_version = current.canary_version
        proposed.canary_version = None
        proposed.canary_traffic_percent = None
        description = (f"Version {current.canary_version.version} becomes the endpoint's model version and "
                       "receives all traffic.")
    elif kind in ("stop", "start"):
        proposed.state = Endpoint.State.STOPPED if kind == "stop" else Endpoint.State.ACTIVE
        description = ("KServe deletes the endpoint's pods and keeps the InferenceService; requests fail until "
                       "it is started again." if kind == "stop" else
                       "KServe creates the endpoint's pods again with its current configuration.")
    return Proposal(kind, proposed, current, changes, KIND_TITLES[kind].format(name=current.name), description)


def new_endpoint(**fields) -> Endpoint:
    """An unsaved endpoint for a plan. Model defaults are ``TextChoices`` members, which the
    YAML dumper of ``reconcile.canonical_yaml`` refuses; a saved row holds plain strings, and
    so does this one."""
    endpoint = Endpoint(**fields)
    for field in Endpoint._meta.concrete_fields:
        value = getattr(endpoint, field.attname)
        if isinstance(value, enum.Enum):
            setattr(endpoint, field.attname, value.value)
    return endpoint


def validate_proposed(proposed: Endpoint, *, current: Endpoint | None, user) -> ValidationError | None:
    """The services' rules on a proposed endpoint (``current`` None: a new one), without
    storing anything; None when it passes."""
    try:
        validate_endpoint(proposed, previous_mode=_applied_mode(current) if current is not None else None)
        if current is None:
            clash = visible(Endpoint.objects.filter(project=proposed.project, name=proposed.name), user, "deploy")
            if clash.exists():
                raise ValidationError({"name": [f"{proposed.project.name} already has an endpoint named "
                                                f"{proposed.name}."]})
    except ValidationError as exc:
        return exc
    return None


def _validate(proposal: Proposal, user) -> ValidationError | None:
    """The service's own rules on the proposed endpoint (stop/start carry none)."""
    if proposal.kind in ("stop", "start"):
        return None
    return validate_proposed(proposal.endpoint, current=proposal.current, user=user)


def _cluster_client(project: Project):
    """(client, reason): the project's cluster client, or None and why the plan cannot read
    live state or dry-run."""
    cluster = project.cluster
    if not cluster.enabled:
        return None, f"Cluster {cluster.name} is disabled, so the live object and a dry run were not checked."
    try:
        return cluster.client(), ""
    except Exception as exc:  # a broken kubeconfig or missing in-cluster credentials
        return None, f"Cluster {cluster.name} could not be reached ({exc}); the live object was not read."


def plan_for(proposed: Endpoint, *, current: Endpoint | None):
    """(plan, cluster note): ``endpoints.plan.compute`` for a proposed endpoint against the
    current one's latest revision (``current`` None: a new endpoint), reading the live
    object and dry-running through the project's cluster client."""
    old_spec, old_manifest = _current_state(current) if current is not None else (None, None)
    client, reason = _cluster_client(proposed.project)
    try:
        plan = plans.compute(proposed, old_spec=old_spec, old_manifest=old_manifest, client=client)
    finally:
        if client is not None:
            client.close()
    return plan, reason


def _compute_plan(proposal: Proposal):
    return plan_for(proposal.endpoint, current=proposal.current)


def _error_messages(error: ValidationError) -> list[str]:
    if hasattr(error, "error_dict"):
        out = []
        for field, items in error.message_dict.items():
            label = "" if field in ("__all__", "non_field_errors") else field.replace("_", " ").capitalize() + ": "
            out.extend(f"{label}{m}" for m in items)
        return out
    return list(error.messages)


# --- list -------------------------------------------------------------------------------------------

class EndpointListView(LoginRequiredMixin, ListView):
    """Endpoints the user may see, filtered by project, status and a search term."""

    template_name = "endpoints/endpoint/list.html"
    paginate_by = 25
    context_object_name = "endpoints"

    def get_queryset(self):
        self.filter_form = EndpointFilterForm(self.request.GET or None, user=self.request.user)
        filters = self.filter_form.cleaned_data if self.filter_form.is_valid() else {}
        return selectors.endpoint_list_visible_to(
            user=self.request.user, project=filters.get("project", ""), phase=filters.get("phase", ""),
            search=(filters.get("search") or "").strip(),
        ).order_by("project__name", "name")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        checker = PermissionChecker(self.request.user)
        rows = list(context["object_list"])
        checker.prefetch(rows, ["deploy"])
        can_create = selectors.project_list_visible_to(user=self.request.user, action="deploy").exists()
        for endpoint in rows:
            endpoint.can_deploy = endpoint.state != Endpoint.State.DELETING and checker.can(endpoint, "deploy")
            endpoint.current_status = _status(endpoint)
        context.update(
            title="Endpoints",
            description="Deployed models: each endpoint is one KServe InferenceService.",
            filter_form=self.filter_form,
            object_list=rows,
            models_url=_optional_url("endpoints:model-list"),
            create_url=reverse("endpoints:endpoint-create") if can_create else "",
            create_label="Deploy a model",
            object_name_plural="endpoints",
        )
        return context


# --- wizard -------------------------------------------------------------------------------------

class EndpointCreateView(LoginRequiredMixin, View):
    """The wizard for a new endpoint; submitting it shows the plan, never applies."""

    template_name = "endpoints/endpoint/form.html"

    def _form(self, request, data=None):
        initial = {}
        if data is None:
            for name in ("project", "model_version"):
                if request.GET.get(name, "").isdigit():
                    initial[name] = int(request.GET[name])
        return EndpointForm(data, user=request.user, initial=initial)

    def _page(self, request, form, status=200):
        if not form.fields["project"].queryset.exists():
            messages.info(request, "You may not deploy to any project yet. Ask a project owner or a platform "
                                   "admin for the Deployer role on a project.")
        return render(request, self.template_name, {
            "title": "Deploy a model", "form": form, "submit_label": "Review the plan",
            "cancel_url": reverse("endpoints:endpoint-list"),
            "description": "Fill in the sections below. Nothing is deployed until you have reviewed the plan.",
            "preview": runtime_preview_context(request.user, _form_value(form, "model_version"),
                                               _form_value(form, "protocol"), _form_value(form, "runtime")),
        }, status=status)

    def get(self, request):
        return self._page(request, self._form(request))

    def post(self, request):
        form = self._form(request, request.POST)
        if form.is_valid():
            config = form.config()
            project = form.cleaned_data["project"]
            name = form.cleaned_data["name"]
            proposed = new_endpoint(project=project, name=name, created_by=request.user, **config)
            error = validate_proposed(proposed, current=None, user=request.user)
            if error is None:
                return _plan_redirect(request, {"kind": "create", "project_id": project.pk, "name": name,
                                                "changes": _encode(config), "generation": None})
            apply_service_errors(form, error)
        return self._page(request, form, status=400)


class EndpointUpdateView(LoginRequiredMixin, View):
    """The wizard for an existing endpoint; only changed fields go to the plan."""

    template_name = "endpoints/endpoint/form.html"

    def _context(self, request, endpoint, form):
        return {
            "title": f"Edit endpoint {endpoint.name}", "form": form, "endpoint": endpoint,
            "submit_label": "Review the plan", "cancel_url": _detail_url(endpoint),
            "description": "Change what you need; the plan shows the difference before anything is applied.",
            "preview": runtime_preview_context(request.user, _form_value(form, "model_version"),
                                               _form_value(form, "protocol"), _form_value(form, "runtime")),
        }

    def _endpoint(self, request, project, name):
        endpoint = selectors.endpoint_get(user=request.user, project=project, name=name, action="deploy")
        if endpoint.state == Endpoint.State.DELETING:
            raise Http404("The endpoint is being deleted.")
        return endpoint

    def get(self, request, project, name):
        endpoint = self._endpoint(request, project, name)
        form = EndpointForm(user=request.user, endpoint=endpoint, mode_locked=_applied_mode(endpoint) is not None)
        return render(request, self.template_name, self._context(request, endpoint, form))

    def post(self, request, project, name):
        endpoint = self._endpoint(request, project, name)
        form = EndpointForm(request.POST, user=request.user, endpoint=endpoint,
                            mode_locked=_applied_mode(endpoint) is not None)
        if form.is_valid():
            changes = form.changes()
            if not changes:
                form.add_error(None, "Nothing changed: edit a field, or cancel.")
            else:
                entry = {"kind": "update", "endpoint_id": endpoint.pk, "generation": endpoint.generation,
                         "changes": _encode(changes)}
                try:
                    error = _validate(_proposal(request, entry), request.user)
                except ValidationError as exc:
                    error = exc
                if error is None:
                    return _plan_redirect(request, entry)
                apply_service_errors(form, error)
        return render(request, self.template_name, self._context(request, endpoint, form), status=400)


def _form_value(form, name: str) -> str:
    if name not in form.fields:
        return ""
    value = form[name].value()
    if hasattr(value, "pk"):
        value = value.pk
    return "" if value is None else str(value)


class EndpointCanaryView(LoginRequiredMixin, View):
    """Start (or adjust) a canary: a short form, then the plan."""

    template_name = "endpoints/endpoint/canary_form.html"

    def _endpoint(self, request, project, name):
        endpoint = selectors.endpoint_get(user=request.user, project=project, name=name, action="deploy")
        if endpoint.state == Endpoint.State.DELETING:
            raise Http404("The endpoint is being deleted.")
        return endpoint

    def _page(self, request, endpoint, form, status=200):
        return render(request, self.template_name, {
            "title": f"Start a canary on {endpoint.name}", "form": form, "endpoint": endpoint,
            "submit_label": "Review the plan", "cancel_url": _detail_url(endpoint),
            "no_other_version": not form.fields["canary_version"].queryset.exists(),
            "model_url": reverse("endpoints:model-detail", kwargs={"pk": endpoint.model_version.model_id}),
        }, status=status)

    def get(self, request, project, name):
        endpoint = self._endpoint(request, project, name)
        initial = {}
        if endpoint.canary_version_id:
            initial = {"canary_version": endpoint.canary_version_id,
                       "canary_traffic_percent": endpoint.canary_traffic_percent}
        return self._page(request, endpoint, CanaryForm(user=request.user, endpoint=endpoint, initial=initial))

    def post(self, request, project, name):
        endpoint = self._endpoint(request, project, name)
        form = CanaryForm(request.POST, user=request.user, endpoint=endpoint)
        if form.is_valid():
            entry = {"kind": "update", "endpoint_id": endpoint.pk, "generation": endpoint.generation,
                     "changes": _encode(form.changes())}
            proposal = _proposal(request, entry)
            error = _validate(proposal, request.user)
            if error is None:
                return _plan_redirect(request, entry)
            for message in _error_messages(error):
                form.add_error(None, message)
        return self._page(request, endpoint, form, status=400)


class EndpointActionView(LoginRequiredMixin, View):
    """POST-only actions that go through the plan page: rollback, promote, stop, start."""

    kind = ""
    http_method_names = ["post"]

    def post(self, request, project, name):
        endpoint = selectors.endpoint_get(user=request.user, project=project, name=name, action="deploy")
        if endpoint.state == Endpoint.State.DELETING:
            raise Http404("The endpoint is being deleted.")
        entry = {"kind": self.kind, "endpoint_id": endpoint.pk, "generation": endpoint.generation}
        if self.kind == "rollback":
            generation = request.POST.get("generation", "")
            if not generation.isdigit() or not endpoint.revisions.filter(generation=int(generation)).exists():
                messages.error(request, "Choose a revision of this endpoint to roll back to.")
                return redirect("endpoints:endpoint-revisions", project=project, name=name)
            entry["revision"] = int(generation)
        elif self.kind == "promote" and not endpoint.canary_version_id:
            messages.error(request, "The endpoint has no canary to promote.")
            return redirect(_detail_url(endpoint))
        return _plan_redirect(request, entry)


# --- plan ---------------------------------------------------------------------------------------

class EndpointPlanView(LoginRequiredMixin, View):
    """What a change will do (desired-field diff, manifest diff against the live object, the
    server's dry-run verdict, impact), with the button that applies it."""

    template_name = "endpoints/endpoint/plan.html"

    def get(self, request, token):
        entry = _load_plan(request, token)
        try:
            proposal = _proposal(request, entry)
        except ValidationError as exc:
            _drop_plan(request, token)
            for message in _error_messages(exc):
                messages.error(request, message)
            return redirect("endpoints:endpoint-list")
        moved = proposal.current is not None and proposal.current.generation != entry.get("generation")
        if moved:
            # Re-plan: what is shown now is what a confirmation applies.
            entry["generation"] = proposal.current.generation
            _save_plan(request, token, entry)
        error = _validate(proposal, request.user)
        plan, cluster_note = _compute_plan(proposal) if error is None else (None, "")
        description_only = (proposal.kind == "update" and plan is not None and not plan.has_changes
                            and set(proposal.changes) == {"description"})
        return render(request, self.template_name, {
            "title": proposal.title,
            "proposal": proposal,
            "field_rows": [{"path": p, "old": _display(old), "new": _display(new)}
                           for p, old, new in _field_changes(plan)],
            "endpoint": proposal.current,
            "plan": plan,
            "errors": _error_messages(error) if error else [],
            "cluster_note": cluster_note,
            "token": token,
            "reviewed_generation": entry.get("generation"),
            "moved": moved,
            "description_only": description_only,
            # A change the API server rejects on a dry run would only fail when applied.
            "can_confirm": (error is None and plan is not None and plan.dry_run_ok is not False
                            and (plan.has_changes or description_only)),
            "cancel_url": _detail_url(proposal.current) if proposal.current else reverse("endpoints:endpoint-list"),
        })

    def post(self, request, token):
        entry = _load_plan(request, token)
        user = request.user
        plan_url = reverse("endpoints:endpoint-plan", kwargs={"token": token})
        if entry["kind"] != "create":
            endpoint = _endpoint_by_id(user, entry["endpoint_id"], "deploy")
            reviewed = request.POST.get("generation", "")
            if endpoint.generation != entry.get("generation") or reviewed != str(entry.get("generation")):
                messages.error(request, "The endpoint changed since you reviewed this plan "
                                        f"(it is now at generation {endpoint.generation}). Review the updated "
                                        "plan below before confirming.")
                return redirect(plan_url)
        try:
            endpoint = self._apply(request, entry)
        except ValidationError as exc:
            for message in _error_messages(exc):
                messages.error(request, message)
            return redirect(plan_url)
        _drop_plan(request, token)
        messages.success(request, _success_message(entry["kind"], endpoint))
        return redirect(_detail_url(endpoint))

    def _apply(self, request, entry) -> Endpoint:
        user = request.user
        kind = entry["kind"]
        if kind == "create":
            project = get_visible_or_404(Project.objects.select_related("cluster"), user, "deploy",
                                         pk=entry["project_id"])
            config = _decode(entry["changes"], user=user, endpoint=None)
            model_version = config.pop("model_version", None)
            if model_version is None:
                raise ValidationError({"model_version": ["Choose a model version."]})
            return endpoint_create(actor=user, project=project, name=entry["name"],
                                   model_version=model_version, **config)
        endpoint = _endpoint_by_id(user, entry["endpoint_id"], "deploy")
        if kind == "update":
            changes = _decode(entry["changes"], user=user, endpoint=endpoint)
            return endpoint_update(actor=user, endpoint=endpoint, **changes)
        if kind == "rollback":
            revision = endpoint.revisions.filter(generation=entry["revision"]).first()
            if revision is None:
                raise ValidationError("That revision no longer exists.")
            return endpoint_rollback(actor=user, endpoint=endpoint, revision=revision)
        if kind == "promote":
            return endpoint_promote_canary(actor=user, endpoint=endpoint)
        if kind in ("stop", "start"):
            return endpoint_set_state(actor=user, endpoint=endpoint, stopped=kind == "stop")
        raise Http404("Unknown change.")


def _field_changes(plan) -> list[tuple[str, object, object]]:
    # spec.field_changes(None, new) reports the empty old snapshot as a change at path "";
    # that row says nothing, so it is left out.
    return [change for change in (plan.field_changes if plan else []) if change[0]]


def _display(value) -> str | None:
    """A diff value as text (None stays None: the template shows a dash)."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True)


def _success_message(kind: str, endpoint: Endpoint) -> str:
    done = {"create": "created", "update": "changed", "rollback": "rolled back", "promote": "promoted its canary",
            "stop": "is stopping", "start": "is starting"}[kind]
    return (f"Endpoint {endpoint.name} {done}: generation {endpoint.generation} is being applied to the cluster. "
            "The status below follows the rollout.")


# --- delete -------------------------------------------------------------------------------------

class EndpointDeleteView(LoginRequiredMixin, View):
    """Confirm, then mark for deletion (a worker deletes the InferenceService, then the row)."""

    def _endpoint(self, request, project, name):
        return selectors.endpoint_get(user=request.user, project=project, name=name, action="deploy")

    def get(self, request, project, name):
        endpoint = self._endpoint(request, project, name)
        return render(request, "generic/confirm.html", {
            "title": f"Delete endpoint {endpoint.name}",
            "object": f"{endpoint.project.name} / {endpoint.name}",
            "summary": "The console deletes the InferenceService from the cluster, then the endpoint and its "
                       "revisions. Callers get errors from then on.",
            "consequences": [
                f"Namespace {endpoint.project.namespace} on cluster {endpoint.project.cluster.name} loses the "
                f"InferenceService {endpoint.name} and its pods.",
                "The audit trail keeps every event about this endpoint.",
            ],
            "confirm_label": "Delete endpoint",
            "cancel_url": _detail_url(endpoint),
        })

    def post(self, request, project, name):
        endpoint = self._endpoint(request, project, name)
        endpoint_delete(actor=request.user, endpoint=endpoint)
        messages.success(request, f"Endpoint {endpoint.name} is being deleted.")
        return redirect("endpoints:endpoint-list")


# --- detail tabs --------------------------------------------------------------------------------

def _optional_url(name: str) -> str:
    """A URL of a page another part of the console provides, or "" while it does not exist."""
    try:
        return reverse(name)
    except NoReverseMatch:
        return ""


def _detail_url(endpoint: Endpoint) -> str:
    return reverse("endpoints:endpoint-detail", kwargs={"project": endpoint.project.name, "name": endpoint.name})


TABS = (
    ("endpoint-detail", "Overview"),
    ("endpoint-configuration", "Configuration"),
    ("endpoint-manifest", "Manifest"),
    ("endpoint-revisions", "Revisions"),
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
        "status": _status(endpoint),
        "can_deploy": can_deploy,
        "audit_history_url": reverse("audit:object-history",
                                     kwargs={"target_type": "endpoint", "target_id": endpoint.pk})
        if can_read_trail else "",
        "tabs": [{"label": label, "url": reverse(f"endpoints:{url}", kwargs=kwargs), "active": url == tab}
                 for url, label in TABS],
    }


class EndpointTabView(LoginRequiredMixin, View):
    """One tab of the endpoint page; subclasses add their context."""

    tab = "endpoint-detail"
    template_name = ""

    def get(self, request, project, name):
        endpoint = selectors.endpoint_get(user=request.user, project=project, name=name)
        context = endpoint_frame(request, endpoint, self.tab)
        context.update(self.extra_context(request, endpoint))
        return render(request, self.template_name, context)

    def extra_context(self, request, endpoint) -> dict:
        return {}


class EndpointDetailView(EndpointTabView):
    """Overview: status, traffic, and how to call the endpoint."""

    tab = "endpoint-detail"
    template_name = "endpoints/endpoint/overview.html"

    def extra_context(self, request, endpoint):
        runtime = specs.effective_runtime(endpoint, available_runtime_specs())
        return {"how_to_call": how_to_call(endpoint, runtime), **status_context(endpoint)}


class EndpointConfigurationView(EndpointTabView):
    """Every desired field, grouped like the wizard."""

    tab = "endpoint-configuration"
    template_name = "endpoints/endpoint/configuration.html"

    def extra_context(self, request, endpoint):
        revision = endpoint.revisions.filter(generation=endpoint.generation).first()
        spec = revision.spec if revision is not None else specs.desired_spec(endpoint)
        return {"sections": configuration_sections(endpoint),
                "spec_fields": sorted(specs.audit_view(spec).items())}


class EndpointManifestView(EndpointTabView):
    """The canonical YAML of the current revision: exactly what the console applies."""

    tab = "endpoint-manifest"
    template_name = "endpoints/endpoint/manifest.html"

    def extra_context(self, request, endpoint):
        revision = endpoint.revisions.filter(generation=endpoint.generation).first()
        manifest = revision.manifest if revision is not None else reconcile.render(specs.desired_spec(endpoint))
        return {"revision": revision, "manifest_yaml": reconcile.canonical_yaml(redact_ingest_keys(manifest))}


class EndpointRevisionsView(EndpointTabView):
    """History: one row per generation with its diff against the previous one."""

    tab = "endpoint-revisions"
    template_name = "endpoints/endpoint/revisions.html"
    per_page = 20

    def extra_context(self, request, endpoint):
        revisions = selectors.endpoint_revisions(endpoint=endpoint)
        paginator = Paginator(revisions, self.per_page)
        page = paginator.get_page(request.GET.get("page"))
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


class EndpointStatusView(LoginRequiredMixin, View):
    """The overview's status card as an htmx fragment; it polls itself while the endpoint is
    Pending or Deploying and stops once it settles."""

    def get(self, request, project, name):
        try:
            endpoint = selectors.endpoint_get(user=request.user, project=project, name=name)
        except Http404:
            if not request.headers.get("HX-Request"):
                raise
            # 286 tells htmx to stop polling: the endpoint was deleted (or access withdrawn)
            # while the page was open, and asking again every 3 s would only repeat the error.
            return render(request, "endpoints/endpoint/_status_gone.html", status=HTMX_STOP_POLLING)
        # As a fragment it also refreshes the phase badge in the page heading (out of band).
        return render(request, "endpoints/endpoint/_status.html", {**status_context(endpoint), "fragment": True})


def status_context(endpoint: Endpoint) -> dict:
    status = _status(endpoint)
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


# --- runtime preview ----------------------------------------------------------------------------

def runtime_preview_context(user, version_id: str, protocol: str, runtime_id: str) -> dict:
    """Which runtime will serve a version with a protocol, following KServe's rules."""
    context: dict = {"version": None}
    version = (selectors.version_choices_for(user=user).filter(pk=version_id).first()
               if str(version_id).isdigit() else None)
    if version is None:
        return context
    protocol = protocol if protocol in runtimes.CONSOLE_PROTOCOLS else "v1"
    runtime = runtime_choices().filter(pk=runtime_id).first() if str(runtime_id).isdigit() else None
    available = available_runtime_specs()
    probe = Endpoint(model_version=version, protocol=protocol, runtime=runtime)
    chosen, protocol_version = specs.serving_runtime_and_protocol(probe, available)
    fmt, fmt_version = version.model_format, version.format_version or None
    context.update(version=version, protocol=protocol, explicit=runtime is not None, chosen=chosen)
    if runtime is not None:
        kserve_protocol = runtimes.kserve_protocol(protocol, chosen, model_format=fmt)
        ok, reason = runtimes.runtime_supports(chosen, fmt, fmt_version, kserve_protocol)
        context.update(ok=ok, reason=reason)
    else:
        match_protocol = runtimes.kserve_protocol(protocol, None, model_format=fmt)
        candidates = runtimes.supporting_runtimes(fmt, fmt_version, match_protocol, available)
        context.update(ok=chosen is not None, candidates=candidates[1:4],
                       match_protocol=match_protocol or "v1 (unset)")
    if chosen is not None:
        context["protocol_version"] = protocol_version
        if protocol == "openai" and not chosen.openai_compatible:
            context["openai_problem"] = (f"{chosen.name} does not serve the OpenAI-compatible API; choose an LLM "
                                         "runtime (Hugging Face server or vLLM) or protocol v1/v2.")
    return context


class RuntimePreviewView(LoginRequiredMixin, View):
    """htmx fragment of the wizard: the runtime KServe will use for the chosen version."""

    def get(self, request):
        context = runtime_preview_context(request.user, request.GET.get("model_version", ""),
                                          request.GET.get("protocol", ""), request.GET.get("runtime", ""))
        return render(request, "endpoints/endpoint/_runtime_preview.html", {"preview": context})


# --- "how to call it" -----------------------------------------------------------------------------

_TEXT_TYPES = {"categorical", "string", "str", "object", "category", "bytes", "text", "bool", "boolean"}


def _is_numeric(feature: dict) -> bool:
    return str(feature.get("type") or feature.get("dtype") or "numeric").lower() not in _TEXT_TYPES


def _reference_examples(version) -> dict:
    """Typical values from the version's reference profile (mean of a numeric feature, most
    frequent category), so the example request looks like real traffic."""
    examples = {}
    for feature in (version.reference_profile or {}).get("features") or []:
        if not isinstance(feature, dict) or "name" not in feature:
            continue
        if feature.get("type") == "numeric" and isinstance(feature.get("mean"), int | float):
            examples[feature["name"]] = round(float(feature["mean"]), 3)
        elif feature.get("type") == "categorical":
            pairs = [(p, c) for c, p in zip(feature.get("categories") or [], feature.get("proportions") or [],
                                            strict=False) if c != "__other__"]
            if pairs:
                examples[feature["name"]] = max(pairs)[1]
    return examples


def _example_row(signature: list[dict], version) -> list:
    examples = _reference_examples(version)
    return [examples.get(f.get("name"), 0.0 if _is_numeric(f) else "example") for f in signature]


def _v1_body(signature: list[dict], version) -> dict:
    return {"instances": [_example_row(signature, version) if signature else [1.0, 2.0, 3.0, 4.0]]}


def _v2_body(signature: list[dict], version) -> dict:
    if not signature:
        return {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP32", "data": [1.0, 2.0, 3.0, 4.0]}]}
    row = _example_row(signature, version)
    if all(_is_numeric(f) for f in signature):
        return {"inputs": [{"name": "input-0", "shape": [1, len(signature)], "datatype": "FP32", "data": row}]}
    return {"inputs": [
        {"name": str(f.get("name", f"input-{i}")), "shape": [1], "datatype": "FP32" if _is_numeric(f) else "BYTES",
         "data": [value]}
        for i, (f, value) in enumerate(zip(signature, row, strict=True))
    ]}


def _json_example(body: dict) -> str:
    """Indented JSON whose innermost lists of plain values stay on one line."""
    text = json.dumps(body, indent=2)
    return re.sub(r"\[\s*\n\s*((?:[^\[\]{}\n]+,\s*\n\s*)*[^\[\]{}\n]+?)\s*\n\s*\]",
                  lambda m: "[" + re.sub(r",\s*\n\s*", ", ", m.group(1)) + "]", text)


def _openai_request(endpoint: Endpoint, prefix: str) -> tuple[str, dict]:
    task = endpoint.model_version.model.task
    if task == "llm-completion":
        return f"{prefix}/v1/completions", {"model": endpoint.name, "prompt": "Say hello.", "max_tokens": 64}
    if task == "embedding":
        return f"{prefix}/v1/embeddings", {"model": endpoint.name, "input": "The text to embed."}
    return f"{prefix}/v1/chat/completions", {
        "model": endpoint.name, "messages": [{"role": "user", "content": "Hello!"}], "max_tokens": 64}


def how_to_call(endpoint: Endpoint, runtime) -> dict:
    """URL, protocol and an example ``curl`` for the endpoint, built from its protocol, its
    runtime's routes and its model version's input signature."""
    status = _status(endpoint)
    url = (status.url if status else "").rstrip("/")
    base = url or "$ENDPOINT_URL"
    signature = [f for f in (endpoint.model_version.input_signature or []) if isinstance(f, dict)]
    if endpoint.protocol == Endpoint.Protocol.OPENAI:
        prefix = (runtime.openai_route_prefix if runtime is not None else "") or ""
        route, body = _openai_request(endpoint, prefix.rstrip("/"))
        protocol = "OpenAI-compatible API" + (f" (routes under {prefix})" if prefix else " (routes at the root)")
        notes = [f"The request's \"model\" field must be the endpoint name, {endpoint.name}."]
    elif endpoint.protocol == Endpoint.Protocol.V2:
        route, body = f"/v2/models/{endpoint.name}/infer", _v2_body(signature, endpoint.model_version)
        protocol = "Open Inference Protocol (v2)"
        notes = [f"Model metadata (input names, shapes, datatypes): GET {base}/v2/models/{endpoint.name}"]
    else:
        route, body = f"/v1/models/{endpoint.name}:predict", _v1_body(signature, endpoint.model_version)
        protocol = "KServe V1"
        notes = []
    if signature and endpoint.protocol != Endpoint.Protocol.OPENAI:
        notes.insert(0, "Feature order: " + ", ".join(str(f.get("name", "?")) for f in signature) + ".")
    elif endpoint.protocol != Endpoint.Protocol.OPENAI:
        notes.insert(0, "The model version has no input signature; replace the example values with your "
                        "model's features.")
    payload = _json_example(body)
    # A known URL is quoted literally; the placeholder stays in double quotes so the shell expands it.
    target = shlex.quote(url + route) if url else f'"{base}{route}"'
    curl = "\n".join([
        f"curl -sS -X POST {target} \\",
        '  -H "Authorization: Bearer $TOKEN" \\',
        "  -H 'Content-Type: application/json' \\",
        f"  -d {shlex.quote(payload)}",
    ])
    return {
        "url": url,
        "address_url": status.address_url if status else "",
        "protocol": protocol,
        "method_path": f"POST {route}",
        "curl": curl,
        "notes": notes,
        "runtime": runtime,
    }


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


# --- routes ---------------------------------------------------------------------------------------

_ENDPOINT = "endpoints/<slug:project>/<slug:name>/"

urlpatterns = [
    path("endpoints/", EndpointListView.as_view(), name="endpoint-list"),
    path("endpoints/new/", EndpointCreateView.as_view(), name="endpoint-create"),
    # "-" can never be a project name (a DNS label starts with a letter), so these never
    # shadow an endpoint page.
    path("endpoints/-/runtime-preview/", RuntimePreviewView.as_view(), name="runtime-preview"),
    path("endpoints/-/plan/<str:token>/", EndpointPlanView.as_view(), name="endpoint-plan"),
    path(_ENDPOINT, EndpointDetailView.as_view(), name="endpoint-detail"),
    path(_ENDPOINT + "configuration/", EndpointConfigurationView.as_view(), name="endpoint-configuration"),
    path(_ENDPOINT + "manifest/", EndpointManifestView.as_view(), name="endpoint-manifest"),
    path(_ENDPOINT + "revisions/", EndpointRevisionsView.as_view(), name="endpoint-revisions"),
    path(_ENDPOINT + "status/", EndpointStatusView.as_view(), name="endpoint-status"),
    path(_ENDPOINT + "edit/", EndpointUpdateView.as_view(), name="endpoint-edit"),
    path(_ENDPOINT + "canary/", EndpointCanaryView.as_view(), name="endpoint-canary"),
    path(_ENDPOINT + "promote/", EndpointActionView.as_view(kind="promote"), name="endpoint-promote"),
    path(_ENDPOINT + "rollback/", EndpointActionView.as_view(kind="rollback"), name="endpoint-rollback"),
    path(_ENDPOINT + "stop/", EndpointActionView.as_view(kind="stop"), name="endpoint-stop"),
    path(_ENDPOINT + "start/", EndpointActionView.as_view(kind="start"), name="endpoint-start"),
    path(_ENDPOINT + "delete/", EndpointDeleteView.as_view(), name="endpoint-delete"),
]
