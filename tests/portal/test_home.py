"""The home page fits who is signed in: a data scientist sees their endpoints and what needs
attention, a platform admin pending expiries, grant changes and reconciler alerts, an auditor
the health of the trail — and nobody sees endpoints or grants they may not see."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse
from django.utils import timezone

from audit import sealing
from audit import services as audit_services
from audit.models import AuditEvent, AuditSeal, IngestBatch
from audit.verify import verify
from console.access import grants
from endpoints.models import Cluster, ReconcileAlert
from monitoring.models import DriftWindow
from tests.console.access_factories import endpoint_in, project_with_model
from tests.endpoints.endpoint_factories import EndpointFactory
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(alice, bob):
    """fraud (alice's team deploys, bob views; bob may call iris for 3 more days) and a secret
    project nobody but admins sees, each with a Failed endpoint and a drifting one."""
    fraud, _ = project_with_model("fraud")
    secret, _ = project_with_model("secret")
    iris = endpoint_in(fraud, "iris")
    broken = endpoint_in(fraud, "broken")
    broken.status.phase = "Failed"
    broken.status.explanation = ["Model status: BlockedByFailedLoad — ModelLoadFailed: bucket missing"]
    broken.status.save()
    hidden = endpoint_in(secret, "hidden-scorer")
    hidden_broken = endpoint_in(secret, "hidden-broken")
    hidden_broken.status.phase = "Degraded"
    hidden_broken.status.save()
    now = timezone.now()
    for endpoint in (iris, hidden):
        DriftWindow.objects.create(endpoint=endpoint, model_version=endpoint.model_version, start=now - timedelta(hours=1),
                                   end=now, rows=900, status="alert", max_psi=0.61, top_feature="petal_length",
                                   psi_warning=0.1, psi_alert=0.25)
    team = Group.objects.create(name="data-science")
    team.user_set.add(alice)
    grants.grant_create(actor=None, role="deployer", target=fraud, group=team, reason="team")
    grants.grant_create(actor=None, role="viewer", target=fraud, user=bob, reason="review")
    grants.grant_create(actor=None, role="caller", target=iris, user=bob, reason="trial",
                        expires_at=now + timedelta(days=3))
    grants.grant_create(actor=None, role="owner", target=secret, user=_other("trent"),
                        reason="secret team", expires_at=now + timedelta(days=2))
    return {"fraud": fraud, "secret": secret, "iris": iris, "hidden": hidden}


def _other(name):
    return UserFactory(username=name)


def _home(client, user):
    client.force_login(user)
    response = client.get(reverse("home"))
    assert response.status_code == 200
    return response.content.decode()


def test_data_scientist_sees_their_endpoints_and_what_needs_attention(client, world, alice):
    body = _home(client, alice)
    assert "Your endpoints" in body
    assert "fraud/broken" in body and "BlockedByFailedLoad" in body  # failed, with its reason
    assert reverse("monitoring:endpoint-drift", kwargs={"project": "fraud", "name": "iris"}) in body
    window = DriftWindow.objects.get(endpoint__name="iris")
    assert f"(window {window.start:%Y-%m-%d %H:%M}–{window.end:%H:%M} UTC)" in body
    assert reverse("endpoints:endpoint-detail", kwargs={"project": "fraud", "name": "iris"}) in body
    assert "Deploy a model" in body  # alice's team may deploy in fraud
    assert "Your access that ends soon" not in body  # her team's grant never expires
    assert "Audit trail health" not in body and "Recent grant changes" not in body


def test_data_scientist_never_sees_another_projects_endpoints_or_grants(client, world, alice):
    body = _home(client, alice)
    for secret in ("hidden-scorer", "hidden-broken", "secret/", "trent"):
        assert secret not in body


def test_viewer_sees_the_grant_that_ends_in_three_days(client, world, bob):
    body = _home(client, bob)
    assert "Your access that ends soon" in body
    iris_url = reverse("endpoints:endpoint-detail", kwargs={"project": "fraud", "name": "iris"})
    assert re.search(rf'Caller on\s*<a href="{iris_url}">endpoint fraud/iris</a>', body)
    assert "ends in 2\xa0days, 23\xa0hours" in body
    assert "hidden-scorer" not in body and "secret" not in body
    assert "Deploy a model" not in body  # a viewer may not deploy


def test_outsider_is_told_why_the_page_is_empty_and_sees_nothing_of_others(client, world, outsider):
    body = _home(client, outsider)
    assert "You have no access to any project yet" in body
    for other in ("fraud/", "iris", "broken", "hidden-scorer", "hidden-broken", "trial", "Caller on", "Owner on", "trent", "bob"):
        assert other not in body, other
    assert "Nothing needs attention" in body


def test_a_drift_window_still_open_is_not_shown_as_ending_in_the_future(client, world, alice):
    window = DriftWindow.objects.get(endpoint__name="iris")
    DriftWindow.objects.filter(pk=window.pk).update(start=window.end - timedelta(minutes=20),
                                                    end=window.end + timedelta(minutes=40))
    window.refresh_from_db()
    body = _home(client, alice)
    assert f"(window in progress since {window.start:%Y-%m-%d %H:%M} UTC)" in body


def test_platform_admin_sees_expiries_grant_changes_alerts_and_every_endpoint(client, world, admin_user):
    cluster = Cluster.objects.create(name="prod", api_url="http://127.0.0.1:9", connection="url")
    ReconcileAlert.objects.create(cluster=cluster, kind="deletion_cap", message="12 orphans found")
    old = grants.grant_create(actor=None, role="viewer", target=world["secret"], user=_other("vic"), reason="x")
    grants.grant_revoke(actor=admin_user, grant=old, reason="left the team")
    body = _home(client, admin_user)
    assert "Endpoints (every project)" in body and "hidden-scorer" in body
    assert "Grants ending within 7 days" in body
    assert "Caller on endpoint fraud/iris to bob" in body and "Owner on project secret to trent" in body
    assert "Revoked" in body and "of vic" in body
    assert "12 orphans found" in body
    assert "Audit trail health" in body  # admins read the trail too


def test_auditor_sees_seal_backlog_last_verification_and_failed_batches(client, world, auditor):
    sealing.seal_pending()
    audit_services.record_verification(actor=auditor, report=verify())
    grants.grant_create(actor=None, role="viewer", target=world["fraud"], user=_other("late"), reason="after seal")
    IngestBatch.objects.create(kind="kubernetes", status="failed", body=b"{}", body_size=2, body_sha256="0" * 64,
                               error="ValueError: not an audit event list", attempts=3, project_name="fraud")
    body = _home(client, auditor)
    assert "Audit trail health" in body
    assert "Newest seal" in body and "#1" in body
    waiting = AuditEvent.objects.filter(id__gt=AuditSeal.objects.get().last_event_id).count()
    assert waiting >= 2  # at least the verification and the late grant wait for the sealer
    assert waiting == verify().unsealed
    assert f"Waiting for the sealer</dt><dd>{waiting} events" in body
    assert "Verified" in body and "by carol" in body
    assert "ValueError: not an audit event list" in body
    assert reverse("audit:batch-list") + "?status=failed" in body
    # An auditor holds no grant: no endpoint list, no platform section, nothing of the projects.
    assert "Your endpoints" not in body and "Grants ending" not in body and "hidden-scorer" not in body


def test_auditor_home_says_when_nothing_is_sealed_or_verified_yet(client, auditor):
    body = _home(client, auditor)
    assert "Nothing is sealed yet" in body
    assert "The trail has never been verified" in body
    assert "None: every delivery" in body


def test_user_with_grants_but_no_endpoints_is_invited_to_deploy(client, alice):
    project, _ = project_with_model("empty")
    grants.grant_create(actor=None, role="deployer", target=project, user=alice, reason="new project")
    body = _home(client, alice)
    assert "No endpoints yet" in body and reverse("endpoints:endpoint-create") in body


def test_viewer_without_endpoints_is_told_deploying_needs_a_role(client, bob):
    project, _ = project_with_model("empty")
    grants.grant_create(actor=None, role="viewer", target=project, user=bob, reason="look")
    body = _home(client, bob)
    assert "No endpoints yet" in body and "needs the Deployer role" in body
    assert reverse("endpoints:endpoint-create") not in body


@pytest.mark.parametrize(("persona", "budget"), [("admin_user", 22), ("alice", 14)])
def test_home_query_count_does_not_grow_with_endpoints(client, world, persona, budget, request,
                                                       django_assert_max_num_queries):
    user = request.getfixturevalue(persona)
    client.force_login(user)
    client.get(reverse("home"))  # warm caches (content types, permissions)
    for n in range(40):
        EndpointFactory(project=world["fraud"], name=f"bulk-{n}", status={"phase": "Failed" if n % 2 else "Ready"})
    with django_assert_max_num_queries(budget):  # 21 and 12 today (admins: +2 for the ingest buffer card)
        response = client.get(reverse("home"))
    body = response.content.decode()
    expected = 42 if persona == "alice" else 44  # fraud's 2 + 40 (admins: secret's 2 too)
    assert f"All {expected} endpoints" in body


def test_auditor_home_caps_the_unsealed_count_on_a_trail_nobody_sealed(client, world, auditor, monkeypatch):
    from console.portal import home

    monkeypatch.setattr(home, "UNSEALED_LIMIT", 3)
    for n in range(5):
        audit_services.record(action="login", actor_name=f"u{n}")
    body = _home(client, auditor)
    assert "seals the more than 3 events recorded so far" in body
    sealing.seal_pending()
    for n in range(4):
        audit_services.record(action="login", actor_name=f"v{n}")
    assert "Waiting for the sealer</dt><dd>more than 3 events" in _home(client, auditor)
