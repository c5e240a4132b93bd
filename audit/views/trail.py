"""Compliance pages: search the trail, an event with its old/new diff, everything that
happened to one object, streamed exports, the integrity check and the ingest batches."""

from __future__ import annotations

import base64
import json
from datetime import datetime

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import Http404, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from audit import exports, ingest, sealing, selectors, services, verification
from audit.filters import EventFilterForm
from audit.models import IngestBatch, VerificationRun
from audit.verify import verify
from console.ids import parse_id
from console.permissions import is_platform_admin
from console.views.base import platform_admin_required

PAGE_SIZE = 50


TRAIL_ONLY_MESSAGE = ("The audit trail is open to auditors, platform admins and the owners of a project (for "
                      "their projects); you hold none of these roles.")
AUDITOR_ONLY_MESSAGE = "Only auditors and platform admins may open this page."


def _require_trail_access(user) -> None:
    if not selectors.can_view_any(user):
        raise PermissionDenied(TRAIL_ONLY_MESSAGE)


def _require_auditor(user) -> None:
    if not selectors.can_view_all(user):
        raise PermissionDenied(AUDITOR_ONLY_MESSAGE)


# --- keyset pagination (newest first; no COUNT over a large table) ------------------------------

def _encode_cursor(event) -> str:
    raw = f"{event.occurred_at.isoformat()}|{event.pk}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _apply_cursor(qs, cursor: str):
    if not cursor:
        return qs
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        when_text, _, pk_text = raw.partition("|")
        when, pk = datetime.fromisoformat(when_text), int(pk_text)
    except (ValueError, UnicodeDecodeError):
        raise Http404("Invalid page cursor.") from None
    return qs.filter(Q(occurred_at__lt=when) | Q(occurred_at=when, pk__lt=pk))


def _page(qs, cursor: str):
    rows = list(_apply_cursor(qs, cursor)[: PAGE_SIZE + 1])
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    return rows, (_encode_cursor(rows[-1]) if more and rows else "")


def _query_without(request, *names: str) -> str:
    params = request.GET.copy()
    for name in names:
        params.pop(name, None)
    return params.urlencode()


# --- the trail ----------------------------------------------------------------------------------

def _trail_page(request, *, title: str, description: str, form: EventFilterForm, extra: dict | None = None):
    filters = form.filters()
    filters_valid = not (form.is_bound and not form.is_valid())
    if not filters_valid:
        rows, next_cursor = [], ""  # show the form's errors, never "everything" by accident
    else:
        qs = selectors.event_search(user=request.user, filters=filters)
        rows, next_cursor = _page(qs, request.GET.get("cursor", ""))
    query = _query_without(request, "cursor")
    context = {
        "title": title,
        "description": description,
        "filter_form": form,
        "events": rows,
        "next_cursor": next_cursor,
        "is_first_page": not request.GET.get("cursor"),
        "query": query,
        "export_csv_url": f"{reverse('audit:event-export', kwargs={'fmt': 'csv'})}?{query}",
        "export_jsonl_url": f"{reverse('audit:event-export', kwargs={'fmt': 'jsonl'})}?{query}",
        "is_auditor": selectors.can_view_all(request.user),
        "filters_valid": filters_valid,
        **(extra or {}),
    }
    return render(request, "audit/event_list.html", context)


@login_required
def event_list(request):
    """Search the trail: auditors see everything, project owners their projects' events."""
    _require_trail_access(request.user)
    form = EventFilterForm(request.GET or None, user=request.user)
    return _trail_page(request, title="Audit trail", form=form,
                       description="Who did what, to what, when and from where: console actions, grants, "
                                   "Kubernetes API calls, authorization decisions and inference I/O.")


@login_required
def object_history(request, target_type: str, target_id: str):
    """Everything that happened to one object (for an endpoint also its InferenceService's
    Kubernetes API calls and its inference I/O)."""
    _require_trail_access(request.user)
    data = request.GET.copy()
    extra = {}
    endpoint = None
    if target_type == "endpoint" and parse_id(target_id) is not None:
        endpoint = selectors.endpoint_get(user=request.user, pk=parse_id(target_id))
    if endpoint is not None:
        data["endpoint"] = str(endpoint.pk)
        extra["subject"] = f"endpoint {endpoint.label}"
    else:
        data["target_type"], data["target_id"] = target_type, target_id
        extra["subject"] = f"{target_type} {target_id}"
    form = EventFilterForm(data, user=request.user)
    return _trail_page(request, title=f"History of {extra['subject']}", form=form,
                       description="Every recorded event about this object, newest first.", extra=extra)


def _diff(details: dict) -> list[dict]:
    old, new = details.get("old"), details.get("new")
    if not isinstance(old, dict) and not isinstance(new, dict):
        if old is None and new is None:
            return []
        return [{"field": "value", "old": _show(old), "new": _show(new), "changed": old != new}]
    old, new = old if isinstance(old, dict) else {}, new if isinstance(new, dict) else {}
    return [
        {"field": key, "old": _show(old.get(key)), "new": _show(new.get(key)), "changed": old.get(key) != new.get(key)}
        for key in sorted(set(old) | set(new))
    ]


def _show(value) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


@login_required
def event_detail(request, pk: int):
    """One event with its old/new diff, its details and the seal covering it."""
    event = selectors.event_get(user=request.user, pk=pk)
    details = event.details or {}
    rest = {k: v for k, v in details.items() if k not in ("old", "new")}
    return render(request, "audit/event_detail.html", {
        "title": f"{event.action} — event {event.pk}",
        "event": event,
        "diff": _diff(details),
        "other_details": json.dumps(rest, indent=2, sort_keys=True, ensure_ascii=False) if rest else "",
        "seal": sealing.seal_for_event(event.pk),
        "digest_ok": event.compute_digest() == event.digest,
        "history_url": reverse("audit:object-history", kwargs={"target_type": event.target_type,
                                                               "target_id": event.target_id})
        if event.target_type and event.target_id else "",
    })


@login_required
def event_export(request, fmt: str):
    """The filtered trail as CSV or JSON Lines, streamed; the export itself is audited."""
    _require_trail_access(request.user)
    if fmt not in exports.FORMATS:
        raise Http404("Unknown export format.")
    form = EventFilterForm(request.GET or None, user=request.user)
    if form.is_bound and not form.is_valid():
        problems = "; ".join(f"{field}: {' '.join(messages)}" for field, messages in form.errors.items())
        return HttpResponseBadRequest(f"Nothing exported: the filters are invalid ({problems}).",
                                      content_type="text/plain; charset=utf-8")
    return exports.export_response(user=request.user, fmt=fmt, filters=form.filters())


# --- integrity ----------------------------------------------------------------------------------

@login_required
def integrity(request):
    """Run the full verification (POST) and show its result and the previous runs (auditors)."""
    _require_auditor(request.user)
    report = None
    if request.method == "POST" and verification.runs_in_background():
        run = verification.verification_start(actor=request.user)
        messages.info(request, f"Verification {run.pk} runs in the background; this page shows its progress.")
        return redirect("audit:integrity")
    if request.method == "POST":
        report = verify()
        services.record_verification(actor=request.user, report=report)
        if report.ok:
            messages.success(request, "The audit trail verifies: no event or seal was changed.")
        else:
            messages.error(request, f"Verification failed: {len(report.problems)} problem(s).")
    return render(request, "audit/integrity.html", {
        "title": "Integrity",
        "description": "Recomputes every event digest, seal, signature and chain link, including ranges "
                       "pruned to the archive.",
        "report": report,
        "summary": report.summary() if report else None,
        "problems": sorted(report.problems, key=lambda p: p.position)[:50] if report else [],
        "seals": selectors.seal_summary(),
        "history": selectors.verification_history(),
        "run": VerificationRun.objects.order_by("-created_at", "-id").first(),
    })


# --- ingest batches -----------------------------------------------------------------------------

@login_required
def batch_list(request):
    """Ingest batches: failed ones with their error, for auditors (admins may retry)."""
    _require_auditor(request.user)
    status = request.GET.get("status", "")
    status = status if status in IngestBatch.Status.values else ""
    rows = list(selectors.batch_list(status=status)[:100])
    return render(request, "audit/batch_list.html", {
        "title": "Ingest batches",
        "description": "Deliveries from the Kubernetes audit webhook and the KServe payload loggers.",
        "batches": rows, "status": status, "statuses": IngestBatch.Status.choices,
        "counts": selectors.batch_counts(), "can_retry": is_platform_admin(request.user),
    })


@login_required
def batch_detail(request, pk: int):
    _require_auditor(request.user)
    batch = get_object_or_404(IngestBatch.objects.defer("body"), pk=pk)
    return render(request, "audit/batch_detail.html", {
        "title": str(batch), "batch": batch, "can_retry": is_platform_admin(request.user),
    })


@platform_admin_required
@require_POST
def batch_retry(request, pk: int):
    """Queue a failed batch again (platform admins)."""
    batch = get_object_or_404(IngestBatch.objects.defer("body"), pk=pk)
    try:
        ingest.batch_retry(actor=request.user, batch=batch)
    except ValueError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"{batch} was queued again.")
    return redirect("audit:batch-detail", pk=batch.pk)
