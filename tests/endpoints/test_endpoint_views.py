"""Endpoint pages: the list, the wizard (which only ever leads to a plan), the detail tabs
with "how to call it", the status fragment, and lifecycle actions through the plan page."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from endpoints.models import Endpoint, EndpointStatus, ModelVersion, Revision, ServingRuntime
from endpoints.services.endpoints import endpoint_create, endpoint_update
from endpoints.services.projects import project_rotate_ingest_key
from tests.endpoints.endpoint_factories import (
    EndpointFactory,
    ModelVersionFactory,
    ProjectFactory,
    RegisteredModelFactory,
    deploy_setup,
    grant,
)

pytestmark = pytest.mark.django_db

def _url(name: str, endpoint: Endpoint | None = None, **kwargs) -> str:
    if endpoint is not None:
        kwargs = {"project": endpoint.project.name, "name": endpoint.name, **kwargs}
    return reverse(f"endpoints:{name}", kwargs=kwargs or None)


def _wizard_data(setup, **overrides) -> dict:
    data = {
        "project": setup.project.pk, "name": "card-scorer", "description": "", "model_version": setup.v1.pk,
        "protocol": "v1", "runtime": "", "env": "", "args": "", "deployment_mode": "Knative", "min_replicas": 1,
        "max_replicas": 2, "scale_metric": "", "scale_target": "", "container_concurrency": "",
        "timeout_seconds": "", "hardware_profile": "", "accelerator_count": 0, "cpu_request": "", "cpu_limit": "",
        "memory_request": "", "memory_limit": "", "canary_version": "", "canary_traffic_percent": "",
        "logging_mode": "all",
    }
    data.update(overrides)
    return data


def _counts():
    return Endpoint.objects.count(), Revision.objects.count(), AuditEvent.objects.count()


@pytest.fixture
def setup(alice):
    setup = deploy_setup(actor=alice)
    grant(alice, setup.project, "view", "deploy")
    return setup


@pytest.fixture
def live_setup(alice, fake_apiserver):
    setup = deploy_setup(actor=alice, api_url=fake_apiserver.url)
    grant(alice, setup.project, "view", "deploy")
    return setup


@pytest.fixture
def applied(live_setup, alice, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        return endpoint_create(actor=alice, project=live_setup.project, name="scorer",
                               model_version=live_setup.v1, max_replicas=2)


def _confirm(client, plan_url: str, capture) -> object:
    page = client.get(plan_url)
    assert page.status_code == 200
    generation = re.search(r'name="generation" value="(\d*)"', page.content.decode()).group(1)
    with capture(execute=True):
        return client.post(plan_url, {"generation": generation})


# --- list ------------------------------------------------------------------------------------

def test_anonymous_visitor_is_sent_to_sign_in(client):
    response = client.get(_url("endpoint-list"))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_list_shows_only_visible_endpoints_with_their_columns(client, alice, setup):
    mine = EndpointFactory(project=setup.project, name="visible-one", model_version=setup.v1, min_replicas=0,
                           max_replicas=3, hardware_profile=setup.profile, accelerator_count=2,
                           canary_version=setup.v2, canary_traffic_percent=20,
                           status={"phase": "Ready", "url": "http://visible-one.fraud.example.com"})
    EndpointFactory(name="hidden-one")
    client.force_login(alice)

    html = client.get(_url("endpoint-list")).content.decode()

    assert mine.name in html and "hidden-one" not in html
    assert "badge-ready" in html
    assert "scorer v1" in html and "canary v2 at 20%" in html
    assert "0–3" in html
    assert "NVIDIA A100 × 2" in html
    assert "http://visible-one.fraud.example.com" in html
    assert _url("endpoint-edit", mine) in html


def test_viewer_gets_no_edit_link_and_no_deploy_button(client, bob, setup):
    endpoint = EndpointFactory(project=setup.project, model_version=setup.v1)
    grant(bob, setup.project, "view")
    client.force_login(bob)

    html = client.get(_url("endpoint-list")).content.decode()

    assert endpoint.name in html
    assert _url("endpoint-edit", endpoint) not in html
    assert _url("endpoint-create") not in html


def test_empty_list_explains_how_to_deploy_a_first_model(client, alice, setup):
    client.force_login(alice)
    html = client.get(_url("endpoint-list")).content.decode()
    assert "No endpoints yet" in html
    assert "Register the model and a version" in html
    assert _url("endpoint-create") in html


def test_outsider_is_told_to_ask_for_the_deployer_role(client, outsider):
    client.force_login(outsider)
    html = client.get(_url("endpoint-list")).content.decode()
    assert "You need the Deployer role on a project to deploy" in html


def test_list_filters_by_project_phase_and_search(client, alice, setup):
    other = ProjectFactory(name="ops")
    grant(alice, other, "view")
    EndpointFactory(project=setup.project, name="alpha", model_version=setup.v1, status={"phase": "Ready"})
    EndpointFactory(project=setup.project, name="beta", model_version=setup.v1, status={"phase": "Failed"})
    EndpointFactory(project=other, name="gamma", status={"phase": "Ready"})
    client.force_login(alice)

    def names(**params):
        html = client.get(_url("endpoint-list"), params).content.decode()
        return {n for n in ("alpha", "beta", "gamma") if f">{n}</a>" in html}

    assert names() == {"alpha", "beta", "gamma"}
    assert names(project="ops") == {"gamma"}
    assert names(phase="Ready") == {"alpha", "gamma"}
    assert names(search="bet") == {"beta"}


@pytest.mark.parametrize("rows", [3, 30])
def test_list_query_count_does_not_grow_with_rows(client, alice, setup, rows, django_assert_max_num_queries):
    for index in range(rows):
        EndpointFactory(project=setup.project, name=f"ep-{index}", model_version=setup.v1,
                        hardware_profile=setup.profile, accelerator_count=1, canary_version=setup.v2,
                        canary_traffic_percent=10)
    client.force_login(alice)
    client.get(_url("endpoint-list"))  # warm the session and content-type caches

    with django_assert_max_num_queries(9):
        response = client.get(_url("endpoint-list"))
    assert response.status_code == 200


# --- wizard ----------------------------------------------------------------------------------

def test_wizard_is_one_page_in_explained_sections(client, alice, setup):
    client.force_login(alice)
    html = client.get(_url("endpoint-create")).content.decode()
    for legend in ("Model &amp; runtime", "Scaling", "Hardware", "Rollout", "Logging"):
        assert f'<legend class="card-title">{legend}</legend>' in html
    assert "Scale-to-zero needs Knative mode" in html
    assert "refuses to change the mode after the first apply" in html
    assert "only offered by LLM runtimes" in html
    assert "Canary rollouts need Knative mode" in html
    assert 'hx-get="' + _url("runtime-preview") in html


def test_wizard_offers_only_projects_and_versions_the_user_may_deploy(client, alice, setup):
    viewable = ProjectFactory(name="viewable")
    grant(alice, viewable, "view")
    foreign = ModelVersionFactory(model=RegisteredModelFactory(project=viewable, name="foreign"))
    client.force_login(alice)

    form = client.get(_url("endpoint-create")).context["form"]

    assert list(form.fields["project"].queryset) == [setup.project]
    assert set(form.fields["model_version"].queryset) == {setup.v1, setup.v2}
    assert foreign not in form.fields["canary_version"].queryset


def test_attaching_a_version_the_user_cannot_deploy_is_a_form_error(client, alice, setup):
    invisible = ModelVersionFactory()
    client.force_login(alice)
    before = _counts()

    response = client.post(_url("endpoint-create"), _wizard_data(setup, model_version=invisible.pk))

    assert response.status_code == 400
    assert response.context["form"].errors["model_version"]
    assert _counts() == before


def test_a_model_of_another_project_is_refused_even_to_someone_who_may_deploy_both(client, alice, setup):
    """A project is a tenant: its endpoints' viewers must not read another tenant's model."""
    other = ProjectFactory(name="churn", cluster=setup.cluster)
    foreign = ModelVersionFactory(model=RegisteredModelFactory(project=other, name="churn-model"),
                                  model_format="sklearn")
    grant(alice, other, "view", "deploy")
    client.force_login(alice)
    before = _counts()
    response = client.post(_url("endpoint-create"), _wizard_data(setup, model_version=foreign.pk))
    assert response.status_code == 400
    # The wizard does not even offer it for fraud (a forged choice is not a valid one).
    assert response.context["form"].errors["model_version"]
    assert "churn-model" not in response.content.decode()
    assert _counts() == before
    # Through the API as well, on an existing endpoint.
    from rest_framework.test import APIClient

    endpoint = EndpointFactory(project=setup.project, model_version=setup.v1)
    api = APIClient()
    api.force_authenticate(alice)
    answer = api.post(f"/api/v1/endpoints/{endpoint.pk}/plan/", {"model_version": foreign.pk}, format="json")
    assert answer.status_code == 400 and "registered in project churn" in answer.json()["errors"]["model_version"][0]


def test_service_rule_errors_show_next_to_their_fields(client, alice, setup):
    client.force_login(alice)
    before = _counts()

    response = client.post(_url("endpoint-create"), _wizard_data(
        setup, deployment_mode="Standard", min_replicas=0, protocol="openai", name="Bad_Name"))

    errors = response.context["form"].errors
    assert response.status_code == 400
    assert "Scale-to-zero needs Knative mode" in errors["min_replicas"][0]
    assert "OpenAI-compatible" in errors["protocol"][0]
    assert "not a valid endpoint name" in errors["name"][0]
    assert "There are 3 problems" in response.content.decode()
    assert _counts() == before


def test_submitting_the_wizard_shows_the_plan_and_stores_nothing(client, alice, setup):
    client.force_login(alice)
    before = _counts()

    response = client.post(_url("endpoint-create"), _wizard_data(setup))

    assert response.status_code == 302
    assert response["Location"].startswith("/endpoints/-/plan/")
    assert _counts() == before
    page = client.get(response["Location"]).content.decode()
    assert "Create endpoint card-scorer" in page
    assert "Nothing has been applied yet" in page


def test_confirming_the_plan_creates_the_endpoint_on_the_cluster(
        client, alice, live_setup, django_capture_on_commit_callbacks):
    client.force_login(alice)
    response = client.post(_url("endpoint-create"), _wizard_data(live_setup, env="LOG_LEVEL=debug"))

    confirmed = _confirm(client, response["Location"], django_capture_on_commit_callbacks)

    endpoint = Endpoint.objects.get(name="card-scorer")
    assert confirmed["Location"] == _url("endpoint-detail", endpoint)
    assert endpoint.env == [{"name": "LOG_LEVEL", "value": "debug"}]
    live = live_setup.live_isvc("card-scorer")
    assert live["spec"]["predictor"]["model"]["storageUri"] == "s3://models/scorer/1"
    assert live["spec"]["predictor"]["maxReplicas"] == 2
    detail = client.get(confirmed["Location"]).content.decode()
    assert "Endpoint card-scorer created: generation 1 is being applied" in detail


def test_the_ingest_key_never_leaves_the_console_except_towards_the_cluster(
        client, alice, bob, live_setup, django_capture_on_commit_callbacks):
    """Whoever holds a project's ingest key can post inference events in its name: a viewer
    must not be able to read it off the manifest, plan, revisions, audit trail or API."""
    from rest_framework.test import APIClient

    from console.redaction import MASK

    key = live_setup.project.ingest_key
    grant(bob, live_setup.project, "view")
    client.force_login(alice)
    plan_url = client.post(_url("endpoint-create"), _wizard_data(live_setup, logging_mode="all"))["Location"]
    plan_page = client.get(plan_url).content.decode()
    assert key not in plan_page and MASK + key[-4:] in plan_page
    _confirm(client, plan_url, django_capture_on_commit_callbacks)
    endpoint = Endpoint.objects.get(name="card-scorer")
    # The cluster gets the real URL: the logger needs it.
    assert key in live_setup.live_isvc("card-scorer")["spec"]["predictor"]["logger"]["url"]
    # Rotating the key changes the URL: a new generation whose diff shows the change, masked.
    new_key = project_rotate_ingest_key(actor=alice, project=live_setup.project).ingest_key
    client.force_login(bob)
    for tab in ("endpoint-detail", "endpoint-configuration", "endpoint-manifest", "endpoint-revisions"):
        html = client.get(_url(tab, endpoint)).content.decode()
        assert key not in html and new_key not in html, tab
    revisions = client.get(_url("endpoint-revisions", endpoint)).content.decode()
    assert MASK + key[-4:] in revisions and MASK + new_key[-4:] in revisions
    api = APIClient()
    api.force_authenticate(bob)
    body = api.get(f"/api/v1/endpoints/{endpoint.pk}/revisions/").content.decode()
    assert key not in body and new_key not in body and MASK + new_key[-4:] in body
    client.force_login(alice)
    plan_url = client.post(_url("endpoint-edit", endpoint), _wizard_data(live_setup, max_replicas=3))["Location"]
    assert new_key not in client.get(plan_url).content.decode()
    for details in AuditEvent.objects.values_list("details", flat=True):
        assert key not in str(details) and new_key not in str(details)


def test_another_users_plan_token_is_not_found(client, alice, bob, setup):
    client.force_login(alice)
    plan_url = client.post(_url("endpoint-create"), _wizard_data(setup))["Location"]
    grant(bob, setup.project, "view", "deploy")
    client.force_login(bob)
    assert client.get(plan_url).status_code == 404


def test_edit_locks_the_deployment_mode_once_applied(client, alice, applied):
    client.force_login(alice)
    form = client.get(_url("endpoint-edit", applied)).context["form"]
    assert form.fields["deployment_mode"].disabled
    assert "project" not in form.fields and "name" not in form.fields


def test_edit_without_changes_says_so(client, alice, live_setup, applied):
    client.force_login(alice)
    data = _wizard_data(live_setup)
    del data["project"], data["name"]
    response = client.post(_url("endpoint-edit", applied), data)
    assert response.status_code == 400
    assert "Nothing changed" in response.content.decode()


def test_viewer_is_forbidden_and_outsider_not_found_on_edit(client, bob, outsider, setup):
    endpoint = EndpointFactory(project=setup.project, model_version=setup.v1)
    grant(bob, setup.project, "view")
    client.force_login(bob)
    assert client.get(_url("endpoint-edit", endpoint)).status_code == 403
    assert client.get(_url("endpoint-detail", endpoint)).status_code == 200
    client.force_login(outsider)
    assert client.get(_url("endpoint-edit", endpoint)).status_code == 404
    assert client.get(_url("endpoint-detail", endpoint)).status_code == 404


# --- runtime preview -------------------------------------------------------------------------

@pytest.mark.parametrize(("protocol", "runtime"), [("v1", "kserve-sklearnserver"), ("v2", "kserve-mlserver")])
def test_runtime_preview_follows_kserve_auto_selection(client, alice, setup, protocol, runtime):
    client.force_login(alice)
    html = client.get(_url("runtime-preview"), {"model_version": setup.v1.pk, "protocol": protocol}).content.decode()
    assert f"KServe will pick <strong>{runtime}</strong>" in html


def test_runtime_preview_explains_an_unsupported_explicit_runtime(client, alice, setup):
    tf = ServingRuntime.objects.get(name="kserve-tensorflow-serving")
    client.force_login(alice)
    html = client.get(_url("runtime-preview"), {"model_version": setup.v1.pk, "protocol": "v1",
                                                 "runtime": tf.pk}).content.decode()
    assert "does not support format sklearn" in html


def test_runtime_preview_reveals_nothing_about_invisible_versions(client, alice, setup):
    invisible = ModelVersionFactory()
    client.force_login(alice)
    html = client.get(_url("runtime-preview"), {"model_version": invisible.pk, "protocol": "v1"}).content.decode()
    assert "Choose a model version" in html


# --- detail ----------------------------------------------------------------------------------

def test_overview_tells_how_to_call_a_v1_endpoint(client, alice, setup):
    ModelVersion.objects.filter(pk=setup.v1.pk).update(reference_profile={"rows": 10, "features": [
        {"name": "amount", "type": "numeric", "mean": 42.123456},
        {"name": "country", "type": "categorical", "categories": ["de", "fr", "__other__"],
         "proportions": [0.2, 0.7, 0.1]}]})
    endpoint = EndpointFactory(project=setup.project, name="v1-scorer", model_version=setup.v1,
                               status={"phase": "Ready", "ready": True,
                                       "url": "http://v1-scorer.fraud.example.com"})
    client.force_login(alice)

    html = client.get(_url("endpoint-detail", endpoint)).content.decode()

    assert "How to call it" in html
    assert "curl -sS -X POST http://v1-scorer.fraud.example.com/v1/models/v1-scorer:predict" in html
    assert "[42.123, &quot;fr&quot;]" in html  # typical values from the reference profile
    assert "Feature order: amount, country." in html
    assert "Authorization: Bearer $TOKEN" in html
    assert "create an API token with the <strong>infer</strong> scope under <a href=\"{}\">API tokens</a>".format(
        reverse("access:token-list")).lower() in html.lower()


def test_overview_shows_a_v2_infer_call_before_the_url_is_known(client, alice, setup):
    endpoint = EndpointFactory(project=setup.project, name="v2-scorer", model_version=setup.v1, protocol="v2")
    client.force_login(alice)

    html = client.get(_url("endpoint-detail", endpoint)).content.decode()

    assert '"$ENDPOINT_URL/v2/models/v2-scorer/infer"' in html.replace("&quot;", '"')
    assert '"inputs"' in html.replace("&quot;", '"')
    assert '"datatype": "BYTES"' in html.replace("&quot;", '"')  # the categorical feature
    assert "appears here once the endpoint is Ready" in html


@pytest.mark.parametrize(("runtime", "fmt", "prefix"), [
    ("kserve-huggingfaceserver", "huggingface", "/openai"),
    ("kserve-vllmserver", "vLLM", ""),
])
def test_overview_shows_the_openai_route_of_the_runtime(client, alice, setup, runtime, fmt, prefix):
    model = RegisteredModelFactory(project=setup.project, name=f"llm-{fmt.lower()}", task="llm-chat")
    version = ModelVersionFactory(model=model, model_format=fmt, storage_uri="hf://org/llama", input_signature=[])
    endpoint = EndpointFactory(project=setup.project, name="chat", model_version=version, protocol="openai",
                               runtime=ServingRuntime.objects.get(name=runtime),
                               status={"url": "https://chat.fraud.example.com"})
    client.force_login(alice)

    html = client.get(_url("endpoint-detail", endpoint)).content.decode().replace("&quot;", '"')

    assert f"https://chat.fraud.example.com{prefix}/v1/chat/completions" in html
    assert '"model": "chat"' in html


def test_status_fragment_polls_only_while_the_endpoint_is_settling(client, alice, setup):
    endpoint = EndpointFactory(project=setup.project, model_version=setup.v1, status={"phase": "Deploying"})
    client.force_login(alice)

    overview = client.get(_url("endpoint-detail", endpoint)).content.decode()
    fragment = client.get(_url("endpoint-status", endpoint)).content.decode()
    assert 'hx-trigger="every 3s"' in overview and 'hx-trigger="every 3s"' in fragment
    assert "<html" not in fragment

    EndpointStatus.objects.filter(endpoint=endpoint).update(phase="Ready", ready=True, url="http://x.example.com")
    settled = client.get(_url("endpoint-status", endpoint)).content.decode()
    assert "hx-trigger" not in settled and "badge-ready" in settled
    # The heading's badge follows (out of band), and only the fragment carries that swap.
    assert '<span id="endpoint-heading-phase" hx-swap-oob="true"><span class="badge badge-ready">' in settled
    assert 'hx-swap-oob' not in overview


def test_status_polling_stops_when_the_endpoint_is_gone(client, alice, setup):
    endpoint = EndpointFactory(project=setup.project, model_version=setup.v1, status={"phase": "Deploying"})
    url = _url("endpoint-status", endpoint)
    endpoint.delete()
    client.force_login(alice)

    polled = client.get(url, headers={"HX-Request": "true"})

    assert polled.status_code == 286  # htmx stops polling on 286
    assert "no longer exists" in polled.content.decode() and "hx-trigger" not in polled.content.decode()
    assert client.get(url).status_code == 404


def test_tabs_show_configuration_manifest_and_revisions(client, alice, setup):
    endpoint = endpoint_create(actor=alice, project=setup.project, name="tabbed", model_version=setup.v1)
    endpoint_update(actor=alice, endpoint=endpoint, max_replicas=3)
    client.force_login(alice)

    configuration = client.get(_url("endpoint-configuration", endpoint)).content.decode()
    manifest = client.get(_url("endpoint-manifest", endpoint)).content.decode()
    revisions = client.get(_url("endpoint-revisions", endpoint)).content.decode()

    assert "Deployment mode" in configuration and "<code>max_replicas</code>" in configuration
    assert "kind: InferenceService" in manifest and "maxReplicas: 3" in manifest
    assert "changed max_replicas" in revisions
    assert "<code>max_replicas</code>: <code>1</code> → <code>3</code>" in revisions
    assert 'name="generation" value="1"' in revisions  # roll back to generation 1


def test_actions_are_hidden_from_viewers(client, bob, alice, setup):
    endpoint = EndpointFactory(project=setup.project, model_version=setup.v1)
    grant(bob, setup.project, "view")
    client.force_login(bob)
    html = client.get(_url("endpoint-detail", endpoint)).content.decode()
    for action in ("endpoint-edit", "endpoint-stop", "endpoint-delete", "endpoint-canary"):
        assert _url(action, endpoint) not in html
    client.force_login(alice)
    html = client.get(_url("endpoint-detail", endpoint)).content.decode()
    for action in ("endpoint-edit", "endpoint-stop", "endpoint-delete", "endpoint-canary"):
        assert _url(action, endpoint) in html


def test_audit_history_link_only_for_those_who_may_read_it(client, bob, alice, admin_user, setup):
    endpoint = EndpointFactory(project=setup.project, model_version=setup.v1)
    history = reverse("audit:object-history", args=["endpoint", endpoint.pk])
    grant(bob, setup.project, "view")
    pages = [_url("endpoint-detail", endpoint), _url("endpoint-revisions", endpoint),
             reverse("monitoring:endpoint-latency", kwargs={"project": setup.project.name, "name": endpoint.name})]
    # A deployer or viewer cannot read the trail, so the page offers no link to it ...
    for user in (alice, bob):
        client.force_login(user)
        for page in pages:
            assert history not in client.get(page).content.decode()
        assert client.get(history).status_code == 403
    # ... the project's owner and a platform admin can, on every tab.
    grant(alice, setup.project, "manage")
    for user in (alice, admin_user):
        client.force_login(user)
        for page in pages:
            assert f'href="{history}">Audit history</a>' in client.get(page).content.decode()
        assert client.get(history).status_code == 200


# --- lifecycle through the plan page -------------------------------------------------------------

def test_rollback_goes_through_the_plan_and_reaches_the_cluster(
        client, alice, live_setup, applied, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        endpoint_update(actor=alice, endpoint=applied, model_version=live_setup.v2)
    assert live_setup.live_isvc("scorer")["spec"]["predictor"]["model"]["storageUri"] == "s3://models/scorer/2"
    client.force_login(alice)

    plan_url = client.post(_url("endpoint-rollback", applied), {"generation": 1})["Location"]
    page = client.get(plan_url).content.decode()
    assert "Roll back endpoint scorer" in page and "<code>model.version</code>" in page

    _confirm(client, plan_url, django_capture_on_commit_callbacks)

    applied.refresh_from_db()
    assert (applied.generation, applied.model_version_id) == (3, live_setup.v1.pk)
    assert live_setup.live_isvc("scorer")["spec"]["predictor"]["model"]["storageUri"] == "s3://models/scorer/1"


def test_stop_and_start_go_through_the_plan(client, alice, live_setup, applied, django_capture_on_commit_callbacks):
    client.force_login(alice)
    plan_url = client.post(_url("endpoint-stop", applied))["Location"]
    assert "every pod is terminated" in client.get(plan_url).content.decode()

    _confirm(client, plan_url, django_capture_on_commit_callbacks)

    applied.refresh_from_db()
    assert applied.state == "stopped"
    assert live_setup.live_isvc("scorer")["metadata"]["annotations"]["serving.kserve.io/stop"] == "true"
    plan_url = client.post(_url("endpoint-start", applied))["Location"]
    _confirm(client, plan_url, django_capture_on_commit_callbacks)
    applied.refresh_from_db()
    assert applied.state == "active"


def test_canary_form_explains_when_there_is_no_other_version(client, alice, setup):
    lonely = ModelVersionFactory(model=RegisteredModelFactory(project=setup.project, name="lonely"))
    endpoint = EndpointFactory(project=setup.project, model_version=lonely, deployment_mode="Knative")
    client.force_login(alice)
    html = client.get(_url("endpoint-canary", endpoint)).content.decode()
    assert "A canary needs another version of" in html and "is the only one" in html
    assert reverse("endpoints:model-detail", kwargs={"pk": lonely.model_id}) in html
    assert "Review the plan" not in html
    # With a second version the form is the usual one.
    ModelVersionFactory(model=lonely.model, version=lonely.version + 1)
    html = client.get(_url("endpoint-canary", endpoint)).content.decode()
    assert "is the only one" not in html and "Review the plan" in html


def test_canary_then_promote_through_the_plan(client, alice, live_setup, applied, django_capture_on_commit_callbacks):
    client.force_login(alice)
    plan_url = client.post(_url("endpoint-canary", applied),
                           {"canary_version": live_setup.v2.pk, "canary_traffic_percent": 25})["Location"]
    _confirm(client, plan_url, django_capture_on_commit_callbacks)
    assert live_setup.live_isvc("scorer")["spec"]["predictor"]["canaryTrafficPercent"] == 25
    assert "Promote canary" in client.get(_url("endpoint-detail", applied)).content.decode()

    plan_url = client.post(_url("endpoint-promote", applied))["Location"]
    assert "the canary is promoted" in client.get(plan_url).content.decode()
    _confirm(client, plan_url, django_capture_on_commit_callbacks)

    applied.refresh_from_db()
    assert (applied.model_version_id, applied.canary_version_id) == (live_setup.v2.pk, None)
    live = live_setup.live_isvc("scorer")["spec"]["predictor"]
    assert "canaryTrafficPercent" not in live and live["model"]["storageUri"] == "s3://models/scorer/2"


def test_delete_confirms_then_removes_the_inference_service(
        client, alice, live_setup, applied, django_capture_on_commit_callbacks):
    client.force_login(alice)
    page = client.get(_url("endpoint-delete", applied)).content.decode()
    assert "Delete endpoint scorer" in page and "Are you sure?" in page

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(_url("endpoint-delete", applied))

    assert response["Location"] == _url("endpoint-list")
    assert not Endpoint.objects.filter(pk=applied.pk).exists()
    assert live_setup.live_isvc("scorer") is None
    assert AuditEvent.objects.filter(action="endpoint.delete", target_id=str(applied.pk)).exists()


# --- pickers scoped to the endpoint's project ------------------------------------------------------

@pytest.fixture
def rival_version(alice):
    """A version in another project where alice may deploy too: offered nowhere for fraud's endpoints."""
    rival = ProjectFactory(name="rival")
    grant(alice, rival, "view", "deploy")
    return ModelVersionFactory(model=RegisteredModelFactory(project=rival, name="rival-secret-model"))


def test_edit_and_canary_pages_offer_only_the_endpoints_project_versions(client, alice, setup, rival_version):
    endpoint = EndpointFactory(project=setup.project, model_version=setup.v1, deployment_mode="Knative")
    client.force_login(alice)

    for page in ("endpoint-edit", "endpoint-canary"):
        response = client.get(_url(page, endpoint))
        html = response.content.decode()
        assert response.status_code == 200
        assert "rival-secret-model" not in html, page
    edit_form = client.get(_url("endpoint-edit", endpoint)).context["form"]
    assert set(edit_form.fields["model_version"].queryset) == {setup.v1, setup.v2}
    assert set(edit_form.fields["canary_version"].queryset) == {setup.v1, setup.v2}


def test_editing_to_another_projects_version_is_a_form_error(client, alice, setup, rival_version):
    endpoint = EndpointFactory(project=setup.project, model_version=setup.v1)
    client.force_login(alice)
    data = {k: v for k, v in _wizard_data(setup, model_version=rival_version.pk).items() if k not in ("project", "name")}

    response = client.post(_url("endpoint-edit", endpoint), data)

    assert response.status_code == 400
    assert response.context["form"].errors["model_version"]
    assert "rival-secret-model" not in response.content.decode()


def test_wizard_offers_the_chosen_projects_versions_only(client, alice, setup, rival_version):
    client.force_login(alice)

    html = client.get(_url("endpoint-create"), {"project": setup.project.pk}).content.decode()
    assert "rival-secret-model" not in html
    submitted = client.post(_url("endpoint-create"), _wizard_data(setup, model_version=rival_version.pk,
                                                                  max_replicas=0))
    assert "rival-secret-model" not in submitted.content.decode()
    assert submitted.context["form"].errors["model_version"]
    # Choosing the project refreshes the pickers through the same page.
    picker = client.get(_url("endpoint-create")).content.decode()
    assert 'hx-trigger="change from:#id_project"' in picker and 'hx-select="#id_model_version option"' in picker


def test_adjust_canary_opens_a_page_titled_adjust_when_a_canary_runs(client, alice, setup):
    endpoint = EndpointFactory(project=setup.project, model_version=setup.v1, deployment_mode="Knative",
                               canary_version=setup.v2, canary_traffic_percent=20)
    client.force_login(alice)

    detail = client.get(_url("endpoint-detail", endpoint)).content.decode()
    page = client.get(_url("endpoint-canary", endpoint)).content.decode()

    assert "Adjust canary" in detail
    assert "<title>Adjust the canary of" in page or "Adjust the canary of" in page.split("</title>")[0]
    assert "<h1>Adjust the canary of" in page
    assert "Start a canary" not in page
    assert "v2 is the canary now, with 20% of the traffic" in page


def test_start_canary_page_keeps_its_title_without_a_canary(client, alice, setup):
    endpoint = EndpointFactory(project=setup.project, model_version=setup.v1, deployment_mode="Knative")
    client.force_login(alice)

    page = client.get(_url("endpoint-canary", endpoint)).content.decode()

    assert "<h1>Start a canary on" in page and "Adjust the canary" not in page


def test_how_to_call_follows_the_status_poll_once_the_endpoint_is_ready(client, alice, setup):
    endpoint = EndpointFactory(project=setup.project, name="v1-scorer", model_version=setup.v1,
                               status={"phase": "Deploying"})
    client.force_login(alice)
    overview = client.get(_url("endpoint-detail", endpoint)).content.decode()
    assert '<section id="how-to-call"' in overview and "appears here once the endpoint is Ready" in overview
    # While it deploys the poll leaves the panel alone.
    assert 'id="how-to-call"' not in client.get(_url("endpoint-status", endpoint)).content.decode()

    EndpointStatus.objects.filter(endpoint=endpoint).update(phase="Ready", ready=True,
                                                            url="http://v1-scorer.fraud.example.com")
    settled = client.get(_url("endpoint-status", endpoint)).content.decode()

    panel = settled.split('<section id="how-to-call"')[1]
    assert panel.startswith(' class="card section" aria-labelledby="how-to-call-title" hx-swap-oob="true">')
    assert "curl -sS -X POST http://v1-scorer.fraud.example.com/v1/models/v1-scorer:predict" in panel
    assert "appears here once the endpoint is Ready" not in panel
