"""The access rules of the endpoints app's unprotected models (``endpoints/access_rules.py``):
rows that belong to a protected object follow it, the platform catalog is read by everyone
signed in and changed by platform admins only, reconciler alerts are for platform admins."""

from __future__ import annotations

import pytest

from console.access import grants
from console.permissions import restrict
from endpoints.models import (
    Cluster,
    EndpointStatus,
    HardwareProfile,
    ModelVersion,
    ProjectQuota,
    ReconcileAlert,
    Revision,
    ServingRuntime,
)
from tests.console.access_factories import endpoint_in, project_with_model
from tests.endpoints.endpoint_factories import HardwareProfileFactory, ModelVersionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def tenants():
    fraud, fraud_model = project_with_model("fraud")
    churn, churn_model = project_with_model("churn")
    return fraud, fraud_model, churn, churn_model


def test_versions_follow_their_model(alice, outsider, tenants):
    fraud, fraud_model, _churn, churn_model = tenants
    mine, theirs = ModelVersionFactory(model=fraud_model), ModelVersionFactory(model=churn_model)
    grants.grant_create(actor=None, role="viewer", target=fraud, user=alice, reason="team")
    assert list(restrict(ModelVersion.objects.all(), alice)) == [mine]
    assert list(restrict(ModelVersion.objects.all(), alice, "deploy")) == []
    assert not restrict(ModelVersion.objects.filter(pk=theirs.pk), alice).exists()
    assert not restrict(ModelVersion.objects.all(), outsider).exists()


def test_revisions_status_and_quotas_follow_their_endpoint_or_project(alice, tenants):
    fraud, _, churn, _ = tenants
    mine, theirs = endpoint_in(fraud, "scorer"), endpoint_in(churn, "churner")
    Revision.objects.create(endpoint=mine, generation=1, spec={}, manifest={})
    Revision.objects.create(endpoint=theirs, generation=1, spec={}, manifest={})
    profile = HardwareProfileFactory()
    ProjectQuota.objects.create(project=fraud, hardware_profile=profile, max_accelerators=4)
    ProjectQuota.objects.create(project=churn, hardware_profile=profile, max_accelerators=4)
    grants.grant_create(actor=None, role="viewer", target=fraud, user=alice, reason="team")
    assert [r.endpoint for r in restrict(Revision.objects.all(), alice)] == [mine]
    assert [s.endpoint for s in restrict(EndpointStatus.objects.all(), alice)] == [mine]
    assert [q.project for q in restrict(ProjectQuota.objects.all(), alice)] == [fraud]


@pytest.mark.parametrize("model", [Cluster, HardwareProfile, ServingRuntime])
def test_the_catalog_is_read_by_everyone_signed_in_and_changed_by_admins(model, outsider, admin_user, tenants):
    HardwareProfileFactory()
    ServingRuntime.objects.create(name="custom", container_image="img", supported_formats=[{"name": "onnx"}])
    count = model.objects.count()
    assert count
    assert restrict(model.objects.all(), outsider).count() == count
    assert not restrict(model.objects.all(), outsider, "change").exists()
    assert restrict(model.objects.all(), admin_user, "change").count() == count


def test_reconciler_alerts_are_for_platform_admins_only(alice, admin_user, tenants):
    fraud = tenants[0]
    grants.grant_create(actor=None, role="owner", target=fraud, user=alice, reason="owner")
    ReconcileAlert.objects.create(cluster=fraud.cluster, kind="deletion_cap", message="12 orphans")
    assert not restrict(ReconcileAlert.objects.all(), alice).exists()
    assert restrict(ReconcileAlert.objects.all(), admin_user).count() == 1
