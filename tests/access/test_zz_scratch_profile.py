import cProfile
import io
import pstats
import time

import pytest
from django.core.cache import caches

from console.access import grants, tokens
from console.access.authz import grpc_server
from tests.access.test_authz_grpc import _Context, check_request
from tests.console.access_factories import endpoint_in, project_with_model
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

def test_profile(settings):
    caches["authz"].clear()
    alice = UserFactory(username="alice")
    fraud, _ = project_with_model("fraud")
    endpoint_in(fraud, "scorer")
    grants.grant_create(actor=None, role="caller", target=fraud, user=alice, reason="x")
    _, token = tokens.token_create(actor=alice, user=alice, name="i", scopes=["infer"])
    req = check_request("scorer.fraud.example.com", token=token)
    svc = grpc_server.AuthorizationService()
    ctx = _Context()
    for _ in range(200):
        svc.Check(req, ctx)
    n = 3000
    t = time.perf_counter()
    for _ in range(n):
        svc.Check(req, ctx)
    print("\nper check us", (time.perf_counter() - t) / n * 1e6)
    pr = cProfile.Profile()
    pr.enable()
    for _ in range(n):
        svc.Check(req, ctx)
    pr.disable()
    s = io.StringIO()
    pstats.Stats(pr, stream=s).sort_stats("tottime").print_stats(25)
    print(s.getvalue())
    t = time.perf_counter()
    c = time.process_time()
    settings.AUTHZ_ALLOW_GROUP_COMMIT = True
    for _ in range(n):
        svc.Check(req, ctx)
    print("group commit on, serial: per check us", (time.perf_counter() - t) / n * 1e6, "cpu", (time.process_time()-c)/n*1e6)
