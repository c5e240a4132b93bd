"""Edit and delete of models, versions, projects, clusters, hardware profiles and runtimes
(endpoints.services.lifecycle): the referential rules refuse with the reason (page 409 with the
reasons, API 409), nothing that history refers to is lost, every change is audited; and the
project page its members see."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from audit.models import AuditEvent
from console.access import grants
from endpoints.models import (
    Cluster,
    Endpoint,
    HardwareProfile,
    ModelAlias,
    ModelVersion,
    Project,
    ProjectQuota,
    RegisteredModel,
    ServingRuntime,
)
from endpoints.services import endpoints as endpoint_services
from endpoints.services import lifecycle
from endpoints.services.registry import alias_set
from tests.endpoints.endpoint_factories import (
    ClusterFactory,
    HardwareProfileFactory,
    ModelVersionFactory,
    ProjectFactory,
    RegisteredModelFactory,
    deploy_setup,
)
from tests.endpoints.registry_factories import ServingRuntimeFactory
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def setup(alice):
    return deploy_setup(actor=alice)


@pytest.fixture
def owner(setup):
    user = UserFactory(username="olivia")
    grants.grant_create(actor=None, role="owner", target=setup.project, user=user, reason="test")
    return user


@pytest.fixture
def deployer(setup):
    user = UserFactory(username="dora")
    grants.grant_create(actor=None, role="deployer", target=setup.project, user=user, reason="test")
    return user


@pytest.fixture
def viewer(setup):
    user = UserFactory(username="victor")
    grants.grant_create(actor=None, role="viewer", target=setup.project, user=user, reason="test")
    return user


def api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def deploy(setup, actor, version=None, name="scorer-live", **config):
    return endpoint_services.endpoint_create(actor=actor, project=setup.project, name=name,
                                             model_version=version or setup.v1, **config)


def gone(endpoint) -> None:
    """The endpoint deleted, then its row removed as the worker does once the InferenceService
    is gone (the test cluster is unreachable)."""
    endpoint_services.endpoint_delete(actor=None, endpoint=endpoint)
    Endpoint.objects.filter(pk=endpoint.pk).delete()


def version_url(version, action) -> str:
    return reverse(f"endpoints:version-{action}", kwargs={"pk": version.model_id, "version": version.version})


def last_event(action: str) -> AuditEvent:
    return AuditEvent.objects.filter(action=action).latest("id")


# --- model versions ------------------------------------------------------------------------------------

def test_it_refuses_to_delete_a_serving_version_on_the_page_and_in_the_api(client, setup, alice, owner):
    deploy(setup, alice)
    client.force_login(owner)
    page = client.get(version_url(setup.v1, "delete"))
    assert page.status_code == 200
    assert "served by endpoint fraud/scorer-live" in page.content.decode()

    response = client.post(version_url(setup.v1, "delete"))
    assert response.status_code == 409
    assert "served by endpoint fraud/scorer-live" in response.content.decode()
    answer = api(owner).delete(reverse("api-version-detail", kwargs={"pk": setup.v1.pk}))
    assert answer.status_code == 409
    assert "served by endpoint fraud/scorer-live" in answer.json()["detail"]
    assert ModelVersion.objects.filter(pk=setup.v1.pk).exists()
    assert not AuditEvent.objects.filter(action="modelversion.delete").exists()


def test_a_canary_version_cannot_be_deleted(setup, alice, owner):
    endpoint = deploy(setup, alice)
    endpoint_services.endpoint_update(actor=alice, endpoint=endpoint, canary_version=setup.v2,
                                      canary_traffic_percent=10)
    answer = api(owner).delete(reverse("api-version-detail", kwargs={"pk": setup.v2.pk}))
    assert answer.status_code == 409
    assert "served as canary by endpoint fraud/scorer-live" in answer.json()["detail"]


def test_a_version_in_an_endpoints_revision_history_is_kept_for_rollback(setup, alice, owner):
    endpoint = deploy(setup, alice)
    endpoint_services.endpoint_update(actor=alice, endpoint=endpoint, model_version=setup.v2)
    answer = api(owner).delete(reverse("api-version-detail", kwargs={"pk": setup.v1.pk}))
    assert answer.status_code == 409
    assert "revision history" in answer.json()["detail"]
    # Once the endpoint is gone, nothing refers to v1 any more.
    gone(endpoint)
    assert api(owner).delete(reverse("api-version-detail", kwargs={"pk": setup.v1.pk})).status_code == 204


def test_a_version_with_monitoring_history_is_not_deleted_with_it(setup, owner):
    from django.utils import timezone

    from monitoring.models import BinCount

    other = deploy_setup(actor=None, project_name="other")
    endpoint = endpoint_services.endpoint_create(actor=None, project=other.project, name="x", model_version=other.v1)
    BinCount.objects.create(endpoint=endpoint, model_version=setup.v1, hour=timezone.now(), feature="amount",
                            bin=0, count=3)
    reasons = lifecycle.version_delete_blockers(setup.v1)
    assert reasons and "monitoring history" in reasons[0]
    with pytest.raises(lifecycle.InUse):
        lifecycle.model_version_delete(actor=None, version=setup.v1)
    assert BinCount.objects.count() == 1


def test_owner_deletes_an_unused_version_with_its_aliases_and_it_is_audited(client, setup, alice, owner):
    alias_set(actor=alice, version=setup.v2, name="challenger")
    client.force_login(owner)
    response = client.post(version_url(setup.v2, "delete"))
    assert response.status_code == 302
    assert not ModelVersion.objects.filter(pk=setup.v2.pk).exists()
    assert not ModelAlias.objects.filter(name="challenger").exists()
    event = last_event("modelversion.delete")
    assert event.actor_name == "olivia"
    assert event.details["old"]["version"] == 2
    assert event.details["old"]["aliases"] == ["challenger"]
    assert event.details["deleted_with_it"] == {"endpoints.modelalias": 1}


def test_deployer_and_viewer_cannot_delete_a_version_they_see(client, setup, deployer, viewer):
    for user in (deployer, viewer):
        client.force_login(user)
        assert client.post(version_url(setup.v2, "delete")).status_code == 403
        assert api(user).delete(reverse("api-version-detail", kwargs={"pk": setup.v2.pk})).status_code == 403
    assert ModelVersion.objects.filter(pk=setup.v2.pk).exists()


def test_outsider_gets_404_deleting_another_tenants_version(client, setup):
    outsider = UserFactory(username="mallory")
    client.force_login(outsider)
    assert client.post(version_url(setup.v2, "delete")).status_code == 404
    assert api(outsider).delete(reverse("api-version-detail", kwargs={"pk": setup.v2.pk})).status_code == 404
    assert ModelVersion.objects.filter(pk=setup.v2.pk).exists()


def test_deployer_edits_a_version_description_but_not_its_artifact(setup, deployer):
    url = reverse("api-version-detail", kwargs={"pk": setup.v1.pk})
    answer = api(deployer).patch(url, {"description": "trained on March data"}, format="json")
    assert answer.status_code == 200
    setup.v1.refresh_from_db()
    assert setup.v1.description == "trained on March data"
    event = last_event("modelversion.update")
    assert event.details["old"] == {"description": ""}
    assert event.details["new"] == {"description": "trained on March data"}
    refused = api(deployer).patch(url, {"storage_uri": "s3://elsewhere/model"}, format="json")
    assert refused.status_code == 400
    assert "storage_uri" in refused.json()["errors"]


# --- registered models ---------------------------------------------------------------------------------

def test_a_model_with_a_version_in_use_cannot_be_deleted(client, setup, alice, owner):
    deploy(setup, alice)
    client.force_login(owner)
    response = client.post(reverse("endpoints:model-delete", kwargs={"pk": setup.model.pk}))
    assert response.status_code == 409
    assert "served by endpoint fraud/scorer-live" in response.content.decode()
    assert RegisteredModel.objects.filter(pk=setup.model.pk).exists()


def test_owner_deletes_an_unused_model_and_its_grants_are_counted_in_the_audit(client, setup, owner):
    model = RegisteredModelFactory(project=setup.project, name="spare")
    ModelVersionFactory(model=model, version=1)
    grants.grant_create(actor=None, role="viewer", target=model, user=UserFactory(username="guest"), reason="test")
    client.force_login(owner)
    response = client.post(reverse("endpoints:model-delete", kwargs={"pk": model.pk}))
    assert response.status_code == 302
    assert not RegisteredModel.objects.filter(pk=model.pk).exists()
    event = last_event("model.delete")
    assert event.details["old"]["versions"] == [1]
    assert event.details["deleted_with_it"]["access.grant"] == 1
    assert event.details["deleted_with_it"]["endpoints.modelversion"] == 1


def test_deployer_edits_a_model_and_the_change_is_audited(client, setup, deployer):
    client.force_login(deployer)
    response = client.post(reverse("endpoints:model-edit", kwargs={"pk": setup.model.pk}),
                           {"task": "regression", "description": "scores payments"})
    assert response.status_code == 302
    setup.model.refresh_from_db()
    assert setup.model.task == "regression"
    event = last_event("model.update")
    assert event.actor_name == "dora"
    assert event.details["old"] == {"task": "classification", "description": ""}
    assert api(deployer).patch(reverse("api-model-detail", kwargs={"pk": setup.model.pk}),
                               {"name": "renamed"}, format="json").status_code == 400


def test_viewer_cannot_edit_a_model(client, setup, viewer):
    client.force_login(viewer)
    assert client.post(reverse("endpoints:model-edit", kwargs={"pk": setup.model.pk}),
                       {"task": "regression", "description": ""}).status_code == 403
    assert api(viewer).patch(reverse("api-model-detail", kwargs={"pk": setup.model.pk}),
                             {"description": "x"}, format="json").status_code == 403


# --- projects ----------------------------------------------------------------------------------------------

def test_members_see_their_projects_page_with_endpoints_models_and_members(client, setup, alice, viewer, owner):
    deploy(setup, alice)
    client.force_login(viewer)
    response = client.get(reverse("endpoints:project-detail", kwargs={"name": "fraud"}))
    assert response.status_code == 200
    page = response.content.decode()
    assert "scorer-live" in page  # its endpoint
    assert reverse("endpoints:model-detail", kwargs={"pk": setup.model.pk}) in page
    assert "olivia" in page and "victor" in page  # members
    # A viewer is offered neither edit nor delete, nor the admin actions.
    assert reverse("endpoints:project-delete", kwargs={"name": "fraud"}) not in page
    assert reverse("endpoints:project-quota", kwargs={"name": "fraud"}) not in page


def test_owner_is_offered_edit_and_delete_on_the_project_page(client, setup, owner):
    client.force_login(owner)
    page = client.get(reverse("endpoints:project-detail", kwargs={"name": "fraud"})).content.decode()
    assert reverse("endpoints:project-edit", kwargs={"name": "fraud"}) in page
    assert reverse("endpoints:project-delete", kwargs={"name": "fraud"}) in page


def test_outsider_gets_404_on_a_projects_page(client, setup):
    client.force_login(UserFactory(username="mallory"))
    assert client.get(reverse("endpoints:project-detail", kwargs={"name": "fraud"})).status_code == 404


def test_owner_edits_the_project_and_the_change_is_audited(client, setup, owner):
    client.force_login(owner)
    response = client.post(reverse("endpoints:project-edit", kwargs={"name": "fraud"}),
                           {"display_name": "Fraud team", "description": "Card payments"})
    assert response.status_code == 302
    event = last_event("project.update")
    assert event.details == {"old": {"display_name": "", "description": ""},
                             "new": {"display_name": "Fraud team", "description": "Card payments"}}
    answer = api(owner).patch(reverse("api-project-detail", kwargs={"pk": setup.project.pk}),
                              {"namespace": "elsewhere"}, format="json")
    assert answer.status_code == 400
    assert Project.objects.get(pk=setup.project.pk).namespace == "fraud"


def test_a_project_with_endpoints_cannot_be_deleted_until_they_are(client, setup, alice, owner):
    endpoint = deploy(setup, alice)
    answer = api(owner).delete(reverse("api-project-detail", kwargs={"pk": setup.project.pk}))
    assert answer.status_code == 409
    assert "still has endpoint fraud/scorer-live" in answer.json()["detail"]
    assert Project.objects.filter(pk=setup.project.pk).exists()

    gone(endpoint)
    client.force_login(owner)
    response = client.post(reverse("endpoints:project-delete", kwargs={"name": "fraud"}))
    assert response.status_code == 302
    assert not Project.objects.filter(pk=setup.project.pk).exists()
    assert not RegisteredModel.objects.filter(pk=setup.model.pk).exists()
    assert not ProjectQuota.objects.filter(project_id=setup.project.pk).exists()
    event = last_event("project.delete")
    assert event.project_name == "fraud"
    assert event.details["old"]["models"] == ["scorer"]
    assert event.details["namespace_kept"] is True
    assert event.details["deleted_with_it"]["endpoints.modelversion"] == 2
    assert event.details["deleted_with_it"]["access.grant"] == 1
    # The trail of the deleted project is still there.
    assert AuditEvent.objects.filter(action="project.create", project_name="fraud").exists()


def test_a_project_whose_namespace_still_holds_connection_secrets_is_not_deleted_yet(setup, owner):
    Project.objects.filter(pk=setup.project.pk).update(has_connection_objects=True)
    answer = api(owner).delete(reverse("api-project-detail", kwargs={"pk": setup.project.pk}))
    assert answer.status_code == 409
    assert "still holds storage credentials" in answer.json()["detail"]
    assert Project.objects.filter(pk=setup.project.pk).exists()


def test_deployer_cannot_delete_the_project(client, setup, deployer):
    client.force_login(deployer)
    assert client.post(reverse("endpoints:project-delete", kwargs={"name": "fraud"})).status_code == 403
    assert api(deployer).delete(reverse("api-project-detail", kwargs={"pk": setup.project.pk})).status_code == 403
    assert Project.objects.filter(pk=setup.project.pk).exists()


# --- clusters, hardware profiles, runtimes --------------------------------------------------------------------

def test_deleting_a_cluster_with_projects_is_refused(client, setup, admin_user):
    client.force_login(admin_user)
    response = client.post(reverse("endpoints:cluster-delete", kwargs={"pk": setup.cluster.pk}))
    assert response.status_code == 409
    assert "still has project fraud" in response.content.decode()
    answer = api(admin_user).delete(reverse("api-cluster-detail", kwargs={"pk": setup.cluster.pk}))
    assert answer.status_code == 409
    assert Cluster.objects.filter(pk=setup.cluster.pk).exists()


def test_admin_deletes_an_empty_cluster_with_the_runtimes_discovered_on_it(client, admin_user):
    cluster = ClusterFactory(name="spare")
    ServingRuntimeFactory(name="vendor-llm", installed_on=cluster)
    client.force_login(admin_user)
    assert client.post(reverse("endpoints:cluster-delete", kwargs={"pk": cluster.pk})).status_code == 302
    assert not Cluster.objects.filter(pk=cluster.pk).exists()
    # Left behind, it would have become a runtime the console installs.
    assert not ServingRuntime.objects.filter(name="vendor-llm").exists()
    assert last_event("cluster.delete").details["discovered_runtimes_removed"] == ["vendor-llm"]


def test_a_hardware_profile_in_use_is_refused_and_disabling_keeps_the_endpoint(setup, alice, admin_user):
    endpoint = deploy(setup, alice, hardware_profile=setup.profile, accelerator_count=1)
    url = reverse("api-hardware-profile-detail", kwargs={"pk": setup.profile.pk})
    answer = api(admin_user).delete(url)
    assert answer.status_code == 409
    assert "Disable it instead" in answer.json()["detail"]
    assert api(admin_user).patch(url, {"enabled": False}, format="json").status_code == 200
    endpoint.refresh_from_db()
    assert endpoint.hardware_profile_id == setup.profile.pk
    from endpoints import selectors

    assert setup.profile not in selectors.hardware_choices()  # new endpoints cannot choose it
    assert setup.profile in selectors.hardware_choices(endpoint)  # the endpoint keeps it


def test_admin_deletes_an_unused_hardware_profile_with_its_quotas_recorded(client, admin_user):
    profile = HardwareProfileFactory(name="t4", display_name="T4")
    project = ProjectFactory(name="quota-holder")
    ProjectQuota.objects.create(project=project, hardware_profile=profile, max_accelerators=2)
    client.force_login(admin_user)
    assert client.post(reverse("endpoints:hardware-delete", kwargs={"pk": profile.pk})).status_code == 302
    assert not HardwareProfile.objects.filter(pk=profile.pk).exists()
    assert last_event("hardware_profile.delete").details["quotas_removed"] == {"quota-holder": 2}


def test_built_in_and_used_runtimes_are_refused_unused_custom_ones_deleted(setup, alice, admin_user):
    built_in = ServingRuntime.objects.filter(built_in=True).first()
    answer = api(admin_user).delete(reverse("api-runtime-detail", kwargs={"pk": built_in.pk}))
    assert answer.status_code == 409
    assert "built in" in answer.json()["detail"]
    used = ServingRuntimeFactory(name="custom-used")
    endpoint = deploy(setup, alice)
    Endpoint.objects.filter(pk=endpoint.pk).update(runtime=used)
    assert api(admin_user).delete(reverse("api-runtime-detail", kwargs={"pk": used.pk})).status_code == 409
    unused = ServingRuntimeFactory(name="custom-unused")
    assert api(admin_user).delete(reverse("api-runtime-detail", kwargs={"pk": unused.pk})).status_code == 204
    assert last_event("runtime.delete").details["old"]["name"] == "custom-unused"


def test_non_admins_cannot_delete_catalog_objects(client, setup, owner):
    client.force_login(owner)
    assert client.post(reverse("endpoints:hardware-delete", kwargs={"pk": setup.profile.pk})).status_code == 403
    assert api(owner).delete(reverse("api-hardware-profile-detail",
                                     kwargs={"pk": setup.profile.pk})).status_code == 403
    assert HardwareProfile.objects.filter(pk=setup.profile.pk).exists()


# --- archived versions -------------------------------------------------------------------------------------

def test_an_archived_version_cannot_be_deployed_but_endpoints_on_it_keep_it(client, setup, alice, owner):
    endpoint = deploy(setup, alice)
    client.force_login(owner)
    response = client.post(version_url(setup.v1, "archive"), {"archived": "1"})
    assert response.status_code == 302
    setup.v1.refresh_from_db()
    assert setup.v1.archived_at is not None
    event = last_event("modelversion.archive")
    assert event.actor_name == "olivia"
    assert event.details["serving_endpoints"] == ["scorer-live"]

    # New endpoints (and changes to another endpoint) cannot choose it ...
    answer = api(owner).post(reverse("endpoint-list"), {
        "project": setup.project.pk, "name": "second", "model_version": setup.v1.pk}, format="json")
    assert answer.status_code == 400
    assert "is archived" in answer.json()["errors"]["model_version"][0]
    # ... the endpoint already on it keeps it through other changes,
    endpoint_services.endpoint_update(actor=alice, endpoint=endpoint, max_replicas=3)
    endpoint.refresh_from_db()
    assert endpoint.model_version_id == setup.v1.pk and endpoint.max_replicas == 3
    # ... and rollback to a revision naming it still works once it moved on.
    endpoint_services.endpoint_update(actor=alice, endpoint=endpoint, model_version=setup.v2)
    with pytest.raises(Exception, match="is archived"):
        endpoint_services.endpoint_update(actor=alice, endpoint=endpoint, model_version=setup.v1)
    first = endpoint.revisions.get(generation=1)
    endpoint_services.endpoint_rollback(actor=alice, endpoint=endpoint, revision=first)
    endpoint.refresh_from_db()
    assert endpoint.model_version_id == setup.v1.pk

    # Unarchived, it can be deployed again.
    assert api(owner).post(reverse("api-version-unarchive", kwargs={"pk": setup.v1.pk})).status_code == 200
    assert last_event("modelversion.unarchive").actor_name == "olivia"
    setup.v1.refresh_from_db()
    endpoint_services.endpoint_create(actor=alice, project=setup.project, name="second", model_version=setup.v1)


def test_model_page_marks_archived_versions_and_offers_archive_to_owners_only(client, setup, owner, deployer):
    lifecycle.model_version_archive(actor=owner, version=setup.v1)
    client.force_login(owner)
    page = client.get(reverse("endpoints:model-detail", kwargs={"pk": setup.model.pk})).content.decode()
    assert "Unarchive v1" in page and "Archive v2" in page
    client.force_login(deployer)
    page = client.get(reverse("endpoints:model-detail", kwargs={"pk": setup.model.pk})).content.decode()
    assert "archived" in page
    assert "Archive v2" not in page
    assert client.post(version_url(setup.v2, "archive")).status_code == 403
    assert api(deployer).post(reverse("api-version-archive", kwargs={"pk": setup.v2.pk})).status_code == 403


def test_project_page_query_count_does_not_grow_with_its_endpoints_models_and_members(client, setup, viewer):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from tests.endpoints.endpoint_factories import EndpointFactory

    client.force_login(viewer)
    url = reverse("endpoints:project-detail", kwargs={"name": "fraud"})

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url).status_code == 200
        return len(captured)

    baseline = queries()
    for n in range(5):
        model = RegisteredModelFactory(project=setup.project, name=f"extra-{n}")
        EndpointFactory(project=setup.project, name=f"extra-{n}",
                        model_version=ModelVersionFactory(model=model, version=1))
        grants.grant_create(actor=None, role="viewer", target=setup.project, user=UserFactory(username=f"m{n}"),
                            reason="test")
    assert queries() == baseline


def test_project_list_shows_members_their_projects_only(client, setup, viewer):
    ProjectFactory(name="elsewhere")
    client.force_login(viewer)
    page = client.get(reverse("endpoints:project-list")).content.decode()
    assert reverse("endpoints:project-detail", kwargs={"name": "fraud"}) in page
    assert "elsewhere" not in page
    assert reverse("endpoints:project-create") not in page
    client.force_login(UserFactory(username="mallory"))
    page = client.get(reverse("endpoints:project-list")).content.decode()
    assert reverse("endpoints:project-detail", kwargs={"name": "fraud"}) not in page


def _options(page: str, field: str) -> list[str]:
    select = re.search(rf'<select name="{field}".*?</select>', page, re.S).group(0)
    return re.findall(r'<option value="(\d+)"', select)


def test_pickers_leave_out_archived_versions_except_the_endpoints_own(client, setup, alice, owner):
    endpoint = deploy(setup, alice)
    lifecycle.model_version_archive(actor=owner, version=setup.v1)
    client.force_login(owner)
    wizard = client.get(reverse("endpoints:endpoint-create"), {"project": setup.project.pk}).content.decode()
    assert _options(wizard, "model_version") == [str(setup.v2.pk)]
    # The endpoint already on it keeps it on its edit page, so an edit does not move it off.
    edit_url = reverse("endpoints:endpoint-edit", kwargs={"project": setup.project.name, "name": endpoint.name})
    edit = client.get(edit_url).content.decode()
    assert sorted(_options(edit, "model_version")) == sorted([str(setup.v1.pk), str(setup.v2.pk)])
