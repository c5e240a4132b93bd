"""``python manage.py demo_traffic``: the demo's callers — real inference requests sent through the
cluster's ingress gateway to the demo endpoints that really serve, so latency percentiles, the
canary split, drift and the audit trail come from requests the models answered.

Each principal calls with an API token of its own (infer scope), created when the command starts
and revoked when it stops; the plaintext lives in this process only. Inputs follow each version's
reference profile (the values the model was registered with); ``--drift`` shifts the numeric ones
for an endpoint, as a changed population would. Endpoints that are not Ready, have no gateway or
answer from a simulation are skipped and checked again every minute.

Example (what ``make run`` starts)::

    python manage.py demo_traffic --endpoint fraud-detection/iris \\
        --endpoint fraud-detection/transaction-amount --drift fraud-detection/iris \\
        --principal fraud-scorer-client --principal alice --rate 0.2 --duration 604800
"""

from __future__ import annotations

import http.client
import json
import random
import time
from datetime import timedelta
from urllib.parse import urlsplit

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from console.access import tokens
from console.permissions import is_platform_admin
from endpoints import calling, selectors
from endpoints.models import Endpoint
from monitoring import simulate

MAX_RATE = 20.0
RECHECK_SECONDS = 60.0


def request_body(endpoint: Endpoint, names: list[str], rows: list[dict]) -> dict:
    """The endpoint's protocol's request for ``rows`` (V1 ``instances``, v2 ``inputs``)."""
    matrix = [[row[name] for name in names] for row in rows]
    if endpoint.protocol == Endpoint.Protocol.V2:
        numeric = all(isinstance(value, int | float) for row in matrix for value in row)
        if numeric:
            return {"inputs": [{"name": "input-0", "shape": [len(matrix), len(names)], "datatype": "FP32",
                                "data": [value for row in matrix for value in row]}]}
        return {"inputs": [{"name": name, "shape": [len(matrix)],
                            "datatype": "FP32" if all(isinstance(r[i], int | float) for r in matrix) else "BYTES",
                            "data": [r[i] for r in matrix]} for i, name in enumerate(names)]}
    return {"instances": matrix}


class Command(BaseCommand):
    help = "Send real inference requests through the gateway to the demo endpoints that serve."

    def add_arguments(self, parser):
        parser.add_argument("--endpoint", action="append", default=[], metavar="PROJECT/NAME", required=True)
        parser.add_argument("--principal", action="append", default=[], metavar="USERNAME",
                            help="Who calls (repeatable; each gets an infer-scoped token for the run).")
        parser.add_argument("--rate", type=float, default=0.2, help="Calls per second per endpoint (default 0.2).")
        parser.add_argument("--rows", type=int, default=5, help="Rows per request (default 5).")
        parser.add_argument("--duration", type=float, default=600.0, help="Seconds to run (default 600).")
        parser.add_argument("--count", type=int, default=0, help="Stop after this many calls per endpoint.")
        parser.add_argument("--drift", action="append", default=[], metavar="PROJECT/NAME")
        parser.add_argument("--drift-shift", type=float, default=1.5,
                            help="Drift in reference standard deviations (default 1.5).")
        parser.add_argument("--seed", type=int, default=None)

    def handle(self, *args, **options):
        if not 0 < options["rate"] <= MAX_RATE:
            raise CommandError(f"--rate must be above 0 and at most {MAX_RATE:g}.")
        if not 1 <= options["rows"] <= 1000:
            raise CommandError("--rows must lie between 1 and 1000.")
        if options["duration"] <= 0 and options["count"] <= 0:
            raise CommandError("Give --duration or --count (the traffic must be bounded).")
        names = [self._split(n) for n in options["endpoint"]]
        drifting = {self._split(n) for n in options["drift"]}
        issued = self._tokens(options["principal"] or ["alice"], options["duration"])
        rng = random.Random(options["seed"])
        try:
            sent = self._run(names, drifting, issued, rng, options)
        finally:
            for actor, token, _plaintext in issued:
                tokens.token_revoke(actor=actor, token=token)
        summary = ", ".join(f"{name}: {counts}" for name, counts in sent.items()) or "nothing"
        self.stdout.write(f"Demo traffic done ({summary}).")

    @staticmethod
    def _split(name: str) -> tuple[str, str]:
        project, sep, endpoint = name.partition("/")
        if not sep:
            raise CommandError(f"Name endpoints as PROJECT/NAME, not {name!r}.")
        return project, endpoint

    def _tokens(self, usernames: list[str], duration: float) -> list[tuple]:
        """One infer-scoped token per principal (a platform admin issues those of service
        accounts), expiring an hour after the run would end."""
        User = get_user_model()
        admin = next((u for u in User.objects.filter(is_active=True, is_superuser=True).order_by("pk")
                      if is_platform_admin(u)), None)
        expires = timezone.now() + timedelta(seconds=max(duration, 60) + 3600)
        issued = []
        for username in usernames:
            user = User.objects.filter(username=username, is_active=True).first()
            if user is None:
                raise CommandError(f"No active user {username!r}.")
            actor = admin if user.is_service_account else user
            if actor is None:
                raise CommandError(f"No platform admin to issue {username}'s token.")
            token, plaintext = tokens.token_create(actor=actor, user=user, name="demo traffic", scopes=["infer"],
                                                   expires_at=expires)
            issued.append((actor, token, plaintext))
        return issued

    def _targets(self, names) -> dict:
        """Endpoint → (gateway URL, Host) for those that really serve now."""
        targets = {}
        for project, name in names:
            endpoint = selectors.endpoint_queryset().filter(project__name=project, name=name).first()
            if endpoint is None or endpoint.state == Endpoint.State.DELETING:
                continue
            status = selectors.endpoint_status(endpoint)
            if status is None or not status.ready or not status.url or calling.serving(endpoint)["simulated"]:
                continue
            base, host = calling.gateway_target(endpoint, status.url.rstrip("/"))
            if host:
                targets[(project, name)] = (endpoint, base, host)
        return targets

    def _run(self, names, drifting, issued, rng, options) -> dict:
        started = time.monotonic()
        deadline = started + options["duration"] if options["duration"] > 0 else float("inf")
        interval = 1.0 / options["rate"]
        sent: dict[str, dict[int, int]] = {}
        targets, checked = {}, 0.0
        due = dict.fromkeys(names, started)
        connections: dict[str, http.client.HTTPConnection] = {}
        while time.monotonic() < deadline:
            now = time.monotonic()
            if now - checked >= RECHECK_SECONDS or not targets:
                targets, checked = self._targets(names), now
                if not targets:
                    time.sleep(min(5.0, max(0.0, deadline - now)))
                    continue
            key = min((k for k in due if k in targets), key=due.get, default=None)
            if key is None:
                time.sleep(1.0)
                continue
            pause = due[key] - time.monotonic()
            if pause > 0:
                time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
                if time.monotonic() >= deadline:
                    break
            due[key] += rng.expovariate(1.0 / interval)
            endpoint, base, host = targets[key]
            counts = sent.setdefault(f"{key[0]}/{key[1]}", {})
            status = self._call(connections, endpoint, base, host, rng.choice(issued)[2], rng,
                                options["drift_shift"] if key in drifting else 0.0, options["rows"])
            counts[status] = counts.get(status, 0) + 1
            if options["count"] and all(sum(sent.get(f"{p}/{n}", {}).values()) >= options["count"]
                                        for p, n in targets):
                break
        for connection in connections.values():
            connection.close()
        return sent

    def _call(self, connections, endpoint, base, host, plaintext, rng, shift, rows) -> int:
        version = endpoint.model_version
        profile = version.reference_profile if isinstance(version.reference_profile, dict) else None
        names, values = simulate.feature_rows(profile, list(version.input_signature or []), rows, rng, shift)
        body = json.dumps(request_body(endpoint, names, values)).encode()
        route = (f"/v2/models/{endpoint.name}/infer" if endpoint.protocol == Endpoint.Protocol.V2
                 else f"/v1/models/{endpoint.name}:predict")
        headers = {"Host": host, "Authorization": f"Bearer {plaintext}", "Content-Type": "application/json"}
        for _attempt in range(2):
            connection = connections.get(base)
            if connection is None:
                parts = urlsplit(base)
                cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
                connection = connections[base] = cls(parts.hostname, parts.port, timeout=30)
            try:
                connection.request("POST", route, body=body, headers=headers)
                response = connection.getresponse()
                response.read()
                if response.will_close:
                    connection.close()
                    connections.pop(base, None)
                return response.status
            except (OSError, http.client.HTTPException):
                connection.close()
                connections.pop(base, None)
        return 0
