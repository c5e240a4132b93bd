"""An endpoint's observed status: what its InferenceService reports, turned into the
``EndpointStatus`` columns (phase, readiness, URL, conditions, traffic, the "why is it not
ready" explanation). Workers write these rows; users never do."""

from __future__ import annotations

from django.utils import timezone

from endpoints import status as status_reading
from endpoints.cluster import ClusterError
from endpoints.models import Endpoint, EndpointStatus
from endpoints.services import notifications


def observe_live(live: dict | None, *, stopped_desired: bool):
    """What an InferenceService (None: missing) says about the endpoint (``endpoints.status``)."""
    return status_reading.observe(live, stopped_desired=stopped_desired)


def status_fields(observed, *, deploying: bool = False) -> dict:
    """EndpointStatus columns from an observation. Right after an apply the controller has
    not reacted yet, so a Ready reading of the previous spec counts as Deploying."""
    phase = observed.phase
    if deploying and phase in (EndpointStatus.Phase.READY, EndpointStatus.Phase.PENDING):
        phase = EndpointStatus.Phase.DEPLOYING
    return {
        "phase": phase, "ready": observed.ready, "url": observed.url, "address_url": observed.address_url,
        "conditions": observed.conditions, "traffic": observed.traffic, "model_status": observed.model_status,
        "observed_runtime": observed.runtime,
    }


# The columns a reconcile pass compares and writes back when the reading changed.
STATUS_COLUMNS = ("phase", "ready", "url", "address_url", "conditions", "traffic", "model_status",
                  "observed_runtime", "explanation")


def endpoint_sync_status(*, endpoint_id: int) -> str | None:
    """Read one endpoint's InferenceService and record what it reports. Returns the phase."""
    endpoint = Endpoint.objects.select_related("project", "project__cluster", "status").filter(pk=endpoint_id).first()
    if endpoint is None or endpoint.state == Endpoint.State.DELETING:
        return None
    namespace = endpoint.project.namespace
    try:
        client = endpoint.project.cluster.client()
        live = client.get("InferenceService", namespace, endpoint.name)
        explanation: list[str] = []
        if live is None or not observe_live(live, stopped_desired=False).ready:
            # Events and pods only for an endpoint that is not ready: the "why" of the page.
            explanation = status_reading.explain(live, client.events_for(namespace, endpoint.name),
                                                 client.pods_for(namespace, endpoint.name))
    except ClusterError as exc:
        EndpointStatus.objects.filter(pk=endpoint.pk).update(
            phase=EndpointStatus.Phase.UNKNOWN, ready=False, last_error=f"cluster unreachable: {exc}"[:2000],
            explanation=[f"The cluster could not be read: {exc}"])
        return EndpointStatus.Phase.UNKNOWN
    phase = _record_observation(endpoint, live, timezone.now())
    if phase == EndpointStatus.Phase.FAILED and endpoint.status.last_error and not explanation:
        explanation = [endpoint.status.last_error]
    EndpointStatus.objects.filter(pk=endpoint.pk).update(explanation=explanation)
    return phase


def observation_fields(endpoint: Endpoint, live: dict | None) -> dict:
    """The status columns a listed InferenceService gives the endpoint (its ``status`` row
    loaded): the reading itself, then what the console knows better — a refused latest
    generation is Failed, an endpoint never applied and missing is Pending."""
    status = endpoint.status
    observed = observe_live(live, stopped_desired=endpoint.state == Endpoint.State.STOPPED)
    fields = status_fields(observed)
    if observed.ready or observed.phase == EndpointStatus.Phase.STOPPED:
        fields["explanation"] = []
    elif not status.explanation or live is None or fields["phase"] != status.phase:
        # The pass reads only the list: conditions and model status. The per-endpoint sync
        # adds events and pods; keep its richer explanation while the phase is unchanged (a
        # new phase, e.g. a re-created object that now fails, makes the old one stale).
        fields["explanation"] = status_reading.explain(live)
    else:
        fields["explanation"] = status.explanation
    if status.last_reconcile_result == "failed" and status.applied_generation < endpoint.generation:
        # The latest generation was refused by the API server: what runs is an older one.
        fields["phase"] = EndpointStatus.Phase.FAILED
    elif live is None and status.applied_generation == 0:
        fields["phase"] = EndpointStatus.Phase.PENDING
    return fields


def _record_observation(endpoint: Endpoint, live: dict | None, now) -> str:
    old_phase = endpoint.status.phase if hasattr(endpoint, "status") else None
    fields = observation_fields(endpoint, live)
    EndpointStatus.objects.filter(pk=endpoint.pk).update(last_synced_at=now, **fields)
    phase_changed(endpoint, old_phase, fields["phase"], fields.get("explanation") or [])
    return fields["phase"]


def phase_changed(endpoint: Endpoint, old: str | None, new: str, explanation: list[str]) -> None:
    """Notify an endpoint turning Failed, or Ready again after Failed (once per generation each)."""
    failed = EndpointStatus.Phase.FAILED
    if new == failed and old != failed:
        reason = "\n".join(explanation) or "KServe reports that the endpoint cannot serve."
        notifications.endpoint_failure_changed(endpoint, failed=True, generation=endpoint.generation, reason=reason)
    elif old == failed and new == EndpointStatus.Phase.READY:
        notifications.endpoint_failure_changed(endpoint, failed=False, generation=endpoint.generation,
                                               reason="The endpoint is Ready again.")
