"""Forms of automated rollouts: a rollout policy (the endpoint's own, a project's default, or
the one a rollout starts with) and the start form. Field rules are ``endpoints.rollout_policy``'s,
so a form, the API and the service refuse the same nonsense with the same messages."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError

from endpoints import rollout_policy
from endpoints.models import ModelVersion, RolloutPolicy


class RolloutPolicyForm(forms.Form):
    """The policy fields, initialised from a policy dict (``policy``)."""

    steps = forms.CharField(label="Traffic steps (%)", help_text="Increasing percentages, e.g. 10, 25, 50, 100.")
    min_step_minutes = forms.IntegerField(label="Minimum time per step (minutes)", min_value=1)
    min_step_requests = forms.IntegerField(label="Minimum canary requests per step", min_value=1)
    max_error_rate_increase = forms.FloatField(
        label="Error rate: at most this many percentage points above the primary", required=False,
        help_text="Empty: gate off.")
    max_p95_ratio = forms.FloatField(label="p95 latency: at most this multiple of the primary's", required=False,
                                     help_text="Empty: gate off.")
    max_p99_ratio = forms.FloatField(label="p99 latency: at most this multiple of the primary's", required=False,
                                     help_text="Empty: gate off.")
    max_prediction_psi = forms.FloatField(label="Prediction drift: PSI at most", required=False,
                                          help_text="Empty: gate off.")
    max_prediction_js = forms.FloatField(label="Prediction drift: Jensen–Shannon distance at most", required=False,
                                         help_text="Empty: gate off.")
    prediction_baseline = forms.ChoiceField(label="Compare the canary's predictions with",
                                            choices=RolloutPolicy.Baseline.choices)
    fail_on_feature_drift_alert = forms.BooleanField(label="Fail on a feature drift alert on the canary",
                                                     required=False)
    max_wait_minutes = forms.IntegerField(label="Maximum wait for enough data per step (minutes)", min_value=1)
    on_timeout = forms.ChoiceField(label="When the maximum wait passes", choices=RolloutPolicy.OnTimeout.choices)
    on_failure = forms.ChoiceField(label="On failure", choices=RolloutPolicy.OnFailure.choices)
    on_success = forms.ChoiceField(label="On success", choices=RolloutPolicy.OnSuccess.choices)

    def __init__(self, *args, policy: dict | None = None, **kwargs):
        if policy is not None and "initial" not in kwargs:
            kwargs["initial"] = {**policy, "steps": ", ".join(str(s) for s in policy.get("steps") or [])}
        super().__init__(*args, **kwargs)

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        try:
            self.policy = rollout_policy.validate({name: cleaned.get(name) for name in rollout_policy.FIELDS})
        except ValidationError as exc:
            for field, messages in exc.message_dict.items():
                for message in messages:
                    self.add_error(None if field == "__all__" else field, message)
        return cleaned


class RolloutStartForm(RolloutPolicyForm):
    """Start a rollout: the version to roll out (of the endpoint's model, not archived, not
    the one serving) and the policy for this rollout, prefilled with the endpoint's."""

    canary_version = forms.ModelChoiceField(queryset=ModelVersion.objects.none(), label="Version to roll out",
                                            empty_label=None)
    save_as_endpoint_policy = forms.BooleanField(label="Also save this as the endpoint's rollout policy",
                                                 required=False)

    field_order = ["canary_version"]

    def __init__(self, *args, endpoint, **kwargs):
        super().__init__(*args, **kwargs)
        versions = (ModelVersion.objects.filter(model_id=endpoint.model_version.model_id, archived_at__isnull=True)
                    .exclude(pk=endpoint.model_version_id).select_related("model").order_by("-version"))
        self.fields["canary_version"].queryset = versions
        self.fields["canary_version"].label_from_instance = lambda v: f"{v.model.name} v{v.version}"
        if endpoint.canary_version_id:
            self.fields["canary_version"].initial = endpoint.canary_version_id


class RolloutReasonForm(forms.Form):
    reason = forms.CharField(max_length=300, required=False, label="Reason")


class RolloutSkipForm(forms.Form):
    reason = forms.CharField(max_length=300, label="Why skip the remaining steps?",
                             help_text="Recorded in the audit trail.")
