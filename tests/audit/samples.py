"""Turning the captured KServe logger samples (../shared/samples/kserve-logger/) into the HTTP
deliveries the logger makes, and generating Kubernetes audit EventLists."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field

from tests.conftest import shared_path

SAMPLES = ("kserve-logger",)


@dataclass
class Delivery:
    """One POST: headers (Django test-client META names) and a body."""

    headers: dict
    body: bytes
    content_type: str
    attributes: dict = field(default_factory=dict)


def _meta(name: str) -> str:
    return "HTTP_" + name.upper().replace("-", "_")


def event_display_deliveries(filename: str) -> list[Delivery]:
    """Binary-mode deliveries rebuilt from a knative ``event_display`` capture: each event's
    context attributes and extensions become ``Ce-*`` headers, its data the body."""
    text = shared_path("samples", "kserve-logger", filename).read_text()
    deliveries = []
    for chunk in text.split("☁️  cloudevents.Event")[1:]:
        attributes: dict[str, str] = {}
        section = ""
        data_lines = []
        for line in chunk.splitlines():
            if line.startswith(("Context Attributes", "Extensions", "Data")):
                section = line.split(",")[0]
                continue
            if section in ("Context Attributes", "Extensions"):
                match = re.match(r"^\s+([a-z0-9]+):\s?(.*)$", line)
                if match:
                    attributes[match.group(1)] = match.group(2).strip()
            elif section == "Data":
                data_lines.append(line)
        body = json.dumps(json.loads("\n".join(data_lines))).encode()
        content_type = attributes.pop("datacontenttype", "application/json")
        headers = {_meta(f"ce-{name}"): value for name, value in attributes.items() if name != "traceparent"}
        if "traceparent" in attributes:
            headers["HTTP_TRACEPARENT"] = attributes["traceparent"]
        deliveries.append(Delivery(headers=headers, body=body, content_type=content_type, attributes=attributes))
    return deliveries


def legacy_http_echo_deliveries() -> list[Delivery]:
    """The 2019 KFServing logger's CloudEvents 0.1 deliveries, from the http echo capture."""
    text = shared_path("samples", "kserve-logger", "local-logger-http-echo-ce-0.1.txt").read_text()
    deliveries = []
    for block in text.split("-----------------"):
        headers_text = re.search(r"headers:\s*\{(.*?)\}", block, re.S)
        body = re.search(r"body: '(.*?)',\n", block, re.S)
        if not headers_text or not body:
            continue
        headers = dict(re.findall(r"'([a-z0-9-]+)': '([^']*)'", headers_text.group(1)))
        meta = {_meta(k): v for k, v in headers.items() if k.startswith("ce-")}
        deliveries.append(Delivery(headers=meta, body=body.group(1).encode(),
                                   content_type=headers.get("content-type", ""), attributes=headers))
    return deliveries


def binary_event(*, event_id: str, kind: str, isvc: str = "scorer", namespace: str = "default",
                 principal: str | None = "alice", model_version: str = "scorer:1", body: bytes = b'{"instances": [[1, 2]]}',
                 time: str = "2026-11-28T10:00:00.123456789Z", content_type: str = "application/json") -> Delivery:
    """A binary-mode event as the current KServe agent sends it."""
    headers = {
        "HTTP_CE_SPECVERSION": "1.0",
        "HTTP_CE_ID": event_id,
        "HTTP_CE_TYPE": f"org.kubeflow.serving.inference.{kind}",
        "HTTP_CE_SOURCE": "http://localhost:9081/",
        "HTTP_CE_TIME": time,
        "HTTP_CE_INFERENCESERVICENAME": isvc,
        "HTTP_CE_NAMESPACE": namespace,
        "HTTP_CE_COMPONENT": "predictor",
        "HTTP_CE_ENDPOINT": "",
        "HTTP_CE_METADATA": json.dumps({"X-Console-Principal": [principal]} if principal else {}),
        "HTTP_CE_ANNOTATIONS": json.dumps({"inference-console.io/model-version": model_version}),
    }
    return Delivery(headers=headers, body=body, content_type=content_type)


def structured_event(*, event_id: str, kind: str, isvc: str = "scorer", namespace: str = "default",
                     principal: str = "alice", data=None, time: str = "2026-11-28T10:00:00Z") -> dict:
    """A structured CloudEvent (an element of a cloudevents-batch+json array)."""
    return {
        "specversion": "1.0", "id": event_id, "type": f"org.kubeflow.serving.inference.{kind}",
        "source": "http://localhost:9081/", "time": time, "datacontenttype": "application/json",
        "inferenceservicename": isvc, "namespace": namespace, "component": "predictor", "endpoint": "",
        "metadata": json.dumps({"X-Console-Principal": [principal]}),
        "annotations": json.dumps({"inference-console.io/model-version": "scorer:1"}),
        "data": data if data is not None else ({"instances": [[1, 2]]} if kind == "request" else {"predictions": [1]}),
    }


def k8s_event(*, verb: str = "patch", stage: str = "ResponseComplete", namespace: str = "fraud",
              name: str = "scorer", resource: str = "inferenceservices", username: str = "alice@example.com",
              code: int = 200, audit_id: str | None = None, source_ips=("10.0.0.7", "192.0.2.10"),
              decision: str = "allow", impersonate: str | None = None) -> dict:
    event = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "Metadata",
        "auditID": audit_id or str(uuid.uuid4()),
        "stage": stage,
        "requestURI": f"/apis/serving.kserve.io/v1beta1/namespaces/{namespace}/{resource}/{name}",
        "verb": verb,
        "user": {"username": username, "uid": "u-123", "groups": ["system:authenticated"]},
        "sourceIPs": list(source_ips),
        "userAgent": "kubectl/v1.31.0 (linux/amd64)",
        "objectRef": {"resource": resource, "namespace": namespace, "name": name,
                      "apiGroup": "serving.kserve.io", "apiVersion": "v1beta1"},
        "responseStatus": {"metadata": {}, "code": code},
        "requestReceivedTimestamp": "2026-11-28T10:00:00.000000Z",
        "stageTimestamp": "2026-11-28T10:00:00.012345Z",
        "annotations": {"authorization.k8s.io/decision": decision,
                        "authorization.k8s.io/reason": "RBAC: allowed by RoleBinding \"editors\""},
        "requestObject": {"secret": "never kept"},
    }
    if impersonate:
        event["impersonatedUser"] = {"username": impersonate, "groups": ["system:authenticated"]}
    return event


def event_list(items: list[dict]) -> bytes:
    return json.dumps({"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "metadata": {},
                       "items": items}).encode()


def logger_call(endpoint, n: int) -> list:
    """The request and response deliveries of call ``n`` to ``endpoint``, as KServe's agent posts
    them (binary mode, the endpoint's model version annotated)."""
    from tests.monitoring.helpers import label

    common = {"isvc": endpoint.name, "namespace": endpoint.project.namespace, "model_version": label(endpoint)}
    return [binary_event(event_id=f"call-{n}", kind="request", **common),
            binary_event(event_id=f"call-{n}", kind="response", body=b'{"predictions": [1]}',
                         time="2026-11-28T10:00:00.200000Z", **common)]
