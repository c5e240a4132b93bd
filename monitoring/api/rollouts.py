"""``/api/v1/`` automated rollouts: an endpoint's rollouts with their decisions (and starting
one), the controls of its active rollout, and rollout policies (an endpoint's own, a project's
default). Objects are found through the framework's scoped base (404 when invisible); starting,
pausing, resuming, aborting and an endpoint's policy need ``deploy`` on the endpoint, skipping
to promotion ``manage`` (the project's Owners), a project's default policy ``manage`` on the
project. Service refusals answer 400 with the field's message."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response

from console.api.viewsets import ProtectedViewSetMixin
from endpoints import rollout_policy
from endpoints.models import ModelVersion, Project, RolloutPolicy
from endpoints.selectors import endpoint_queryset
from endpoints.services import rollouts as services
from monitoring.rollouts import rollout_data


class RolloutPolicySerializer(serializers.Serializer):
    """A rollout policy; fields left out keep their current (or default) value; null switches a gate off."""

    steps = serializers.ListField(child=serializers.IntegerField(), required=False)
    min_step_minutes = serializers.IntegerField(required=False)
    min_step_requests = serializers.IntegerField(required=False)
    max_error_rate_increase = serializers.FloatField(required=False, allow_null=True)
    max_p95_ratio = serializers.FloatField(required=False, allow_null=True)
    max_p99_ratio = serializers.FloatField(required=False, allow_null=True)
    max_prediction_psi = serializers.FloatField(required=False, allow_null=True)
    max_prediction_js = serializers.FloatField(required=False, allow_null=True)
    prediction_baseline = serializers.ChoiceField(choices=RolloutPolicy.Baseline.choices, required=False)
    fail_on_feature_drift_alert = serializers.BooleanField(required=False)
    max_wait_minutes = serializers.IntegerField(required=False)
    on_failure = serializers.ChoiceField(choices=RolloutPolicy.OnFailure.choices, required=False)
    on_success = serializers.ChoiceField(choices=RolloutPolicy.OnSuccess.choices, required=False)
    on_timeout = serializers.ChoiceField(choices=RolloutPolicy.OnTimeout.choices, required=False)


class RolloutStartSerializer(serializers.Serializer):
    canary_version = serializers.PrimaryKeyRelatedField(queryset=ModelVersion.objects.all())
    policy = RolloutPolicySerializer(required=False)


class ReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=300, required=False, allow_blank=True)


def _decision(decision) -> dict:
    return {"sequence": decision.sequence, "kind": decision.kind, "step": decision.step_index + 1,
            "traffic_percent": decision.traffic_percent, "reason": decision.reason, "gates": decision.gates,
            "by": decision.actor_name, "generation": decision.generation, "decided_at": decision.decided_at,
            "applied_at": decision.applied_at, "window_start": decision.window_start,
            "window_end": decision.window_end}


def _rollout(rollout, decisions) -> dict:
    return {"id": rollout.pk, "state": rollout.state, "canary": rollout.canary_label, "primary": rollout.primary_label,
            "canary_version": rollout.canary_version_id, "primary_version": rollout.primary_version_id,
            "policy": rollout.policy, "step": rollout.step_index + 1, "traffic_percent": rollout.current_percent,
            "step_started_at": rollout.step_started_at, "paused_reason": rollout.paused_reason,
            "last_evaluation": rollout.last_evaluation, "started_by": rollout.started_by_name,
            "created_at": rollout.created_at, "finished_at": rollout.finished_at,
            "decisions": [_decision(d) for d in decisions]}


ROLLOUT_LIST = inline_serializer("RolloutList", {"rollouts": serializers.ListField(child=serializers.DictField())})
ROLLOUT = inline_serializer("Rollout", {"id": serializers.IntegerField(), "state": serializers.CharField()})


class _EndpointView(ProtectedViewSetMixin, GenericAPIView):
    queryset = endpoint_queryset()


class EndpointRolloutsView(_EndpointView):
    """The endpoint's rollouts, newest first, each with its decisions and gate values; POST starts one."""

    @extend_schema(summary="Rollouts of an endpoint", responses=ROLLOUT_LIST)
    def get(self, request, pk: int):
        data = rollout_data(self.get_object())
        return Response({"rollouts": [_rollout(r, d) for r, d in data["rollouts"]]})

    @extend_schema(summary="Start an automated rollout", request=RolloutStartSerializer, responses={201: ROLLOUT})
    def post(self, request, pk: int):
        endpoint = self.get_object()
        serializer = RolloutStartSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        version = serializer.validated_data["canary_version"]
        if version.model_id != endpoint.model_version.model_id:
            # Another model's (perhaps another tenant's) version "does not exist" here.
            raise serializers.ValidationError({"canary_version": ["No such version of the endpoint's model."]})
        rollout = services.rollout_start(actor=request.user, endpoint=endpoint, canary_version=version,
                                         policy=dict(serializer.validated_data.get("policy") or {}))
        return Response(_rollout(rollout, list(rollout.decisions.all())), status=status.HTTP_201_CREATED)


class _ControlView(_EndpointView):
    control = ""

    def _active(self, endpoint):
        rollout = services.active_rollout(endpoint)
        if rollout is None:
            raise serializers.ValidationError({"non_field_errors": ["No rollout is running on this endpoint."]})
        return rollout

    @extend_schema(request=ReasonSerializer, responses=ROLLOUT)
    def post(self, request, pk: int):
        endpoint = self.get_object()
        rollout = self._active(endpoint)
        serializer = ReasonSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        reason = serializer.validated_data.get("reason", "")
        if self.control == "pause":
            rollout = services.rollout_pause(actor=request.user, rollout=rollout, reason=reason)
        elif self.control == "resume":
            rollout = services.rollout_resume(actor=request.user, rollout=rollout)
        elif self.control == "abort":
            rollout = services.rollout_abort(actor=request.user, rollout=rollout, reason=reason)
        else:
            rollout = services.rollout_skip_to_promote(actor=request.user, rollout=rollout, reason=reason)
        return Response(_rollout(rollout, list(rollout.decisions.all())))


class RolloutPauseView(_ControlView):
    """Pause the endpoint's running rollout (traffic stays)."""

    control = "pause"


class RolloutResumeView(_ControlView):
    """Resume the endpoint's paused rollout (the current step starts over)."""

    control = "resume"


class RolloutAbortView(_ControlView):
    """Roll the canary back now (the policy's failure action)."""

    control = "abort"


class RolloutSkipView(_ControlView):
    """Promote now, skipping the remaining steps: Owners only, with a reason."""

    control = "skip"
    write_action = "manage"


def _policy_response(policy: dict, source: str) -> Response:
    return Response({"source": source, "policy": policy, "summary": rollout_policy.describe(policy)})


class EndpointRolloutPolicyView(_EndpointView):
    """The policy the endpoint's next rollout starts with (``source``: endpoint, project or
    built-in). PUT saves the endpoint's own (missing fields: the current effective values);
    DELETE drops it (back to the project's default)."""

    @extend_schema(summary="Rollout policy of an endpoint", responses=RolloutPolicySerializer)
    def get(self, request, pk: int):
        return _policy_response(*services.effective_policy(self.get_object()))

    @extend_schema(summary="Set the endpoint's rollout policy", request=RolloutPolicySerializer,
                   responses=RolloutPolicySerializer)
    def put(self, request, pk: int):
        endpoint = self.get_object()
        serializer = RolloutPolicySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        current, _ = services.effective_policy(endpoint)
        services.rollout_policy_save(actor=request.user, endpoint=endpoint,
                                     **{**current, **serializer.validated_data})
        return _policy_response(*services.effective_policy(endpoint))

    @extend_schema(summary="Drop the endpoint's own rollout policy", responses={204: None})
    def delete(self, request, pk: int):
        services.rollout_policy_delete(actor=request.user, endpoint=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class ProjectRolloutPolicyView(ProtectedViewSetMixin, GenericAPIView):
    """A project's default rollout policy (its endpoints without one of their own use it);
    changing it needs ``manage`` on the project (its Owners)."""

    queryset = Project.objects.all()
    write_action = "manage"

    @extend_schema(summary="Default rollout policy of a project", responses=RolloutPolicySerializer)
    def get(self, request, pk: int):
        project = self.get_object()
        row = RolloutPolicy.objects.filter(project=project).first()
        if row is None:
            return _policy_response(dict(rollout_policy.DEFAULTS), "built-in")
        return _policy_response({name: getattr(row, name) for name in rollout_policy.FIELDS}, "project")

    @extend_schema(summary="Set a project's default rollout policy", request=RolloutPolicySerializer,
                   responses=RolloutPolicySerializer)
    def put(self, request, pk: int):
        project = self.get_object()
        serializer = RolloutPolicySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        row = services.rollout_policy_save(actor=request.user, project=project, **serializer.validated_data)
        return _policy_response({name: getattr(row, name) for name in rollout_policy.FIELDS}, "project")
