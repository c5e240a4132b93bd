"""The README's "How to call it (the sandbox)" works when pasted into a shell: its lines run
verbatim with bash against the demo (seeded as ``make run`` seeds it, iris trained at seed time and
kept on the local S3 server) on a sandbox whose models really serve behind its Envoy gateway,
which asks the live console. Only the two ``export`` lines — the gateway address and the token
the reader pastes — are given by the test (its gateway has its own port)."""

from __future__ import annotations

import http.client
import json
import re
import subprocess
from pathlib import Path

import pytest

from console.access import tokens
from console.access.authz import journal
from console.access.authz.decision import clear_cached_decisions
from console.portal import demo
from endpoints.services.reconciler import reconcile_all
from tests.fixtures.kube import wait_for
from tests.portal.test_demo_models import demo_bucket  # noqa: F401  (fixture)

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_commands() -> str:
    text = README.read_text()
    section = text[text.index("### How to call it (the sandbox)"):]
    return re.search(r"```sh\n(.*?)```", section, re.S).group(1)


def _ready(cluster, namespace: str, name: str):
    isvc = cluster.server.store.get("inferenceservices", namespace, name)
    conditions = ((isvc or {}).get("status") or {}).get("conditions") or []
    return isvc if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions) else None


def _answers(port: int, token: str) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("POST", "/v1/models/iris:predict", body=b'{"instances": [[5.1, 3.5, 1.4, 0.2]]}',
                           headers={"Host": "iris.fraud-detection.example.com", "Authorization": f"Bearer {token}",
                                    "Content-Type": "application/json"})
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


@pytest.fixture
def allow_journal(settings, tmp_path):
    """Allows journaled as ``make run`` journals them (the suite commits each one for its own
    process): a commit into the suite's in-memory SQLite can wait on a lock past the gateway's
    0.5 s ext_authz timeout under load, and Envoy then answers 503 with an empty body."""
    settings.AUTHZ_ALLOW_JOURNAL_DIR = str(tmp_path / "authz-journal")
    journal.close_journal()
    yield
    journal.close_journal()


def test_the_readmes_how_to_call_it_works_against_the_demo(
        serving_cluster, demo_bucket, live_server, alice, bob, settings, monkeypatch, allow_journal):  # noqa: F811
    settings.CONSOLE_INGEST_BASE_URL = live_server.url
    clear_cached_decisions()
    gateway = f"127.0.0.1:{serving_cluster.gateway_port}"
    monkeypatch.setenv("SANDBOX_URL", serving_cluster.url)
    monkeypatch.delenv("SANDBOX_TOKEN_FILE", raising=False)
    monkeypatch.setenv("SANDBOX_GATEWAY_ADDRESS", gateway)
    demo.seed()
    reconcile_all()  # what the worker does next: apply the endpoints the seed left to it
    for name in ("iris", "iris-batch"):
        wait_for(lambda name=name: _ready(serving_cluster, "fraud-detection", name), 180, f"{name} Ready",
                 interval=0.5)
    _token, plaintext = tokens.token_create(actor=alice, user=alice, name="README", scopes=["infer"])
    wait_for(lambda: _answers(serving_cluster.gateway_port, plaintext), 120, "iris to answer", interval=1)

    commands = readme_commands()
    exports = [line for line in commands.splitlines() if line.startswith("export ")]
    assert [line.split("=")[0] for line in exports] == ["export GATEWAY", "export TOKEN"]
    assert exports[0] == "export GATEWAY=127.0.0.1:8081"  # what make run starts
    pasted = "\n".join(line for line in commands.splitlines() if line not in exports)
    run = subprocess.run(["bash", "-euo", "pipefail", "-c", pasted], capture_output=True, text=True, timeout=300,  # noqa: S603, S607
                         env={"PATH": "/usr/bin:/bin", "GATEWAY": gateway, "TOKEN": plaintext})
    assert run.returncode == 0, run.stderr
    lines = run.stdout.strip().splitlines()
    assert len(lines) == 3, f"expected the v1 answer, the v2 answer and 401; got:\n{run.stdout}\n{run.stderr}"
    v1, v2, unauthenticated = lines
    assert json.loads(v1) == {"predictions": [0, 2]}
    assert v1 == '{"predictions":[0,2]}'  # as the README shows it
    answer = json.loads(v2)
    assert answer["model_name"] == "iris-batch" and answer["outputs"][0]["data"] == [0]
    assert unauthenticated == "401"
