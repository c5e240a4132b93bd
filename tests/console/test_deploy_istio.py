"""The Istio example wires Envoy to the console the way console/access/authz/ expects."""

from pathlib import Path

import yaml
from django.conf import settings

from console.access.authz.decision import PRINCIPAL_HEADER

ISTIO = Path(__file__).resolve().parents[2] / "deploy" / "istio"


def _mesh() -> dict:
    configmap = yaml.safe_load((ISTIO / "mesh-extension-provider.yaml").read_text())
    return yaml.safe_load(configmap["data"]["mesh"])


def _provider() -> dict:
    (provider,) = _mesh()["extensionProviders"]
    return provider


def test_the_mesh_normalises_paths_before_the_check():
    # %2F and %5C decoded, dot segments resolved, slashes merged, before ext_authz, routing
    # and the upstream see the path (the console refuses un-normalised paths as well).
    assert _mesh()["pathNormalization"] == {"normalization": "DECODE_AND_MERGE_SLASHES"}


def test_the_provider_forwards_only_authorization_fails_closed_and_has_a_timeout():
    provider = _provider()
    http = provider["envoyExtAuthzHttp"]
    assert http["pathPrefix"] == settings.AUTHZ_PATH_PREFIX
    assert http["includeRequestHeadersInCheck"] == ["authorization"]
    assert http["failOpen"] is False
    assert http["timeout"].endswith("s") and float(http["timeout"][:-1]) <= 1
    assert http["headersToUpstreamOnAllow"] == [PRINCIPAL_HEADER]


def test_the_policies_are_custom_and_name_the_provider():
    policies = list(yaml.safe_load_all((ISTIO / "authorization-policy.yaml").read_text()))
    assert policies
    for policy in policies:
        assert policy["kind"] == "AuthorizationPolicy"
        assert policy["spec"]["action"] == "CUSTOM"
        assert policy["spec"]["provider"]["name"] == _provider()["name"]
        operations = [op["operation"] for rule in policy["spec"]["rules"] for op in rule["to"]]
        assert all("/metrics" in op["notPaths"] for op in operations)
