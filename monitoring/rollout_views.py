"""The endpoint's Rollout tab (namespace ``monitoring``): the automated rollout running now and
the ones before it, their timeline (a plotly chart of traffic per step and of each gate's value
against its threshold, plus the table of decisions: what, why, who or what made it), and the
controls — start with a policy, pause, resume, abort (deploy on the endpoint), skip to promotion
(manage: the project's Owners) — and the endpoint's own rollout policy (deploy).

Whoever may see the endpoint sees the tab (404 otherwise); a control a user may not use is not
shown and answers 403. Every control calls ``endpoints.services.rollouts``; a refusal comes
back as a message (or the form with its errors) and nothing changes.
"""

from __future__ import annotations

from csp.decorators import csp_update
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import path, reverse
from django.utils import timezone
from django.utils.decorators import method_decorator

from console.permissions import PermissionChecker
from console.views.base import ProtectedDetailView
from endpoints.forms.rollouts import RolloutPolicyForm, RolloutReasonForm, RolloutSkipForm, RolloutStartForm
from endpoints.models import Rollout
from endpoints.services import rollouts as services
from endpoints.views.endpoint import EndpointPageMixin, endpoint_frame
from monitoring.rollouts import rollout_data
from monitoring.staticfiles import PLOTLY_JS, plotly_style_guard_ids
from monitoring.views import EMPTY_INLINE_STYLE, dashboard_csp

# A refused form shows the tab (with its chart) again from the POST: the same narrow CSP
# exception the dashboards have (monitoring.views).
post_csp = method_decorator(csp_update({"style-src": ["'unsafe-hashes'", EMPTY_INLINE_STYLE]}), name="post")

def _summary(request, endpoint, data) -> str:
    return render_to_string("monitoring/_rollout_summary.html", {"endpoint": endpoint, **data}, request=request)


@dashboard_csp
class EndpointRolloutView(EndpointPageMixin, ProtectedDetailView):
    """The Rollout tab (``json``: its JSON twin, polled by dashboards.js)."""

    json = False

    def get(self, request, project, name):
        return rollout_page(request, self.get_object(), json=self.json)


def rollout_page(request, endpoint, *, json: bool = False, start_form=None, policy_form=None, skip_form=None,
                 status: int = 200):
    data = rollout_data(endpoint)
    summary = _summary(request, endpoint, data)
    chart = {"figures": data["figures"], "empty": data["empty"]}
    if json:
        return JsonResponse({**chart, "fragments": {"summary": summary}, "updated": timezone.now().isoformat()},
                            headers={"Cache-Control": "no-store"})
    frame = endpoint_frame(request, endpoint)
    checker = PermissionChecker(request.user)
    can_manage = frame["can_deploy"] and checker.can(endpoint, "manage")
    current = data["current"]
    active = current if current is not None and current.is_active else None
    policy, source = services.effective_policy(endpoint)
    refusal = services.start_refusal(endpoint)
    if frame["can_deploy"] and active is None and start_form is None:
        start_form = RolloutStartForm(endpoint=endpoint, policy=policy)
    if frame["can_deploy"] and policy_form is None:
        policy_form = RolloutPolicyForm(policy=policy, auto_id="policy_%s")
    kwargs = {"project": endpoint.project.name, "name": endpoint.name}
    context = {
        **frame,
        "title": f"Rollout · {endpoint.name}",
        "summary": summary,
        "dashboard_data": chart,
        "data_url": reverse("monitoring:endpoint-rollout-data", kwargs=kwargs),
        "refresh_seconds": settings.MONITORING_REFRESH_SECONDS,
        "plotly_js": PLOTLY_JS,
        "plotly_style_guard_ids": plotly_style_guard_ids(),
        "panel": {"name": "timeline", "title": "Rollout timeline", "wide": True,
                  "description": "Above: the canary's share of traffic and every decision (hover for who or what "
                                 "made it, and why). Below: each gate's value at each evaluation as a share of its "
                                 "threshold — above the dashed line fails.",
                  "has_figure": chart["figures"]["timeline"] is not None, "empty": chart["empty"]["timeline"]},
        "active": active,
        "can_manage": can_manage,
        "start_form": start_form if active is None else None,
        "start_refusal": refusal if active is None else None,
        "policy_form": policy_form,
        "policy_source": source,
        "skip_form": skip_form or (RolloutSkipForm() if can_manage and active else None),
        "reason_form": RolloutReasonForm(),
        "urls": {name: reverse(f"monitoring:endpoint-rollout-{name}", kwargs=kwargs)
                 for name in ("start", "pause", "resume", "abort", "skip", "policy")},
    }
    return render(request, "monitoring/endpoint_rollout.html", context, status=status)


class _RolloutControl(EndpointPageMixin, ProtectedDetailView):
    """A POST control of the tab; needs ``permission_action`` on the endpoint."""

    permission_action = "deploy"
    http_method_names = ["post"]

    def tab(self, project, name):
        return redirect("monitoring:endpoint-rollout", project=project, name=name)

    def active(self, endpoint) -> Rollout | None:
        return services.active_rollout(endpoint)

    def refused(self, request, error: ValidationError, project, name):
        for message in error.messages:
            messages.error(request, message)
        return self.tab(project, name)


@post_csp
class RolloutStartView(_RolloutControl):
    def post(self, request, project, name):
        endpoint = self.get_object()
        policy, _ = services.effective_policy(endpoint)
        form = RolloutStartForm(request.POST, endpoint=endpoint, policy=policy)
        if form.is_valid():
            try:
                services.rollout_start(actor=request.user, endpoint=endpoint,
                                       canary_version=form.cleaned_data["canary_version"], policy=form.policy)
                if form.cleaned_data["save_as_endpoint_policy"]:
                    services.rollout_policy_save(actor=request.user, endpoint=endpoint, **form.policy)
            except ValidationError as error:
                for field, errors in error.message_dict.items():
                    for message in errors:
                        form.add_error(field if field in form.fields else None, message)
        if form.errors:
            messages.error(request, "The rollout was not started: see the errors below.")
            return rollout_page(request, endpoint, start_form=form, status=400)
        messages.success(request, f"Rollout started: {form.cleaned_data['canary_version']} takes "
                                  f"{form.policy['steps'][0]}% of the traffic.")
        return self.tab(project, name)


class _SimpleControl(_RolloutControl):
    """Pause, resume or abort the endpoint's active rollout: ``act`` calls the service with the
    rollout and the optional reason the form carried."""

    missing = "No rollout is running."
    done = ""

    def act(self, *, actor, rollout, reason: str) -> None:
        raise NotImplementedError

    def post(self, request, project, name):
        endpoint = self.get_object()
        rollout = self.active(endpoint)
        if rollout is None:
            return self.refused(request, ValidationError(self.missing), project, name)
        form = RolloutReasonForm(request.POST)
        try:
            self.act(actor=request.user, rollout=rollout, reason=form.cleaned_data["reason"] if form.is_valid() else "")
        except ValidationError as error:
            return self.refused(request, error, project, name)
        messages.success(request, self.done)
        return self.tab(project, name)


class RolloutPauseView(_SimpleControl):
    done = "Rollout paused: traffic stays where it is."

    def act(self, *, actor, rollout, reason):
        services.rollout_pause(actor=actor, rollout=rollout, reason=reason)


class RolloutResumeView(_SimpleControl):
    missing = "No rollout is paused."
    done = "Rollout resumed: the current step starts over."

    def act(self, *, actor, rollout, reason):
        services.rollout_resume(actor=actor, rollout=rollout)


class RolloutAbortView(_SimpleControl):
    done = "Rollout aborted: the canary is rolled back."

    def act(self, *, actor, rollout, reason):
        services.rollout_abort(actor=actor, rollout=rollout, reason=reason)


@post_csp
class RolloutSkipView(_RolloutControl):
    """Skip the remaining steps and promote: the project's Owners only, with a reason."""

    permission_action = "manage"

    def post(self, request, project, name):
        endpoint = self.get_object()
        rollout = self.active(endpoint)
        if rollout is None:
            return self.refused(request, ValidationError("No rollout is running."), project, name)
        form = RolloutSkipForm(request.POST)
        if form.is_valid():
            try:
                services.rollout_skip_to_promote(actor=request.user, rollout=rollout,
                                                 reason=form.cleaned_data["reason"])
            except ValidationError as error:
                form.add_error(None, error)
        if form.errors:
            messages.error(request, "The canary was not promoted: see the errors below.")
            return rollout_page(request, endpoint, skip_form=form, status=400)
        messages.success(request, "Remaining steps skipped: the canary is promoted.")
        return self.tab(project, name)


@post_csp
class RolloutPolicyView(_RolloutControl):
    """Save the endpoint's own rollout policy (used by its next rollouts)."""

    def post(self, request, project, name):
        endpoint = self.get_object()
        form = RolloutPolicyForm(request.POST, auto_id="policy_%s")
        if form.is_valid():
            try:
                services.rollout_policy_save(actor=request.user, endpoint=endpoint, **form.policy)
            except ValidationError as error:
                for field, errors in error.message_dict.items():
                    for message in errors:
                        form.add_error(field if field in form.fields else None, message)
        if form.errors:
            messages.error(request, "The rollout policy was not saved: see the errors below.")
            return rollout_page(request, endpoint, policy_form=form, status=400)
        messages.success(request, "Rollout policy saved; it applies to the endpoint's next rollouts.")
        return self.tab(project, name)


_ENDPOINT = "endpoints/<slug:project>/<slug:name>/rollout/"

urlpatterns = [
    path(_ENDPOINT, EndpointRolloutView.as_view(), name="endpoint-rollout"),
    path(_ENDPOINT + "data/", EndpointRolloutView.as_view(json=True), name="endpoint-rollout-data"),
    path(_ENDPOINT + "start/", RolloutStartView.as_view(), name="endpoint-rollout-start"),
    path(_ENDPOINT + "pause/", RolloutPauseView.as_view(), name="endpoint-rollout-pause"),
    path(_ENDPOINT + "resume/", RolloutResumeView.as_view(), name="endpoint-rollout-resume"),
    path(_ENDPOINT + "abort/", RolloutAbortView.as_view(), name="endpoint-rollout-abort"),
    path(_ENDPOINT + "skip/", RolloutSkipView.as_view(), name="endpoint-rollout-skip"),
    path(_ENDPOINT + "policy/", RolloutPolicyView.as_view(), name="endpoint-rollout-policy"),
]
