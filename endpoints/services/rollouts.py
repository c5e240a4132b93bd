"""Automated canary rollouts (progressive delivery): policies, starting a rollout, a person's
controls (pause, resume, abort, skip to promotion) and the two halves of every automatic
decision — ``rollout_decide`` writes the decision with the gate values that made it, and
``rollout_apply`` carries it out as a new generation of the endpoint through the ordinary
service path (``endpoint_update`` / ``endpoint_promote_canary``: planned revision, audit event,
reconcile after commit).

Why two halves: a worker lost after deciding leaves the decision in the database with
``applied_at`` empty; the next evaluation finds it and applies it instead of deciding again, and
applying checks the rollout is still at the step the decision was made at. A step is thus
never skipped and never repeated (``tests/endpoints/test_rollout_worker.py``).

The gates themselves are measured by ``monitoring.rollouts`` (it reads the monitoring rollups,
which sit above this app); it hands a ``Verdict`` to ``rollout_decide``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from audit import services as audit
from endpoints import cluster_rules, rollout_policy
from endpoints.models import (
    Endpoint,
    ModelVersion,
    Notification,
    Project,
    Rollout,
    RolloutDecision,
    RolloutPolicy,
)
from endpoints.rollout_policy import Verdict

STANDARD_REFUSAL = ("Automated rollouts need Knative mode: KServe splits traffic in Standard mode only from "
                    "0.20 with spec.canary[] and Gateway API, which the console does not render.")
SYSTEM = "rollout controller"


def _label(version: ModelVersion | None) -> str:
    return f"{version.model.name} v{version.version}" if version is not None else ""


# --- policies ------------------------------------------------------------------------------------

def _policy_dict(row: RolloutPolicy) -> dict:
    return {name: getattr(row, name) for name in rollout_policy.FIELDS}


def effective_policy(endpoint: Endpoint) -> tuple[dict, str]:
    """The policy a rollout of ``endpoint`` starts with and where it comes from: the endpoint's
    own, else its project's default, else the built-in defaults."""
    own = RolloutPolicy.objects.filter(endpoint=endpoint).first()
    if own is not None:
        return _policy_dict(own), "endpoint"
    project = RolloutPolicy.objects.filter(project_id=endpoint.project_id).first()
    if project is not None:
        return _policy_dict(project), "project"
    return dict(rollout_policy.DEFAULTS), "built-in"


@transaction.atomic
def rollout_policy_save(*, actor, endpoint: Endpoint | None = None, project: Project | None = None,
                        **fields) -> RolloutPolicy:
    """Create or change the rollout policy of an endpoint or (its default) of a project;
    nonsense is refused with field errors and nothing is stored. Audited with old and new."""
    if (endpoint is None) == (project is None):
        raise ValueError("a policy belongs to an endpoint or to a project")
    cleaned = rollout_policy.validate(fields)
    lookup = {"endpoint": endpoint} if endpoint is not None else {"project": project}
    row = RolloutPolicy.objects.select_for_update().filter(**lookup).first()
    old = _policy_dict(row) if row is not None else None
    if row is None:
        row = RolloutPolicy(**lookup)
    for name, value in cleaned.items():
        setattr(row, name, value)
    row.save()
    target = endpoint if endpoint is not None else project
    audit.record(action="rollout_policy.update", actor=actor, target=target,
                 project=endpoint.project if endpoint is not None else project,
                 details={"scope": "endpoint" if endpoint is not None else "project", "old": old, "new": cleaned})
    return row


@transaction.atomic
def rollout_policy_delete(*, actor, endpoint: Endpoint) -> None:
    """Drop an endpoint's own policy: its rollouts use the project's default (or the built-in one)."""
    row = RolloutPolicy.objects.filter(endpoint=endpoint).first()
    if row is None:
        return
    old = _policy_dict(row)
    row.delete()
    audit.record(action="rollout_policy.delete", actor=actor, target=endpoint, project=endpoint.project,
                 details={"scope": "endpoint", "old": old})


# --- reading ---------------------------------------------------------------------------------------

def active_rollout(endpoint: Endpoint) -> Rollout | None:
    return Rollout.objects.filter(endpoint=endpoint, state__in=Rollout.ACTIVE_STATES).first()


def start_refusal(endpoint: Endpoint) -> str | None:
    """Why a rollout of ``endpoint`` cannot start, or None."""
    from endpoints.services.endpoints import cluster_reading

    if endpoint.state == Endpoint.State.DELETING:
        return "The endpoint is being deleted."
    if endpoint.state == Endpoint.State.STOPPED:
        return "The endpoint is stopped: start it first."
    if endpoint.deployment_mode != Endpoint.DeploymentMode.KNATIVE:
        return STANDARD_REFUSAL
    reading = cluster_reading(endpoint.project)
    if reading is not None and not reading.bookkeeping_kept_off_pods:
        # Every step would be a new generation whose annotations reach the pods: each step would
        # roll a new Knative revision instead of moving traffic between the two that exist.
        return ("Automated rollouts are refused on this cluster: every step would create a new revision. "
                + cluster_rules.bookkeeping_note(endpoint.project.cluster.name))
    if active_rollout(endpoint) is not None:
        return "A rollout is already running on this endpoint (pause, resume or abort it)."
    return None


# --- decisions -------------------------------------------------------------------------------------

def _next_sequence(rollout: Rollout) -> int:
    return (rollout.decisions.aggregate(top=Max("sequence"))["top"] or 0) + 1


def _decision(rollout: Rollout, *, kind: str, actor, traffic_percent, reason: str = "", gates=None,
              window=(None, None), now: datetime | None = None, applied: bool = True) -> RolloutDecision:
    now = now or timezone.now()
    return RolloutDecision.objects.create(
        rollout=rollout, sequence=_next_sequence(rollout), kind=kind, step_index=rollout.step_index,
        traffic_percent=traffic_percent, gates=gates or [], reason=reason[:500], window_start=window[0],
        window_end=window[1], actor=actor, actor_name=actor.get_username() if actor else SYSTEM, decided_at=now,
        applied_at=now if applied else None)


def _audit(action: str, *, actor, rollout: Rollout, endpoint: Endpoint, decision: RolloutDecision | None = None,
           **details) -> None:
    body = {"rollout": rollout.pk, "canary": rollout.canary_label, "primary": rollout.primary_label,
            "step": rollout.step_index + 1, "steps": rollout.steps, **details}
    if decision is not None:
        body.update(decision=decision.kind, reason=decision.reason, gates=decision.gates,
                    traffic_percent=decision.traffic_percent)
        failed = next((g for g in decision.gates if g.get("passed") is False), None)
        if failed is not None:  # the gate that decided it, named on the event itself
            body.update(gate=failed["gate"], value=failed.get("value"), threshold=failed.get("threshold"))
        if decision.window_start is not None:
            body.update(window_start=decision.window_start.isoformat(), window_end=decision.window_end.isoformat())
    audit.record(action=action, actor=actor, actor_name=None if actor else SYSTEM, target=endpoint,
                 project=endpoint.project, details=body)


def _locked_rollout(rollout_id: int) -> Rollout:
    return Rollout.objects.select_for_update(of=("self",)).select_related(
        "endpoint", "endpoint__project").get(pk=rollout_id)


@transaction.atomic
def rollout_start(*, actor, endpoint: Endpoint, canary_version: ModelVersion | None = None,
                  policy: dict | None = None) -> Rollout:
    """Start an automated rollout: the canary (``canary_version``, or the one the endpoint has)
    gets the first step's traffic as a new generation, and the periodic evaluation takes over.
    ``policy``: fields overriding the endpoint's effective policy for this rollout only."""
    from endpoints.services.endpoints import _locked, endpoint_update

    endpoint = _locked(endpoint)
    refusal = start_refusal(endpoint)
    if refusal:
        raise ValidationError({"__all__": [refusal]})
    base, _source = effective_policy(endpoint)
    cleaned = rollout_policy.validate({**base, **(policy or {})})
    canary = canary_version or (endpoint.canary_version if endpoint.canary_version_id else None)
    if canary is None:
        raise ValidationError({"canary_version": ["Choose the model version to roll out."]})
    if canary.pk == endpoint.model_version_id:
        raise ValidationError({"canary_version": ["That version already serves all traffic: choose another."]})
    now = timezone.now()
    rollout = Rollout(endpoint=endpoint, primary_version=endpoint.model_version, canary_version=canary,
                      primary_label=_label(endpoint.model_version), canary_label=_label(canary), policy=cleaned,
                      step_index=0, step_started_at=now, started_by=actor,
                      started_by_name=actor.get_username() if actor else SYSTEM, created_at=now)
    try:
        with transaction.atomic():
            rollout.save()
    except IntegrityError as exc:
        raise ValidationError({"__all__": ["A rollout is already running on this endpoint."]}) from exc
    first = cleaned["steps"][0]
    endpoint_update(actor=actor, endpoint=endpoint, by_rollout=True, canary_version=canary,
                    canary_traffic_percent=first,
                    summary=f"rollout started: canary {_label(canary)} at {first}%",
                    audit_extra={"rollout": rollout.pk, "rollout_decision": "start"})
    endpoint.refresh_from_db(fields=["generation"])
    decision = _decision(rollout, kind=RolloutDecision.Kind.START, actor=actor, traffic_percent=first,
                         reason=f"started with policy {rollout_policy.describe(cleaned)}", now=now)
    decision.generation = endpoint.generation
    decision.save(update_fields=["generation"])
    _audit("rollout.start", actor=actor, rollout=rollout, endpoint=endpoint, decision=decision, policy=cleaned)
    return rollout


def _person_decision(rollout_id: int, *, actor, kind: str, reason: str, states) -> tuple[Rollout, RolloutDecision]:
    rollout = _locked_rollout(rollout_id)
    if rollout.state not in states:
        raise ValidationError({"__all__": [f"The rollout is {rollout.get_state_display().lower()}."]})
    if rollout.decisions.filter(applied_at__isnull=True).exists():
        raise ValidationError({"__all__": ["The rollout is applying a decision; try again in a moment."]})
    decision = _decision(rollout, kind=kind, actor=actor, traffic_percent=rollout.endpoint.canary_traffic_percent,
                         reason=reason)
    return rollout, decision


@transaction.atomic
def rollout_pause(*, actor, rollout: Rollout, reason: str = "") -> Rollout:
    """Stop evaluating: traffic stays where it is until the rollout is resumed or aborted."""
    rollout, decision = _person_decision(rollout.pk, actor=actor, kind=RolloutDecision.Kind.PAUSE,
                                         reason=reason or "paused", states=(Rollout.State.RUNNING,))
    rollout.state = Rollout.State.PAUSED
    rollout.paused_reason = (reason or f"paused by {decision.actor_name}")[:300]
    rollout.save(update_fields=["state", "paused_reason"])
    _audit("rollout.pause", actor=actor, rollout=rollout, endpoint=rollout.endpoint, decision=decision)
    return rollout


@transaction.atomic
def rollout_resume(*, actor, rollout: Rollout) -> Rollout:
    """Evaluate again. The current step starts over (its window begins now): what the canary
    did while paused, perhaps under a configuration changed by hand, does not count."""
    rollout = _locked_rollout(rollout.pk)
    endpoint = rollout.endpoint
    if rollout.state == Rollout.State.PAUSED and endpoint.canary_version_id != rollout.canary_version_id:
        raise ValidationError({"__all__": ["The endpoint no longer has this rollout's canary: abort the rollout "
                                           "and start a new one."]})
    rollout, decision = _person_decision(rollout.pk, actor=actor, kind=RolloutDecision.Kind.RESUME,
                                         reason="resumed", states=(Rollout.State.PAUSED,))
    if endpoint.canary_traffic_percent != rollout.current_percent:
        raise ValidationError({"__all__": [
            f"The canary takes {endpoint.canary_traffic_percent}% but the rollout is at step "
            f"{rollout.step_index + 1} ({rollout.current_percent}%): set it back, or abort the rollout."]})
    rollout.state = Rollout.State.RUNNING
    rollout.paused_reason = ""
    rollout.step_started_at = decision.decided_at
    rollout.save(update_fields=["state", "paused_reason", "step_started_at"])
    _audit("rollout.resume", actor=actor, rollout=rollout, endpoint=endpoint, decision=decision)
    return rollout


@transaction.atomic
def rollout_abort(*, actor, rollout: Rollout, reason: str = "") -> Rollout:
    """Roll back now, as the policy's failure action says (to 0% keeping the canary, or removing it)."""
    rollout = _locked_rollout(rollout.pk)
    if rollout.state not in Rollout.ACTIVE_STATES:
        raise ValidationError({"__all__": [f"The rollout is {rollout.get_state_display().lower()}."]})
    if rollout.decisions.filter(applied_at__isnull=True).exists():
        raise ValidationError({"__all__": ["The rollout is applying a decision; try again in a moment."]})
    remove = rollout.policy.get("on_failure") == "remove"
    decision = _decision(rollout, kind=RolloutDecision.Kind.ABORT, actor=actor, traffic_percent=None if remove else 0,
                         reason=reason or f"aborted by {actor.get_username() if actor else SYSTEM}", applied=False)
    return _apply(rollout, decision).rollout


@transaction.atomic
def rollout_skip_to_promote(*, actor, rollout: Rollout, reason: str) -> Rollout:
    """Promote the canary now, skipping the remaining steps (Owners only, with a reason)."""
    if not (reason or "").strip():
        raise ValidationError({"reason": ["Say why the remaining steps are skipped."]})
    rollout = _locked_rollout(rollout.pk)
    if rollout.state not in Rollout.ACTIVE_STATES:
        raise ValidationError({"__all__": [f"The rollout is {rollout.get_state_display().lower()}."]})
    if rollout.decisions.filter(applied_at__isnull=True).exists():
        raise ValidationError({"__all__": ["The rollout is applying a decision; try again in a moment."]})
    if rollout.endpoint.canary_version_id != rollout.canary_version_id:
        raise ValidationError({"__all__": ["The endpoint no longer has this rollout's canary."]})
    decision = _decision(rollout, kind=RolloutDecision.Kind.SKIP, actor=actor, traffic_percent=100,
                         reason=reason.strip(), applied=False)
    return _apply(rollout, decision).rollout


def pause_for_manual_change(*, endpoint: Endpoint, actor, summary: str) -> None:
    """A person changed the endpoint while its rollout runs: pause the rollout, audited (called
    by ``new_generation`` inside the change's transaction)."""
    rollout = Rollout.objects.select_for_update().filter(endpoint_id=endpoint.pk, state=Rollout.State.RUNNING).first()
    if rollout is None:
        return
    reason = f"paused: the endpoint was changed by hand ({summary})"[:300]
    decision = _decision(rollout, kind=RolloutDecision.Kind.PAUSE, actor=actor,
                         traffic_percent=endpoint.canary_traffic_percent, reason=reason)
    rollout.state = Rollout.State.PAUSED
    rollout.paused_reason = reason
    rollout.save(update_fields=["state", "paused_reason"])
    _audit("rollout.pause", actor=actor, rollout=rollout, endpoint=endpoint, decision=decision, manual_change=summary)


# --- the automatic half ----------------------------------------------------------------------------

def running_rollout_ids() -> list[int]:
    return list(Rollout.objects.filter(state=Rollout.State.RUNNING).order_by("pk").values_list("pk", flat=True))


def pending_decision(rollout: Rollout) -> RolloutDecision | None:
    return rollout.decisions.filter(applied_at__isnull=True).first()


def _enqueue_apply(decision: RolloutDecision) -> None:
    from endpoints.tasks import apply_rollout_decision_task

    apply_rollout_decision_task.delay_on_commit(decision_id=decision.pk)


@transaction.atomic
def rollout_decide(*, rollout_id: int, verdict: Verdict | None, now: datetime | None = None) -> RolloutDecision | None:
    """Turn ``verdict`` (the gates over the current step's window) into a decision, or record
    that the rollout waits. A decision still pending from before (its worker was lost) is
    applied instead of deciding again. Returns the decision to apply, or None."""
    now = now or timezone.now()
    rollout = _locked_rollout(rollout_id)
    pending = pending_decision(rollout)
    if pending is not None:
        _enqueue_apply(pending)
        return pending
    if rollout.state != Rollout.State.RUNNING:
        return None
    endpoint = rollout.endpoint
    if endpoint.state == Endpoint.State.DELETING or endpoint.canary_version_id != rollout.canary_version_id:
        reason = ("the endpoint is being deleted" if endpoint.state == Endpoint.State.DELETING
                  else "the canary was promoted or removed by hand")
        decision = _decision(rollout, kind=RolloutDecision.Kind.CANCEL, actor=None,
                             traffic_percent=endpoint.canary_traffic_percent, reason=reason, now=now)
        rollout.state, rollout.finished_at = Rollout.State.CANCELLED, now
        rollout.save(update_fields=["state", "finished_at"])
        _audit("rollout.cancel", actor=None, rollout=rollout, endpoint=endpoint, decision=decision)
        return None
    if verdict is None:
        return None
    policy = rollout.policy
    window = (verdict.window_start, verdict.window_end)
    waited = now - rollout.step_started_at
    rollout.last_evaluation = {"at": now.isoformat(), "outcome": verdict.outcome, "message": verdict.message,
                               "gates": verdict.gates, "step": rollout.step_index + 1}
    rollout.save(update_fields=["last_evaluation"])
    if verdict.outcome == Verdict.WAIT:
        if waited < timedelta(minutes=policy["max_wait_minutes"]):
            return None
        reason = f"timed out after {policy['max_wait_minutes']} min: {verdict.message}"
        if policy["on_timeout"] == "pause":
            decision = _decision(rollout, kind=RolloutDecision.Kind.PAUSE, actor=None,
                                 traffic_percent=rollout.current_percent, reason=reason, gates=verdict.gates,
                                 window=window, now=now)
            rollout.state, rollout.paused_reason = Rollout.State.PAUSED, reason[:300]
            rollout.save(update_fields=["state", "paused_reason"])
            _audit("rollout.pause", actor=None, rollout=rollout, endpoint=endpoint, decision=decision, timed_out=True)
            return None
        kind = RolloutDecision.Kind.REMOVE if policy["on_failure"] == "remove" else RolloutDecision.Kind.ROLLBACK
    elif verdict.outcome == Verdict.FAIL:
        kind = RolloutDecision.Kind.REMOVE if policy["on_failure"] == "remove" else RolloutDecision.Kind.ROLLBACK
        reason = verdict.message
    else:
        last = rollout.step_index + 1 >= len(rollout.steps)
        reason = verdict.message
        if not last:
            kind = RolloutDecision.Kind.ADVANCE
        elif policy["on_success"] == "promote":
            kind = RolloutDecision.Kind.PROMOTE
        else:
            decision = _decision(rollout, kind=RolloutDecision.Kind.HOLD, actor=None,
                                 traffic_percent=rollout.current_percent,
                                 reason="every step passed: holding for a person to promote", gates=verdict.gates,
                                 window=window, now=now)
            rollout.state, rollout.paused_reason = Rollout.State.PAUSED, decision.reason
            rollout.save(update_fields=["state", "paused_reason"])
            _audit("rollout.hold", actor=None, rollout=rollout, endpoint=endpoint, decision=decision)
            return None
    percent = {RolloutDecision.Kind.ADVANCE: (rollout.steps[rollout.step_index + 1]
                                              if rollout.step_index + 1 < len(rollout.steps) else None),
               RolloutDecision.Kind.PROMOTE: 100, RolloutDecision.Kind.ROLLBACK: 0,
               RolloutDecision.Kind.REMOVE: None}[kind]
    decision = _decision(rollout, kind=kind, actor=None, traffic_percent=percent, reason=reason, gates=verdict.gates,
                         window=window, now=now, applied=False)
    _audit("rollout.decide", actor=None, rollout=rollout, endpoint=endpoint, decision=decision)
    _enqueue_apply(decision)
    return decision


@transaction.atomic
def rollout_apply(*, decision_id: int, now: datetime | None = None) -> RolloutDecision | None:
    """Carry out a pending decision as a new generation. Idempotent: an applied decision, or
    one made at a step the rollout has left, changes nothing. ``now``: when the next step
    starts (default: the clock)."""
    decision = RolloutDecision.objects.filter(pk=decision_id).first()
    if decision is None:
        return None
    rollout = _locked_rollout(decision.rollout_id)
    decision = RolloutDecision.objects.select_for_update().get(pk=decision_id)
    if decision.applied_at is not None:
        return decision
    return _apply(rollout, decision, now=now)


def _apply(rollout: Rollout, decision: RolloutDecision, *, now: datetime | None = None) -> RolloutDecision:
    from endpoints.services.endpoints import endpoint_promote_canary, endpoint_update

    endpoint = rollout.endpoint
    now = now or timezone.now()
    automatic = decision.actor_id is None and decision.actor_name == SYSTEM
    if (decision.step_index != rollout.step_index or rollout.state not in Rollout.ACTIVE_STATES
            or (automatic and rollout.state != Rollout.State.RUNNING)):
        # Overtaken (a person paused or acted meanwhile): keep the decision on record, change nothing.
        decision.applied_at = now
        decision.reason = (decision.reason + " — not applied: the rollout was paused or had moved on")[:500]
        decision.save(update_fields=["applied_at", "reason"])
        return decision
    Kind = RolloutDecision.Kind
    extra = {"rollout": rollout.pk, "rollout_decision": decision.kind, "rollout_reason": decision.reason,
             "gates": decision.gates}
    actor = decision.actor
    if decision.kind == Kind.ADVANCE:
        endpoint_update(actor=actor, endpoint=endpoint, by_rollout=True, canary_traffic_percent=decision.traffic_percent,
                        summary=f"rollout step {rollout.step_index + 2}: canary at {decision.traffic_percent}%",
                        audit_extra=extra)
        rollout.step_index += 1
        rollout.step_started_at = now
    elif decision.kind in (Kind.PROMOTE, Kind.SKIP):
        endpoint_promote_canary(actor=actor, endpoint=endpoint, by_rollout=True, audit_extra=extra)
        rollout.state, rollout.finished_at = Rollout.State.PROMOTED, now
    elif decision.kind in (Kind.ROLLBACK, Kind.REMOVE, Kind.ABORT):
        if decision.traffic_percent is None:
            endpoint_update(actor=actor, endpoint=endpoint, by_rollout=True, canary_version=None,
                            canary_traffic_percent=None, summary=f"rollout {decision.kind}: canary removed",
                            audit_extra=extra)
        else:
            endpoint_update(actor=actor, endpoint=endpoint, by_rollout=True, canary_traffic_percent=0,
                            summary=f"rollout {decision.kind}: canary at 0%, kept for inspection", audit_extra=extra)
        rollout.state = Rollout.State.ABORTED if decision.kind == Kind.ABORT else Rollout.State.ROLLED_BACK
        rollout.finished_at = now
    endpoint.refresh_from_db(fields=["generation"])
    decision.generation = endpoint.generation
    decision.applied_at = now
    decision.save(update_fields=["generation", "applied_at"])
    rollout.paused_reason = ""
    rollout.save(update_fields=["step_index", "step_started_at", "state", "finished_at", "paused_reason"])
    action = {Kind.ADVANCE: "rollout.step", Kind.PROMOTE: "rollout.promote", Kind.SKIP: "rollout.skip",
              Kind.ROLLBACK: "rollout.rollback", Kind.REMOVE: "rollout.rollback", Kind.ABORT: "rollout.abort"}
    _audit(action[decision.kind], actor=actor, rollout=rollout, endpoint=endpoint, decision=decision,
           generation=endpoint.generation)
    if decision.kind != Kind.ADVANCE:
        _notify(rollout, decision)
    return decision


def _notify(rollout: Rollout, decision: RolloutDecision) -> None:
    from endpoints.services.notifications import notify

    endpoint = rollout.endpoint
    promoted = rollout.state == Rollout.State.PROMOTED
    verb = "promoted" if promoted else "rolled back"
    where = f"{endpoint.project.name}/{endpoint.name}"
    subject = f"Rollout {verb}: {rollout.canary_label} on {where}"
    lines = [f"{rollout.canary_label} was {verb} on {where} at step {decision.step_index + 1} of "
             f"{len(rollout.steps)} by {decision.actor_name}.", f"Reason: {decision.reason}"]
    for gate in decision.gates:
        if gate.get("value") is not None:
            lines.append(f"- {gate['label']}: {gate['value']} (threshold {gate.get('threshold')}) "
                         f"{'passed' if gate.get('passed') else 'FAILED' if gate.get('passed') is False else ''}")
    notify(key=f"rollout:{rollout.pk}:{rollout.state}", event=Notification.Event.ROLLOUT, state=rollout.state,
           project=endpoint.project, subject=subject, body="\n".join(lines),
           payload={"endpoint": where, "rollout": rollout.pk, "decision": decision.kind, "gates": decision.gates,
                    "canary": rollout.canary_label, "generation": decision.generation})
