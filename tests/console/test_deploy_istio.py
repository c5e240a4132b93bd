"""The Istio example wires Envoy to the console the way console/access/authz/ expects."""

from pathlib import Path

import yaml
from django.conf import settings

from console.access.authz.decision import PRINCIPAL_HEADER

ISTIO = Path(__file__).resolve().parents[2] / "deploy" / "istio"


def _mesh() -> dict:
    configmap = yaml.safe_load((ISTIO / "mesh-extension-provider.yaml").read_text())
    return yaml.safe_load(configmap["data"]["mesh"])


def _providers() -> dict:
    """{provider kind: provider}: the mesh declares one per protocol (gRPC and HTTP)."""
    providers = {}
    for provider in _mesh()["extensionProviders"]:
        (kind,) = (key for key in provider if key != "name")
        providers[kind] = provider
    return providers


def test_the_mesh_normalises_paths_before_the_check():
    # %2F and %5C decoded, dot segments resolved, slashes merged, before ext_authz, routing
    # and the upstream see the path (the console refuses un-normalised paths as well).
    assert _mesh()["pathNormalization"] == {"normalization": "DECODE_AND_MERGE_SLASHES"}


def test_both_providers_fail_closed_with_a_short_timeout():
    providers = _providers()
    assert set(providers) == {"envoyExtAuthzGrpc", "envoyExtAuthzHttp"}
    for kind, provider in providers.items():
        config = provider[kind]
        assert config["failOpen"] is False
        assert config["statusOnError"] == "503"
        assert config["timeout"].endswith("s") and float(config["timeout"][:-1]) <= 1


def test_the_http_provider_forwards_only_authorization_and_passes_the_principal_upstream():
    http = _providers()["envoyExtAuthzHttp"]["envoyExtAuthzHttp"]
    assert http["pathPrefix"] == settings.AUTHZ_PATH_PREFIX
    assert http["includeRequestHeadersInCheck"] == ["authorization"]
    assert http["headersToUpstreamOnAllow"] == [PRINCIPAL_HEADER]


def test_the_policies_are_custom_and_name_a_declared_provider():
    names = {provider["name"] for provider in _providers().values()}
    policies = list(yaml.safe_load_all((ISTIO / "authorization-policy.yaml").read_text()))
    assert policies
    for policy in policies:
        assert policy["kind"] == "AuthorizationPolicy"
        assert policy["spec"]["action"] == "CUSTOM"
        assert policy["spec"]["provider"]["name"] in names
        operations = [op["operation"] for rule in policy["spec"]["rules"] for op in rule["to"]]
        assert all("/metrics" in op["notPaths"] for op in operations)
