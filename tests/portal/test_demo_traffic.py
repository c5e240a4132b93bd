"""``demo_traffic`` (what make run starts after the back-filled history): real requests through a
real Envoy that asks the console's ext_authz, to the demo endpoints that serve, as principals
holding tokens made for the run and revoked after it; drifted inputs for the drifting endpoint;
endpoints answering from a simulation are left alone."""

from __future__ import annotations

import statistics

import pytest
from django.core.management import call_command

from console.access import grants
from console.access.models import ApiToken
from endpoints.models import Cluster, EndpointStatus
from endpoints.profiles import profile_from_file
from tests.console.access_factories import endpoint_in, project_with_model

pytestmark = pytest.mark.django_db(transaction=True)

REFERENCE = ("sepal_length,sepal_width,prediction\n"
             + "".join(f"{5 + (i % 10) / 10:.1f},{3 + (i % 7) / 10:.1f},{i % 3}\n" for i in range(60))).encode()


@pytest.fixture
def demo_endpoints(console_gateway, alice):
    fraud, _ = project_with_model("fraud")
    Cluster.objects.filter(pk=fraud.cluster_id).update(kind=Cluster.Kind.SANDBOX, gateway_address=console_gateway)
    served = endpoint_in(fraud, "scorer")
    simulated = endpoint_in(fraud, "chat")
    for endpoint in (served, simulated):
        EndpointStatus.objects.filter(endpoint=endpoint).update(ready=True)
        version = endpoint.model_version
        version.reference_profile = profile_from_file(REFERENCE, "reference.csv", prediction_column="prediction")
        version.save()
    simulated.model_version.model_format = "huggingface"
    simulated.model_version.save()
    grants.grant_create(actor=None, role="caller", target=fraud, user=alice, reason="test")
    return served, simulated


def _run(*extra):
    call_command("demo_traffic", "--endpoint", "fraud/scorer", "--endpoint", "fraud/chat", "--principal", "alice",
                 "--rate", "20", "--rows", "4", "--count", "6", "--duration", "60", "--seed", "3", *extra)


def test_it_calls_the_endpoints_that_serve_through_the_gateway_as_its_principals(demo_endpoints, model_server):
    before = len(model_server.seen)
    _run()
    calls = model_server.seen[before:]
    assert len(calls) == 6
    assert {c["headers"]["host"] for c in calls} == {"scorer.fraud.example.com"}  # not the simulated one
    assert {c["headers"]["x-console-principal"] for c in calls} == {"alice"}
    assert all(c["path"] == "/v1/models/scorer:predict" and len(c["body"]["instances"]) == 4 for c in calls)
    token = ApiToken.objects.get(name="demo traffic")
    assert token.user.username == "alice" and token.scopes == ["infer"] and token.revoked_at is not None


def test_drifted_inputs_move_away_from_the_reference(demo_endpoints, model_server):
    before = len(model_server.seen)
    _run()
    steady = [row[0] for c in model_server.seen[before:] for row in c["body"]["instances"]]
    middle = len(model_server.seen)
    _run("--drift", "fraud/scorer", "--drift-shift", "3")
    drifted = [row[0] for c in model_server.seen[middle:] for row in c["body"]["instances"]]
    assert statistics.mean(drifted) > statistics.mean(steady) + 0.4
