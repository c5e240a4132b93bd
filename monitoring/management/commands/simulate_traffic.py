"""``python manage.py simulate_traffic``: post simulated KServe payload-logger events to the
console's own ingest receiver, so dashboards have data without a cluster.

Examples::

    # one minute of traffic at 2 calls/s for every endpoint with payload logging on
    python manage.py simulate_traffic --rate 2 --duration 60

    # two hours of history, then 10 minutes live; drift injected on fraud-detection/iris
    python manage.py simulate_traffic --endpoint fraud-detection/iris --backfill-minutes 120 \\
        --duration 600 --drift fraud-detection/iris --drift-shift 1.5

Bounded: it stops after ``--duration`` seconds or ``--count`` calls per endpoint, whichever
comes first. Events go to ``<base>/ingest/kserve/<project ingest key>/`` with ``<base>`` =
``--url`` or ``CONSOLE_INGEST_BASE_URL``; only loopback addresses unless ``--allow-remote``.
"""

from __future__ import annotations

import heapq
import http.client
import ipaddress
import random
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from console.redaction import redact_ingest_keys
from endpoints.models import Endpoint
from endpoints.spec import ingest_url
from monitoring import simulate

MAX_DURATION_SECONDS = 7 * 24 * 3600
MAX_CALLS = 1_000_000
MAX_RATE = 500.0
FOLLOW_SPLIT_SECONDS = 5.0  # how often live traffic re-reads the endpoints' canary share


def _is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class _Sender:
    """Keeps one HTTP connection open and posts events; counts what the receiver refused."""

    def __init__(self, base: str, timeout: float = 10.0):
        parts = urlsplit(base)
        self.scheme, self.host, self.port = parts.scheme, parts.hostname or "", parts.port
        self.prefix = parts.path.rstrip("/")
        self.timeout = timeout
        self.connection = None
        self.sent = 0
        self.failed = 0
        self.last_error = ""
        self.last_status = 0

    def _connect(self):
        cls = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
        self.connection = cls(self.host, self.port, timeout=self.timeout)

    def post(self, path: str, headers: dict[str, str], body: bytes) -> bool:
        for attempt in range(3):
            if self.connection is None:
                self._connect()
            try:
                self.connection.request("POST", self.prefix + path, body=body, headers=headers)
                response = self.connection.getresponse()
                response.read()
                if response.will_close:
                    self.connection.close()
                    self.connection = None
                self.last_status = response.status
                if 200 <= response.status < 300:
                    self.sent += 1
                    return True
                self.failed += 1
                self.last_error = f"HTTP {response.status} from {redact_ingest_keys(path)}"
                return False
            except (OSError, http.client.HTTPException) as exc:
                self.connection.close()
                self.connection = None
                self.last_error = str(exc)
                time.sleep(0.2 * (attempt + 1))
        self.failed += 1
        return False


class Command(BaseCommand):
    help = "Post simulated KServe payload-logger events (request + response) to the console's receiver."

    def add_arguments(self, parser):
        parser.add_argument("--endpoint", action="append", default=[], metavar="PROJECT/NAME",
                            help="Endpoint to simulate (repeatable). Default: every active endpoint whose "
                                 "payload logging is on.")
        parser.add_argument("--rate", type=float, default=1.0, help="Calls per second per endpoint (default 1).")
        parser.add_argument("--duration", type=float, default=60.0,
                            help="Seconds of live traffic (default 60, at most 7 days; 0 with --count only).")
        parser.add_argument("--count", type=int, default=0,
                            help="Stop after this many live calls per endpoint (default: no count bound).")
        parser.add_argument("--latency-ms", type=float, default=40.0, help="Median latency in ms (log-normal).")
        parser.add_argument("--latency-sigma", type=float, default=0.5, help="Log-normal sigma of the latency.")
        parser.add_argument("--error-rate", type=float, default=0.01,
                            help="Share of calls that get no response event (the model failed), 0..1.")
        parser.add_argument("--drift", action="append", default=[], metavar="PROJECT/NAME",
                            help="Inject drift into this endpoint's traffic (repeatable).")
        parser.add_argument("--drift-shift", type=float, default=1.5,
                            help="Shift of numeric features, in reference standard deviations (default 1.5).")
        parser.add_argument("--drift-minutes", type=float, default=60.0,
                            help="Back-filled calls of drifting endpoints are drifted only within this many "
                                 "minutes before now (live calls always are). Default 60.")
        parser.add_argument("--backfill-minutes", type=float, default=0.0,
                            help="First post this many minutes of history (events with past timestamps).")
        parser.add_argument("--backfill-calls", type=int, default=600,
                            help="At most this many back-filled calls per endpoint (default 600).")
        parser.add_argument("--canary-latency-factor", type=float, default=1.3,
                            help="The canary's latency as a multiple of the primary's (default 1.3).")
        parser.add_argument("--canary-error-rate", type=float, default=None,
                            help="The canary's own error rate, 0..1 (default: the same as --error-rate).")
        parser.add_argument("--canary-drift-shift", type=float, default=0.0,
                            help="Drift the canary's features and predictions by this many reference standard "
                                 "deviations (default 0: none).")
        parser.add_argument("--rows", type=int, default=1, help="Rows (instances) per request (default 1).")
        parser.add_argument("--principal", action="append", default=[],
                            help="Caller names carried as X-Console-Principal (repeatable; default demo-client).")
        parser.add_argument("--url", default="", help="Base URL of the receiver (default CONSOLE_INGEST_BASE_URL).")
        parser.add_argument("--allow-remote", action="store_true",
                            help="Allow a receiver that is not on a loopback address.")
        parser.add_argument("--seed", type=int, default=None, help="Random seed (repeatable runs).")

    # --- validation ----------------------------------------------------------------------------

    def _check(self, options) -> None:
        if not 0 < options["rate"] <= MAX_RATE:
            raise CommandError(f"--rate must be above 0 and at most {MAX_RATE:g} calls per second.")
        if options["duration"] < 0 or options["duration"] > MAX_DURATION_SECONDS:
            raise CommandError("--duration must lie between 0 and 7 days.")
        if not 0 <= options["count"] <= MAX_CALLS:
            raise CommandError(f"--count must lie between 0 and {MAX_CALLS}.")
        if options["duration"] == 0 and options["count"] == 0 and options["backfill_minutes"] == 0:
            raise CommandError("Give --duration or --count (the simulation must be bounded).")
        if not 0 <= options["error_rate"] <= 1:
            raise CommandError("--error-rate must lie between 0 and 1.")
        if options["canary_error_rate"] is not None and not 0 <= options["canary_error_rate"] <= 1:
            raise CommandError("--canary-error-rate must lie between 0 and 1.")
        if not 0 < options["canary_latency_factor"] <= 100:
            raise CommandError("--canary-latency-factor must be above 0 and at most 100.")
        if not 1 <= options["rows"] <= 1000:
            raise CommandError("--rows must lie between 1 and 1000.")
        if not 0 <= options["backfill_minutes"] <= 30 * 24 * 60:
            raise CommandError("--backfill-minutes must lie between 0 and 30 days.")

    def _base_url(self, options) -> str:
        base = (options["url"] or settings.CONSOLE_INGEST_BASE_URL).rstrip("/")
        parts = urlsplit(base)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise CommandError(f"The receiver URL {base!r} is not an http(s) URL.")
        if not options["allow_remote"] and not _is_loopback(parts.hostname):
            raise CommandError(f"{parts.hostname} is not a loopback address; pass --allow-remote to post there.")
        return base

    def _endpoints(self, names: list[str]) -> list[Endpoint]:
        qs = Endpoint.objects.select_related("project", "model_version__model", "canary_version__model")
        if not names:
            return list(qs.exclude(logging_mode=Endpoint.LoggingMode.OFF).exclude(state=Endpoint.State.DELETING)
                        .order_by("project__name", "name"))
        found = []
        for name in names:
            project, sep, endpoint = name.partition("/")
            if not sep:
                raise CommandError(f"Name endpoints as PROJECT/NAME, not {name!r}.")
            match = qs.filter(project__name=project, name=endpoint).first()
            if match is None:
                raise CommandError(f"No endpoint {name}.")
            found.append(match)
        return found

    # --- traffic ---------------------------------------------------------------------------------

    def _traffic(self, endpoint: Endpoint, options) -> simulate.TrafficProfile:
        versions = []
        primary = endpoint.model_version
        canary = endpoint.canary_version
        canary_share = (endpoint.canary_traffic_percent or 0) if canary is not None else 0
        for version, share in ((primary, 100 - canary_share), (canary, canary_share)):
            if version is None or share <= 0:
                continue
            profile = version.reference_profile if isinstance(version.reference_profile, dict) else None
            versions.append((f"{version.model.name}:{version.version}", float(share), profile,
                             list(version.input_signature or [])))
        return simulate.TrafficProfile(
            name=endpoint.name, namespace=endpoint.project.namespace, protocol=endpoint.protocol, versions=versions,
            latency_ms=options["latency_ms"], latency_sigma=options["latency_sigma"],
            error_rate=options["error_rate"], rows_per_request=options["rows"],
            principals=tuple(options["principal"] or ["demo-client"]),
            slower_canary=options["canary_latency_factor"], canary_error_rate=options["canary_error_rate"],
            canary_drift_shift=options["canary_drift_shift"],
        )

    def handle(self, *args, **options):
        self._check(options)
        base = self._base_url(options)
        endpoints = self._endpoints(options["endpoint"])
        if not endpoints:
            raise CommandError("No endpoint to simulate: none has payload logging on.")
        drifting = set()
        for name in options["drift"]:
            drifting.update(e.pk for e in self._endpoints([name]))
        rng = random.Random(options["seed"])
        sender = _Sender(base)
        plans = []
        for endpoint in endpoints:
            traffic = self._traffic(endpoint, options)
            if endpoint.pk in drifting:
                traffic = replace(traffic, drift_shift=options["drift_shift"])
            plans.append((endpoint, traffic, urlsplit(ingest_url(endpoint.project)).path))
            mode = endpoint.logging_mode
            if mode != Endpoint.LoggingMode.ALL:
                self.stderr.write(f"Note: {endpoint.project.name}/{endpoint.name} logs in mode {mode!r}; the real "
                                  "logger would not send both events. Simulating mode 'all'.")

        now = datetime.now(tz=UTC)
        drift_from = now - timedelta(minutes=options["drift_minutes"])
        calls = 0
        if options["backfill_minutes"] > 0:
            calls += self._backfill(plans, sender, rng, now, drift_from, options)
        calls += self._live(plans, sender, rng, options, drifting)
        self.stdout.write(f"Simulated {calls} calls on {len(plans)} endpoint(s): {sender.sent} events accepted, "
                          f"{sender.failed} refused{': ' + sender.last_error if sender.failed else ''}.")
        if sender.failed and not sender.sent:
            raise CommandError(f"The receiver at {base} accepted nothing ({sender.last_error}).")

    def _send(self, sender: _Sender, path: str, call: simulate.Call) -> None:
        for headers, body in call.events:
            sender.post(path, headers, body)

    def _backfill(self, plans, sender, rng, now, drift_from, options) -> int:
        span = options["backfill_minutes"] * 60
        queue = []
        for order in range(len(plans)):
            count = int(min(options["backfill_calls"], options["rate"] * span))
            for index in range(count):
                at = now - timedelta(seconds=span * (1 - (index + rng.random()) / max(count, 1)))
                queue.append((at, order, index))
        queue.sort()
        for at, order, _ in queue:
            _, traffic, path = plans[order]
            drifted = traffic.drift_shift != 0 and at >= drift_from
            self._send(sender, path, simulate.make_call(traffic, at=at, rng=rng, drifted=drifted, recorded=now))
        return len(queue)

    def _follow_splits(self, plans, options, drifting) -> None:
        """Re-read each endpoint's versions and canary share: an automated rollout (or a person)
        moves the split while the traffic runs, and the simulated callers must follow it."""
        for order, (endpoint, _traffic, path) in enumerate(plans):
            fresh = (Endpoint.objects.select_related("project", "model_version__model", "canary_version__model")
                     .filter(pk=endpoint.pk).first())
            if fresh is None:
                continue
            updated = self._traffic(fresh, options)
            if fresh.pk in drifting:
                updated = replace(updated, drift_shift=options["drift_shift"])
            plans[order] = (fresh, updated, path)

    def _live(self, plans, sender, rng, options, drifting=frozenset()) -> int:
        duration = options["duration"] or float("inf")
        limit = options["count"] or MAX_CALLS
        if options["duration"] == 0 and options["count"] == 0:
            return 0
        started = time.monotonic()
        heap = [(started + rng.expovariate(options["rate"]), order) for order in range(len(plans))]
        heapq.heapify(heap)
        sent = [0] * len(plans)
        followed = started
        while heap:
            if time.monotonic() - followed >= FOLLOW_SPLIT_SECONDS:
                self._follow_splits(plans, options, drifting)
                followed = time.monotonic()
            due, order = heapq.heappop(heap)
            if due - started > duration:
                continue
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            endpoint, traffic, path = plans[order]
            call = simulate.make_call(traffic, at=datetime.now(tz=UTC), rng=rng, drifted=traffic.drift_shift != 0)
            self._send(sender, path, call)
            if sender.last_status == 404:  # the project's ingest key was rotated: follow it
                endpoint.project.refresh_from_db(fields=["ingest_key"])
                plans[order] = (endpoint, traffic, urlsplit(ingest_url(endpoint.project)).path)
            sent[order] += 1
            if sent[order] < limit:
                heapq.heappush(heap, (due + rng.expovariate(options["rate"]), order))
        return sum(sent)
