"""Synthetic payload-logger traffic for demos and tests: the CloudEvents KServe's agent sends.

``simulate_traffic`` (the management command) posts what this module builds to the console's
own receiver over HTTP, so the whole path — receiver, ingest batch, pairing, consumers,
rollups, drift — runs as it does for a real cluster. Each simulated inference is one request
event and, unless it "failed", one response event: binary-mode CloudEvents 1.0 with the
headers of KServe's agent (docs/kserve.md §6): the same ``Ce-Id`` on both, ``Ce-Source``
``http://localhost:9081/``, an empty ``Ce-Endpoint``, ``Ce-Metadata`` carrying the caller as
``X-Console-Principal`` and ``Ce-Annotations`` the ``inference-console.io/model-version``
annotation, and the request's Content-Type on both events. A failed call has a request event
only: the logger logs responses only for HTTP 200.

Feature values are drawn from the model version's reference profile (a bin by its proportion,
then uniformly inside it), so undrifted traffic matches the reference; drift shifts numeric
features by a number of reference standard deviations and reverses categorical proportions.
A canary (every version after the first) can be made slower (``slower_canary``), more
error-prone (``canary_error_rate``) or drifting (``canary_drift_shift``) on its own, which the
automated-rollout demo and tests use (docs/rollouts.md).
"""

from __future__ import annotations

import json
import math
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

REQUEST_TYPE = "org.kubeflow.serving.inference.request"
RESPONSE_TYPE = "org.kubeflow.serving.inference.response"
AGENT_SOURCE = "http://localhost:9081/"
ANNOTATION_MODEL_VERSION = "inference-console.io/model-version"
PRINCIPAL_HEADER = "X-Console-Principal"


@dataclass(frozen=True)
class TrafficProfile:
    """How one endpoint's traffic looks: who serves it and how it behaves."""

    name: str
    namespace: str
    protocol: str  # v1 | v2 | openai
    versions: list[tuple[str, float, dict | None, list[dict]]]  # (annotation, traffic share, profile, signature)
    latency_ms: float = 40.0
    latency_sigma: float = 0.5
    error_rate: float = 0.01
    drift_shift: float = 0.0  # in reference standard deviations (0: none)
    rows_per_request: int = 1
    principals: tuple[str, ...] = ("alice",)
    slower_canary: float = 1.3  # latency factor of every version but the first
    # How the canary (every version but the first) behaves apart from its latency, so a demo or
    # a test can make it healthy, more error-prone or drifting: its own error rate (None: the
    # same as the primary's) and a drift shift of its features and predictions.
    canary_error_rate: float | None = None
    canary_drift_shift: float = 0.0


@dataclass
class Call:
    """One simulated inference: its two events (or only the request when it failed)."""

    event_id: str
    request_time: datetime
    response_time: datetime | None
    events: list[tuple[dict[str, str], bytes]] = field(default_factory=list)


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _integer_valued(feature: dict) -> bool:
    values = [feature.get("min"), feature.get("max"), *feature.get("cuts", [])]
    return all(isinstance(v, int | float) and float(v).is_integer() for v in values if v is not None)


def sample_value(feature: dict, rng: random.Random, *, shift: float = 0.0):
    """One value of a profile feature, optionally drifted."""
    proportions = feature.get("proportions") or [1.0]
    if feature.get("type") == "categorical":
        categories = feature.get("categories") or ["value"]
        weights = list(reversed(proportions)) if shift else proportions
        category = rng.choices(categories, weights=weights)[0]
        return f"unseen-{rng.randrange(3)}" if category == "__other__" else category
    cuts = [float(c) for c in feature.get("cuts", [])]
    low = float(feature.get("min", cuts[0] - 1 if cuts else 0.0))
    high = float(feature.get("max", cuts[-1] + 1 if cuts else 1.0))
    index = rng.choices(range(len(proportions)), weights=proportions)[0]
    lower = cuts[index - 1] if index > 0 else low
    upper = cuts[index] if index < len(cuts) else high
    if _integer_valued(feature):
        value = lower if index > 0 else low
    else:
        value = rng.uniform(lower, upper) if upper > lower else lower
    std = float(feature.get("std") or 0.0) or max(high - low, 1.0) / 4
    value += shift * std
    if _integer_valued(feature):
        return int(round(value))
    return round(value, 4)


def _signature_rows(signature: list[dict], count: int, rng: random.Random, shift: float) -> list[dict]:
    rows = []
    for _ in range(count):
        rows.append({f["name"]: (round(rng.gauss(shift, 1.0), 4) if f.get("type", "numeric") == "numeric"
                                 else rng.choice(["a", "b", "c"])) for f in signature})
    return rows


def feature_rows(profile: dict | None, signature: list[dict], count: int, rng: random.Random,
                 shift: float = 0.0) -> tuple[list[str], list[dict]]:
    """``count`` rows of features (names in the model's input order) and their values."""
    if profile and profile.get("features"):
        by_name = {f["name"]: f for f in profile["features"]}
        names = [f["name"] for f in signature if f.get("name") in by_name] or list(by_name)
        rows = [{name: sample_value(by_name[name], rng, shift=shift) for name in names} for _ in range(count)]
        return names, rows
    names = [f["name"] for f in signature if f.get("name")]
    return names, _signature_rows(signature, count, rng, shift)


def predictions(profile: dict | None, count: int, rng: random.Random, shift: float = 0.0) -> list:
    prediction = (profile or {}).get("prediction")
    if prediction:
        return [sample_value(prediction, rng, shift=shift / 2) for _ in range(count)]
    return [rng.randrange(2) for _ in range(count)]


def bodies(protocol: str, model: str, names: list[str], rows: list[dict], outputs: list,
           rng: random.Random) -> tuple[bytes, bytes, str]:
    """Request body, response body and Content-Type of one call in the endpoint's protocol."""
    if protocol == "openai":
        question = rng.choice(["How do I reset my password?", "Where is my order?", "Cancel my subscription.",
                               "Which plan includes SSO?"])
        prompt_tokens = len(question.split()) * 3 + rng.randint(10, 30)
        completion_tokens = rng.randint(20, 400)
        request = {"model": model, "messages": [{"role": "user", "content": question}], "max_tokens": 512}
        response = {"id": f"chatcmpl-{uuid.uuid4().hex[:12]}", "object": "chat.completion", "model": model,
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": "Here is what you can do."}}],
                    "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                              "total_tokens": prompt_tokens + completion_tokens}}
    elif protocol == "v2":
        inputs = []
        for name in names:
            values = [row.get(name) for row in rows]
            numeric = all(isinstance(v, int | float) for v in values)
            inputs.append({"name": name, "shape": [len(rows)], "datatype": "FP32" if numeric else "BYTES",
                           "data": values})
        integer = all(isinstance(v, int) for v in outputs)
        request = {"id": str(uuid.uuid4()), "inputs": inputs}
        response = {"model_name": model, "id": request["id"],
                    "outputs": [{"name": "output-0", "shape": [len(outputs)],
                                 "datatype": "INT64" if integer else "FP32", "data": outputs}]}
    else:
        request = {"instances": [[row.get(name) for name in names] for row in rows]}
        response = {"predictions": outputs}
    return json.dumps(request).encode(), json.dumps(response).encode(), "application/json"


def headers(*, event_id: str, kind: str, moment: datetime, recorded: datetime, name: str, namespace: str,
            principal: str, annotation: str, content_type: str) -> dict[str, str]:
    """The HTTP headers KServe's agent sends with one binary-mode event."""
    out = {
        "Ce-Specversion": "1.0",
        "Ce-Id": event_id,
        "Ce-Type": REQUEST_TYPE if kind == "request" else RESPONSE_TYPE,
        "Ce-Source": AGENT_SOURCE,
        "Ce-Time": rfc3339(moment),
        "Ce-Inferenceservicename": name,
        "Ce-Namespace": namespace,
        "Ce-Component": "predictor",
        "Ce-Endpoint": "",
        "Ce-Recordedtime": rfc3339(recorded),
        "Ce-Metadata": json.dumps({PRINCIPAL_HEADER: [principal]} if principal else {}, separators=(",", ":")),
        "Content-Type": content_type,
    }
    if annotation:
        out["Ce-Annotations"] = json.dumps({ANNOTATION_MODEL_VERSION: annotation}, separators=(",", ":"))
    return out


def make_call(traffic: TrafficProfile, *, at: datetime, rng: random.Random, drifted: bool = False,
              recorded: datetime | None = None) -> Call:
    """One simulated inference of ``traffic`` arriving at ``at``."""
    weights = [share for _, share, _, _ in traffic.versions]
    index = rng.choices(range(len(traffic.versions)), weights=weights)[0] if sum(weights) > 0 else 0
    annotation, _, profile, signature = traffic.versions[index]
    shift = traffic.drift_shift if drifted else 0.0
    if index > 0 and traffic.canary_drift_shift:
        shift = traffic.canary_drift_shift
    names, rows = feature_rows(profile, signature, traffic.rows_per_request, rng, shift)
    outputs = predictions(profile, traffic.rows_per_request, rng, shift)
    request_body, response_body, content_type = bodies(traffic.protocol, traffic.name, names, rows, outputs, rng)
    latency = rng.lognormvariate(math.log(max(traffic.latency_ms, 0.01)), traffic.latency_sigma)
    if index > 0:
        latency *= traffic.slower_canary
    error_rate = traffic.canary_error_rate if index > 0 and traffic.canary_error_rate is not None \
        else traffic.error_rate
    failed = rng.random() < error_rate
    response_time = None if failed else at + timedelta(milliseconds=latency)
    event_id = str(uuid.uuid4())
    principal = rng.choice(traffic.principals) if traffic.principals else ""
    common = {"event_id": event_id, "name": traffic.name, "namespace": traffic.namespace, "principal": principal,
              "annotation": annotation, "content_type": content_type}
    call = Call(event_id=event_id, request_time=at, response_time=response_time)
    call.events.append((headers(kind="request", moment=at, recorded=recorded or at, **common), request_body))
    if response_time is not None:
        call.events.append((headers(kind="response", moment=response_time, recorded=recorded or response_time,
                                    **common), response_body))
    return call
