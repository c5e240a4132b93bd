"""How to call an endpoint: its URL, protocol and an example ``curl`` request built from its
protocol, its runtime's routes and its model version's input signature, with values that look
like real traffic (the reference profile's typical values). The endpoint page shows it; it reads
nothing the endpoint row and its related rows do not already hold."""

from __future__ import annotations

import json
import re
import shlex
from urllib.parse import urlsplit

from endpoints import nim, selectors
from endpoints.models import Endpoint

_TEXT_TYPES = {"categorical", "string", "str", "object", "category", "bytes", "text", "bool", "boolean"}


def _is_numeric(feature: dict) -> bool:
    return str(feature.get("type") or feature.get("dtype") or "numeric").lower() not in _TEXT_TYPES


def _reference_examples(version) -> dict:
    """Typical values from the version's reference profile (mean of a numeric feature, most
    frequent category), so the example request looks like real traffic."""
    examples = {}
    for feature in (version.reference_profile or {}).get("features") or []:
        if not isinstance(feature, dict) or "name" not in feature:
            continue
        if feature.get("type") == "numeric" and isinstance(feature.get("mean"), int | float):
            examples[feature["name"]] = round(float(feature["mean"]), 3)
        elif feature.get("type") == "categorical":
            pairs = [(p, c) for c, p in zip(feature.get("categories") or [], feature.get("proportions") or [],
                                            strict=False) if c != "__other__"]
            if pairs:
                examples[feature["name"]] = max(pairs)[1]
    return examples


def _example_row(signature: list[dict], version) -> list:
    examples = _reference_examples(version)
    return [examples.get(f.get("name"), 0.0 if _is_numeric(f) else "example") for f in signature]


def _v1_body(signature: list[dict], version) -> dict:
    return {"instances": [_example_row(signature, version) if signature else [1.0, 2.0, 3.0, 4.0]]}


def _v2_body(signature: list[dict], version) -> dict:
    if not signature:
        return {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP32", "data": [1.0, 2.0, 3.0, 4.0]}]}
    row = _example_row(signature, version)
    if all(_is_numeric(f) for f in signature):
        return {"inputs": [{"name": "input-0", "shape": [1, len(signature)], "datatype": "FP32", "data": row}]}
    return {"inputs": [
        {"name": str(f.get("name", f"input-{i}")), "shape": [1], "datatype": "FP32" if _is_numeric(f) else "BYTES",
         "data": [value]}
        for i, (f, value) in enumerate(zip(signature, row, strict=True))
    ]}


def _json_example(body: dict) -> str:
    """Indented JSON whose innermost lists of plain values stay on one line."""
    text = json.dumps(body, indent=2)
    return re.sub(r"\[\s*\n\s*((?:[^\[\]{}\n]+,\s*\n\s*)*[^\[\]{}\n]+?)\s*\n\s*\]",
                  lambda m: "[" + re.sub(r",\s*\n\s*", ", ", m.group(1)) + "]", text)


def _openai_request(endpoint: Endpoint, prefix: str) -> tuple[str, dict]:
    task = endpoint.model_version.model.task
    if task == "llm-completion":
        return f"{prefix}/v1/completions", {"model": endpoint.name, "prompt": "Say hello.", "max_tokens": 64}
    if task == "embedding":
        return f"{prefix}/v1/embeddings", {"model": endpoint.name, "input": "The text to embed."}
    return f"{prefix}/v1/chat/completions", {
        "model": endpoint.name, "messages": [{"role": "user", "content": "Hello!"}], "max_tokens": 64}


def example_request(endpoint: Endpoint, runtime) -> dict:
    """The example request for the endpoint: route, JSON body, protocol label and notes (shared
    by "How to call it" and "Try it")."""
    status = selectors.endpoint_status(endpoint)
    base = (status.url if status else "").rstrip("/") or "$ENDPOINT_URL"
    signature = [f for f in (endpoint.model_version.input_signature or []) if isinstance(f, dict)]
    runtime_row = endpoint.runtime if endpoint.runtime_id else None
    nim_entry = nim.entry_from_json(runtime_row.nim["entry"]) if runtime_row is not None and runtime_row.nim else None
    if endpoint.protocol == Endpoint.Protocol.OPENAI and nim_entry is not None:
        # A NIM serves NVIDIA's OpenAI-style API; its "model" is the NIM's own model id.
        route, body = nim.openai_request(nim_entry)
        protocol = f"OpenAI-compatible API of NVIDIA NIM {nim_entry.display_name} ({nim_entry.api})"
        notes = [f"The request's \"model\" field is the NIM's model id, {nim_entry.model_id}."]
    elif endpoint.protocol == Endpoint.Protocol.OPENAI:
        prefix = (runtime.openai_route_prefix if runtime is not None else "") or ""
        route, body = _openai_request(endpoint, prefix.rstrip("/"))
        protocol = "OpenAI-compatible API" + (f" (routes under {prefix})" if prefix else " (routes at the root)")
        notes = [f"The request's \"model\" field must be the endpoint name, {endpoint.name}."]
    elif endpoint.protocol == Endpoint.Protocol.V2:
        route, body = f"/v2/models/{endpoint.name}/infer", _v2_body(signature, endpoint.model_version)
        protocol = "Open Inference Protocol (v2)"
        notes = [f"Model metadata (input names, shapes, datatypes): GET {base}/v2/models/{endpoint.name}"]
    else:
        route, body = f"/v1/models/{endpoint.name}:predict", _v1_body(signature, endpoint.model_version)
        protocol = "KServe V1"
        notes = []
    if signature and endpoint.protocol != Endpoint.Protocol.OPENAI:
        notes.insert(0, "Feature order: " + ", ".join(str(f.get("name", "?")) for f in signature) + ".")
    elif endpoint.protocol != Endpoint.Protocol.OPENAI:
        notes.insert(0, "The model version has no input signature; replace the example values with your "
                        "model's features.")
    return {"route": route, "body": body, "payload": _json_example(body), "protocol": protocol, "notes": notes}


def gateway_target(endpoint: Endpoint, url: str) -> tuple[str, str]:
    """(base URL to send to, Host header) for an endpoint whose status URL is ``url``: through
    the cluster's ingress gateway when one is set (KServe's ``curl -H "Host: ..."
    http://$INGRESS_HOST:$INGRESS_PORT/...``), else the URL itself and no Host header."""
    gateway = endpoint.project.cluster.gateway_url
    host = urlsplit(url).netloc if url else ""
    if gateway and host:
        return gateway, host
    return url, ""


def how_to_call(endpoint: Endpoint, runtime) -> dict:
    """URL, protocol and an example ``curl`` for the endpoint, built from its protocol, its
    runtime's routes and its model version's input signature; through the cluster's ingress
    gateway with the endpoint's host in ``Host`` when the cluster names its gateway."""
    status = selectors.endpoint_status(endpoint)
    url = (status.url if status else "").rstrip("/")
    base = url or "$ENDPOINT_URL"
    example = example_request(endpoint, runtime)
    route = example["route"]
    send_to, host = gateway_target(endpoint, url)
    # A known URL is quoted literally; the placeholder stays in double quotes so the shell expands it.
    target = shlex.quote(send_to + route) if url else f'"{base}{route}"'
    lines = [f"curl -sS -X POST {target} \\"]
    if host:
        lines.append(f"  -H {shlex.quote('Host: ' + host)} \\")
    lines += [
        '  -H "Authorization: Bearer $TOKEN" \\',
        "  -H 'Content-Type: application/json' \\",
        f"  -d {shlex.quote(example['payload'])}",
    ]
    return {
        "url": url,
        "address_url": status.address_url if status else "",
        "gateway_url": send_to if host else "",
        "host": host,
        "protocol": example["protocol"],
        "method_path": f"POST {route}",
        "curl": "\n".join(lines),
        "notes": example["notes"],
        "runtime": runtime,
    }


# Formats whose runtime the sandbox really runs (KServe's Python model server on a CPU); the
# others (LLMs, GPUs, Triton, TensorFlow, ...) answer from a simulation there.
SANDBOX_SERVED_FORMATS = frozenset({"sklearn", "xgboost", "lightgbm"})
# The condition the sandbox's data plane sets on an InferenceService whose model does not really
# serve (status "True", the message says why: no CPU runtime for the format, a storage URI it
# cannot download).
SIMULATED_CONDITION = "SandboxSimulated"


def serving(endpoint: Endpoint) -> dict:
    """Whether the endpoint's answers come from its model or from a simulation: {"simulated":
    bool, "note": str}. A real cluster serves. On the sandbox, the data plane's condition says
    so when it reports one; without a gateway nothing serves; else the model format decides."""
    cluster = endpoint.project.cluster
    if not cluster.is_sandbox:
        return {"simulated": False, "note": ""}
    status = selectors.endpoint_status(endpoint)
    for condition in (status.conditions if status else None) or []:
        if isinstance(condition, dict) and condition.get("type") == SIMULATED_CONDITION \
                and str(condition.get("status")) == "True":
            message = str(condition.get("message") or "").removeprefix("simulated: ")
            return {"simulated": True, "note": f"The sandbox does not run this model: {message}." if message
                    else "The sandbox does not run this model."}
    if not cluster.gateway_address:
        return {"simulated": True, "note": "This sandbox cluster has no data plane (no gateway address): nothing "
                                           "really serves on it."}
    model_format = (endpoint.model_version.model_format or "").lower()
    if model_format in SANDBOX_SERVED_FORMATS:
        return {"simulated": False, "note": ""}
    return {"simulated": True,
            "note": f"The sandbox cannot run a {model_format or 'model of this'} runtime on this machine: its "
                    "answers are simulated, not computed by the model."}
