""""Try it" through a real Envoy configured from deploy/istio/ (the HTTP ext_authz provider) in
front of the console served over HTTP: the console sends the request as the signed-in user, the
gateway asks the console's check, a Caller's request reaches the model server and a Viewer's is
refused by the gateway with the console's reason shown; each try is audited, a body that is not
JSON is a field error and nothing is sent.

The model server here is a small HTTP server standing in for the runtime
(tests/fixtures/gateway.py: it answers V1 predictions and records what reached it)."""

from __future__ import annotations

import html
import json

import pytest
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent
from console.access import grants
from tests.console.access_factories import endpoint_in, project_with_model
from tests.fixtures.envoy import free_port

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def scorer(console_gateway):
    fraud, _ = project_with_model("fraud")
    fraud.cluster.gateway_address = console_gateway
    fraud.cluster.save()
    return endpoint_in(fraud, "scorer")


def _try(user, endpoint, body, *, htmx=True):
    client = Client()
    client.force_login(user)
    headers = {"HX-Request": "true"} if htmx else {}
    return client.post(reverse("access:endpoint-try", kwargs={"project": endpoint.project.name, "name": endpoint.name}),
                       {"body": body}, headers=headers)


def test_a_caller_tries_the_endpoint_and_sees_the_prediction_status_and_latency(alice, scorer, model_server):
    grants.grant_create(actor=None, role="caller", target=scorer.project, user=alice, reason="test")
    before = len(model_server.seen)
    response = _try(alice, scorer, '{"instances": [[1, 2, 3]]}')
    assert response.status_code == 200
    result = response.context["result"]
    assert result.status == 200 and json.loads(result.body) == {"predictions": [6]}
    assert result.latency_ms > 0
    assert "6" in response.text and "ms" in response.text
    reached = model_server.seen[before:]
    assert len(reached) == 1
    assert reached[0]["path"] == "/v1/models/scorer:predict"
    assert reached[0]["headers"]["host"] == "scorer.fraud.example.com"
    assert reached[0]["headers"]["x-console-principal"] == "alice"
    event = AuditEvent.objects.filter(action="endpoint.try").latest("id")
    assert event.actor_name == "alice" and event.target_id == str(scorer.pk) and event.outcome == "success"
    assert event.details["status"] == 200 and event.details["credential"] == result.credential
    assert event.details["host"] == "scorer.fraud.example.com"


def test_a_viewer_is_refused_by_the_gateway_and_told_why(bob, scorer, model_server):
    grants.grant_create(actor=None, role="viewer", target=scorer.project, user=bob, reason="test")
    before = len(model_server.seen)
    response = _try(bob, scorer, '{"instances": [[1, 2, 3]]}')
    assert response.status_code == 200
    result = response.context["result"]
    assert result.status == 403
    assert "infer" in result.reason and html.escape(result.reason) in response.text
    assert "Forbidden" in response.text
    assert len(model_server.seen) == before  # the model never saw it
    denial = AuditEvent.objects.filter(action="infer.authorize").latest("id")
    assert denial.actor_name == "bob" and denial.details["status"] == 403
    assert AuditEvent.objects.filter(action="endpoint.try").latest("id").outcome == "denied"


def test_an_outsider_cannot_even_find_the_endpoint(outsider, scorer):
    response = _try(outsider, scorer, '{"instances": [[1]]}')
    assert response.status_code == 404


def test_a_body_that_is_not_json_is_a_field_error_and_nothing_is_sent(alice, scorer, model_server):
    grants.grant_create(actor=None, role="caller", target=scorer.project, user=alice, reason="test")
    before = len(model_server.seen)
    response = _try(alice, scorer, '{"instances": [[1, 2')
    assert response.status_code == 400
    assert "Not valid JSON" in response.text
    assert len(model_server.seen) == before
    assert not AuditEvent.objects.filter(action="endpoint.try").exists()


def test_without_javascript_the_answer_is_a_whole_page(alice, scorer):
    grants.grant_create(actor=None, role="caller", target=scorer.project, user=alice, reason="test")
    response = _try(alice, scorer, '{"instances": [[2, 2]]}', htmx=False)
    assert response.status_code == 200
    assert "<html" in response.text and "Try scorer" in response.text and "200" in response.text


def test_the_overview_prefills_the_editor_with_the_example_request(alice, scorer):
    grants.grant_create(actor=None, role="caller", target=scorer.project, user=alice, reason="test")
    client = Client()
    client.force_login(alice)
    page = client.get(reverse("endpoints:endpoint-detail", kwargs={"project": "fraud", "name": "scorer"}))
    panel = next(p for p in page.context["panels"] if p["template"].endswith("try_it/_panel.html"))
    assert json.loads(panel["example"]["payload"]) == panel["example"]["body"]
    assert "instances" in panel["example"]["body"]
    assert 'id="try-it-body"' in page.text and "POST /v1/models/scorer:predict" in page.text


def test_with_the_gateway_down_the_page_says_so_and_the_try_is_audited_as_failed(alice, scorer):
    grants.grant_create(actor=None, role="caller", target=scorer.project, user=alice, reason="test")
    cluster = scorer.project.cluster
    cluster.gateway_address = f"127.0.0.1:{free_port()}"
    cluster.save()
    response = _try(alice, scorer, '{"instances": [[1]]}')
    assert response.status_code == 200
    assert "No answer from the gateway" in response.text
    assert AuditEvent.objects.filter(action="endpoint.try").latest("id").outcome == "failure"


def test_without_a_gateway_address_try_it_says_who_can_set_it(alice):
    fraud, _ = project_with_model("fraud")
    endpoint = endpoint_in(fraud, "scorer")
    grants.grant_create(actor=None, role="caller", target=fraud, user=alice, reason="test")
    client = Client()
    client.force_login(alice)
    page = client.get(reverse("endpoints:endpoint-detail", kwargs={"project": "fraud", "name": "scorer"}))
    assert "has no ingress gateway address" in page.text
    assert _try(alice, endpoint, '{"instances": [[1]]}').status_code == 400
