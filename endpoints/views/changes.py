"""Changing an endpoint: the create/edit wizard, the canary form, the one-click actions
(rollback, promote, stop, start), the plan page every change goes through before it is
applied, and deletion.

Plan before apply: the wizard (and rollback, canary, promote, stop/start) never changes
anything. It validates, stores the proposed change in the session under a random token with
the endpoint's generation at that moment, and redirects to the plan page. Confirming the
plan calls the service; if the endpoint's generation moved meanwhile, the confirmation is
refused and the plan recomputed against the new state. What a change would do is computed
by ``endpoints.planning``, which the API's plan actions use too.
"""

from __future__ import annotations

import json
import secrets

from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.utils import timezone
from django.views import View

from console.ids import parse_id
from console.permissions import get_visible_or_404
from console.views.base import ProtectedDetailView
from endpoints import planning, rollout_policy, runtimes, selectors
from endpoints import spec as specs
from endpoints.forms.endpoint import CanaryForm, EndpointForm, apply_service_errors
from endpoints.forms.rollouts import RolloutPolicyForm
from endpoints.models import Endpoint, Project
from endpoints.services.endpoints import (
    available_runtime_specs,
    endpoint_create,
    endpoint_delete,
    endpoint_promote_canary,
    endpoint_rollback,
    endpoint_set_state,
    endpoint_update,
)
from endpoints.services.rollouts import effective_policy, rollout_policy_save
from endpoints.views.endpoint import ENDPOINT_ROUTE, EndpointPageMixin, detail_url

SESSION_KEY = "endpoint_plans"
MAX_PENDING_PLANS = 20


# --- the wizard's rollout policy section --------------------------------------------------------

def _rollout_base(endpoint: Endpoint | None) -> tuple[dict, str]:
    if endpoint is None:
        return dict(rollout_policy.DEFAULTS), "the project's default (or the built-in)"
    policy, source = effective_policy(endpoint)
    return policy, {"endpoint": "its own", "project": "the project's default"}.get(source, "the built-in")


def _rollout_form(endpoint: Endpoint | None, data=None) -> RolloutPolicyForm:
    """The section, bound to ``data``; a submission without it (an API-like client, an older
    page) leaves the policy as it is."""
    policy = _rollout_base(endpoint)[0]
    if data is not None and "rollout-steps" not in data:
        data = {f"rollout-{name}": ("" if value is None else ", ".join(map(str, value)) if name == "steps"
                                    else value)
                for name, value in policy.items() if value is not False}
    return RolloutPolicyForm(data, policy=policy, prefix="rollout")


def _rollout_change(form: RolloutPolicyForm, endpoint: Endpoint | None) -> dict | None:
    """The policy the wizard asks to save, or None when the section was left as it was."""
    return form.policy if form.policy != _rollout_base(endpoint)[0] else None


# --- pending changes in the session -----------------------------------------------------------

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


def _error_messages(error: ValidationError) -> list[str]:
    if hasattr(error, "error_dict"):
        out = []
        for field, items in error.message_dict.items():
            label = "" if field in ("__all__", "non_field_errors") else field.replace("_", " ").capitalize() + ": "
            out.extend(f"{label}{m}" for m in items)
        return out
    return list(error.messages)


# --- wizard -------------------------------------------------------------------------------------

class EndpointCreateView(LoginRequiredMixin, View):
    """The wizard for a new endpoint; submitting it shows the plan, never applies."""

    template_name = "endpoints/endpoint/form.html"

    def _form(self, request, data=None):
        initial = {}
        if data is None:
            for name in ("project", "model_version"):
                if parse_id(request.GET.get(name, "")) is not None:
                    initial[name] = parse_id(request.GET[name])
        return EndpointForm(data, user=request.user, initial=initial,
                            profile_choice=request.GET.get("hardware_profile") if data is None else None)

    def _page(self, request, form, status=200, rollout_form=None):
        if not form.fields["project"].queryset.exists():
            messages.info(request, "You may not deploy to any project yet. Ask a project owner or a platform "
                                   "admin for the Deployer role on a project.")
        return render(request, self.template_name, {
            "title": "Deploy a model", "form": form, "submit_label": "Review the plan",
            "cancel_url": reverse("endpoints:endpoint-list"),
            "description": "Fill in the sections below. Nothing is deployed until you have reviewed the plan.",
            "preview": runtime_preview_context(request.user, _form_value(form, "model_version"),
                                               _form_value(form, "protocol"), _form_value(form, "runtime")),
            "rollout_form": rollout_form or _rollout_form(None), "rollout_source": _rollout_base(None)[1],
        }, status=status)

    def get(self, request):
        return self._page(request, self._form(request))

    def post(self, request):
        form = self._form(request, request.POST)
        rollout_form = _rollout_form(None, request.POST)
        rollout_valid = rollout_form.is_valid()
        if form.is_valid() and rollout_valid:
            config = form.config()
            project = form.cleaned_data["project"]
            name = form.cleaned_data["name"]
            proposed = planning.new_endpoint(project=project, name=name, created_by=request.user, **config)
            error = planning.validate_proposed(proposed, current=None, user=request.user)
            if error is None:
                return _plan_redirect(request, {"kind": "create", "project_id": project.pk, "name": name,
                                                "changes": planning.encode_changes(config), "generation": None,
                                                "rollout_policy": _rollout_change(rollout_form, None)})
            apply_service_errors(form, error)
        return self._page(request, form, status=400, rollout_form=rollout_form)


class EndpointChangeMixin(EndpointPageMixin):
    """A change to the endpoint the URL names: the base view finds it among those the user may
    see (404 otherwise) and requires deploy on it (403); an endpoint being deleted takes no
    other change (404)."""

    permission_action = "deploy"

    def get_endpoint(self) -> Endpoint:
        endpoint = self.get_object()
        if endpoint.state == Endpoint.State.DELETING:
            raise Http404("The endpoint is being deleted.")
        return endpoint


class EndpointUpdateView(EndpointChangeMixin, ProtectedDetailView):
    """The wizard for an existing endpoint; only changed fields go to the plan."""

    template_name = "endpoints/endpoint/form.html"

    def _context(self, request, endpoint, form, rollout_form=None):
        return {
            "title": f"Edit endpoint {endpoint.name}", "form": form, "endpoint": endpoint,
            "submit_label": "Review the plan", "cancel_url": detail_url(endpoint),
            "description": "Change what you need; the plan shows the difference before anything is applied.",
            "preview": runtime_preview_context(request.user, _form_value(form, "model_version"),
                                               _form_value(form, "protocol"), _form_value(form, "runtime")),
            "rollout_form": rollout_form or _rollout_form(endpoint), "rollout_source": _rollout_base(endpoint)[1],
        }

    def get(self, request, project, name):
        endpoint = self.get_endpoint()
        form = EndpointForm(user=request.user, endpoint=endpoint,
                            mode_locked=planning.applied_mode(endpoint) is not None,
                            profile_choice=request.GET.get("hardware_profile"))
        return render(request, self.template_name, self._context(request, endpoint, form))

    def post(self, request, project, name):
        endpoint = self.get_endpoint()
        form = EndpointForm(request.POST, user=request.user, endpoint=endpoint,
                            mode_locked=planning.applied_mode(endpoint) is not None)
        rollout_form = _rollout_form(endpoint, request.POST)
        rollout_valid = rollout_form.is_valid()
        if form.is_valid() and rollout_valid:
            changes = form.changes()
            policy = _rollout_change(rollout_form, endpoint)
            if not changes and policy is not None:
                # Only the rollout policy changed: nothing to plan on the cluster.
                rollout_policy_save(actor=request.user, endpoint=endpoint, **policy)
                messages.success(request, f"Rollout policy of {endpoint.name} saved; it applies to its next "
                                          "automated rollouts.")
                return redirect(detail_url(endpoint))
            if not changes:
                form.add_error(None, "Nothing changed: edit a field, or cancel.")
            else:
                entry = {"kind": "update", "endpoint_id": endpoint.pk, "generation": endpoint.generation,
                         "changes": planning.encode_changes(changes), "rollout_policy": policy}
                try:
                    proposal = planning.proposal_from_entry(entry, user=request.user)
                    error = planning.validate_proposal(proposal, user=request.user)
                except ValidationError as exc:
                    error = exc
                if error is None:
                    return _plan_redirect(request, entry)
                apply_service_errors(form, error)
        return render(request, self.template_name, self._context(request, endpoint, form, rollout_form),
                      status=400)


def _form_value(form, name: str) -> str:
    if name not in form.fields:
        return ""
    value = form[name].value()
    if hasattr(value, "pk"):
        value = value.pk
    return "" if value is None else str(value)


class EndpointCanaryView(EndpointChangeMixin, ProtectedDetailView):
    """Start (or adjust) a canary: a short form, then the plan."""

    template_name = "endpoints/endpoint/canary_form.html"

    def _page(self, request, endpoint, form, status=200):
        return render(request, self.template_name, {
            # The endpoint page's button says "Adjust canary" when one runs; so does the page it opens.
            "title": (f"Adjust the canary of {endpoint.name}" if endpoint.canary_version_id
                      else f"Start a canary on {endpoint.name}"),
            "form": form, "endpoint": endpoint,
            "submit_label": "Review the plan", "cancel_url": detail_url(endpoint),
            "no_other_version": not form.fields["canary_version"].queryset.exists(),
            "model_url": reverse("endpoints:model-detail", kwargs={"pk": endpoint.model_version.model_id}),
        }, status=status)

    def get(self, request, project, name):
        endpoint = self.get_endpoint()
        initial = {}
        if endpoint.canary_version_id:
            initial = {"canary_version": endpoint.canary_version_id,
                       "canary_traffic_percent": endpoint.canary_traffic_percent}
        return self._page(request, endpoint, CanaryForm(user=request.user, endpoint=endpoint, initial=initial))

    def post(self, request, project, name):
        endpoint = self.get_endpoint()
        form = CanaryForm(request.POST, user=request.user, endpoint=endpoint)
        if form.is_valid():
            entry = {"kind": "update", "endpoint_id": endpoint.pk, "generation": endpoint.generation,
                     "changes": planning.encode_changes(form.changes())}
            proposal = planning.proposal_from_entry(entry, user=request.user)
            error = planning.validate_proposal(proposal, user=request.user)
            if error is None:
                return _plan_redirect(request, entry)
            for message in _error_messages(error):
                form.add_error(None, message)
        return self._page(request, endpoint, form, status=400)


class EndpointActionView(EndpointChangeMixin, ProtectedDetailView):
    """POST-only actions that go through the plan page: rollback, promote, stop, start."""

    kind = ""
    http_method_names = ["post"]

    def post(self, request, project, name):
        endpoint = self.get_endpoint()
        entry = {"kind": self.kind, "endpoint_id": endpoint.pk, "generation": endpoint.generation}
        if self.kind == "rollback":
            generation = request.POST.get("generation", "")
            if not generation.isdigit() or not endpoint.revisions.filter(generation=int(generation)).exists():
                messages.error(request, "Choose a revision of this endpoint to roll back to.")
                return redirect("endpoints:endpoint-revisions", project=project, name=name)
            entry["revision"] = int(generation)
        elif self.kind == "promote" and not endpoint.canary_version_id:
            messages.error(request, "The endpoint has no canary to promote.")
            return redirect(detail_url(endpoint))
        return _plan_redirect(request, entry)


# --- plan ---------------------------------------------------------------------------------------

class EndpointPlanView(LoginRequiredMixin, View):
    """What a change will do (desired-field diff, manifest diff against the live object, the
    server's dry-run verdict, impact), with the button that applies it."""

    template_name = "endpoints/endpoint/plan.html"

    def get(self, request, token):
        entry = _load_plan(request, token)
        try:
            proposal = planning.proposal_from_entry(entry, user=request.user)
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
        error = planning.validate_proposal(proposal, user=request.user)
        plan, cluster_note = planning.plan_for(proposal.endpoint, current=proposal.current) if error is None else (None, "")
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
                            and not plan.storage_blocked and (plan.has_changes or description_only)),
            "cancel_url": detail_url(proposal.current) if proposal.current else reverse("endpoints:endpoint-list"),
        })

    def post(self, request, token):
        entry = _load_plan(request, token)
        user = request.user
        plan_url = reverse("endpoints:endpoint-plan", kwargs={"token": token})
        if entry["kind"] != "create":
            endpoint = planning.endpoint_by_id(user=user, pk=entry["endpoint_id"], action="deploy")
            reviewed = request.POST.get("generation", "")
            if endpoint.generation != entry.get("generation") or reviewed != str(entry.get("generation")):
                messages.error(request, "The endpoint changed since you reviewed this plan "
                                        f"(it is now at generation {endpoint.generation}). Review the updated "
                                        "plan below before confirming.")
                return redirect(plan_url)
        try:
            with transaction.atomic():  # the change and the rollout policy saved with it
                endpoint = self._apply(request, entry)
        except ValidationError as exc:
            for message in _error_messages(exc):
                messages.error(request, message)
            return redirect(plan_url)
        _drop_plan(request, token)
        messages.success(request, _success_message(entry["kind"], endpoint))
        return redirect(detail_url(endpoint))

    def _apply(self, request, entry) -> Endpoint:
        user = request.user
        kind = entry["kind"]
        if kind == "create":
            project = get_visible_or_404(Project.objects.select_related("cluster"), user, "deploy",
                                         pk=entry["project_id"])
            config = planning.decode_changes(entry["changes"], user=user, endpoint=None, project=project)
            model_version = config.pop("model_version", None)
            if model_version is None:
                raise ValidationError({"model_version": ["Choose a model version."]})
            endpoint = endpoint_create(actor=user, project=project, name=entry["name"],
                                       model_version=model_version, **config)
            if entry.get("rollout_policy"):
                rollout_policy_save(actor=user, endpoint=endpoint, **entry["rollout_policy"])
            return endpoint
        endpoint = planning.endpoint_by_id(user=user, pk=entry["endpoint_id"], action="deploy")
        if kind == "update":
            changes = planning.decode_changes(entry["changes"], user=user, endpoint=endpoint)
            endpoint = endpoint_update(actor=user, endpoint=endpoint, **changes)
            if entry.get("rollout_policy"):
                rollout_policy_save(actor=user, endpoint=endpoint, **entry["rollout_policy"])
            return endpoint
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

class EndpointDeleteView(EndpointPageMixin, ProtectedDetailView):
    """Confirm, then mark for deletion (a worker deletes the InferenceService, then the row).
    Needs deploy on the endpoint; deleting one already being deleted changes nothing."""

    permission_action = "deploy"

    def get(self, request, project, name):
        endpoint = self.get_object()
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
            "cancel_url": detail_url(endpoint),
        })

    def post(self, request, project, name):
        endpoint = self.get_object()
        endpoint_delete(actor=request.user, endpoint=endpoint)
        messages.success(request, f"Endpoint {endpoint.name} is being deleted.")
        return redirect("endpoints:endpoint-list")


# --- runtime preview ----------------------------------------------------------------------------

def runtime_preview_context(user, version_id: str, protocol: str, runtime_id: str) -> dict:
    """Which runtime will serve a version with a protocol, following KServe's rules."""
    context: dict = {"version": None}
    version = (selectors.version_choices_for(user=user).filter(pk=version_id).first()
               if parse_id(version_id) is not None else None)
    if version is None:
        return context
    protocol = protocol if protocol in runtimes.CONSOLE_PROTOCOLS else "v1"
    runtime = selectors.runtime_choices().filter(pk=runtime_id).first() if parse_id(runtime_id) is not None else None
    available = available_runtime_specs(version.model.project)  # as installed on the project's cluster
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


urlpatterns = [
    path("endpoints/new/", EndpointCreateView.as_view(), name="endpoint-create"),
    # "-" can never be a project name (a DNS label starts with a letter), so these never
    # shadow an endpoint page.
    path("endpoints/-/runtime-preview/", RuntimePreviewView.as_view(), name="runtime-preview"),
    path("endpoints/-/plan/<str:token>/", EndpointPlanView.as_view(), name="endpoint-plan"),
    path(ENDPOINT_ROUTE + "edit/", EndpointUpdateView.as_view(), name="endpoint-edit"),
    path(ENDPOINT_ROUTE + "canary/", EndpointCanaryView.as_view(), name="endpoint-canary"),
    path(ENDPOINT_ROUTE + "promote/", EndpointActionView.as_view(kind="promote"), name="endpoint-promote"),
    path(ENDPOINT_ROUTE + "rollback/", EndpointActionView.as_view(kind="rollback"), name="endpoint-rollback"),
    path(ENDPOINT_ROUTE + "stop/", EndpointActionView.as_view(kind="stop"), name="endpoint-stop"),
    path(ENDPOINT_ROUTE + "start/", EndpointActionView.as_view(kind="start"), name="endpoint-start"),
    path(ENDPOINT_ROUTE + "delete/", EndpointDeleteView.as_view(), name="endpoint-delete"),
]
