"""The integrity page verifies large trails in a worker and shows the progress."""

from __future__ import annotations

import pytest
from django.test import override_settings
from django.urls import reverse

from audit import sealing
from audit import services as audit
from audit.models import AuditEvent, VerificationRun

pytestmark = pytest.mark.django_db


@override_settings(AUDIT_VERIFY_INLINE_EVENTS=5)
def test_a_large_trail_is_verified_in_the_background_and_audited(client, auditor, django_capture_on_commit_callbacks):
    for i in range(8):
        audit.record(action="endpoint.update", actor_name=f"u{i}")
    sealing.seal_pending()
    client.force_login(auditor)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("audit:integrity"))
    assert response.status_code == 302  # answered at once; the worker runs it
    run = VerificationRun.objects.get()
    assert run.status == "done" and run.summary["ok"] and run.summary["events"] == 8
    page = client.get(reverse("audit:integrity")).content.decode()
    assert f"Background verification {run.pk}" in page and "Verified" in page and "8 events checked" in page
    event = AuditEvent.objects.get(action="audit.verify")
    assert event.actor_name == auditor.username and event.outcome == "success"


@override_settings(AUDIT_VERIFY_INLINE_EVENTS=0)
def test_a_running_verification_shows_its_progress_and_is_not_started_twice(client, auditor):
    audit.record(action="login", actor_name="x")
    sealing.seal_pending()
    running = VerificationRun.objects.create(status="running", actor_name="carol", seals_total=10, seals_done=3)
    client.force_login(auditor)
    client.post(reverse("audit:integrity"))
    assert VerificationRun.objects.count() == 1  # the running one, not a second
    page = client.get(reverse("audit:integrity")).content.decode()
    assert f"Background verification {running.pk}" in page
    assert "3 of 10 seals checked (30 %)" in page and 'http-equiv="refresh"' in page


def test_a_small_trail_is_still_verified_at_once(client, auditor):
    audit.record(action="login", actor_name="x")
    sealing.seal_pending()
    client.force_login(auditor)
    response = client.post(reverse("audit:integrity"))
    assert response.status_code == 200 and 'data-verification="ok"' in response.content.decode()
    assert not VerificationRun.objects.exists()
