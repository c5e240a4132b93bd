"""The cluster's ingress gateway address: where callers outside the cluster send inference
requests, with the InferenceService's host in the ``Host`` header (KServe's documentation calls
it ``INGRESS_HOST:INGRESS_PORT``). Pure: parsing, validation and the base URL built from it."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
HELP = ("Where inference requests enter the cluster, as host:port (KServe's INGRESS_HOST:INGRESS_PORT), "
        "optionally with http:// or https://; e.g. 203.0.113.10:80 or https://gateway.example.com. "
        "Empty: callers use the endpoint URL as it is.")


def parse(address: str) -> tuple[str, str, int]:
    """(scheme, host, port) of a gateway address; ``ValueError`` with a message for the user."""
    text = (address or "").strip()
    if not text:
        raise ValueError("Enter the gateway address.")
    if any(ch.isspace() for ch in text):
        raise ValueError("The address cannot contain spaces.")
    if "://" not in text:
        text = "http://" + text
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https"):
        raise ValueError("Use http:// or https:// (or no scheme: http).")
    if parts.username is not None or parts.password is not None:
        raise ValueError("No user name or password in the address: callers send their own token.")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError("Only a host and a port: the request path comes from the endpoint.")
    try:
        port = parts.port
    except ValueError:
        raise ValueError("The port must be a number from 1 to 65535.") from None
    host = (parts.hostname or "").lower()
    if not host:
        raise ValueError("Enter a host name or an IP address.")
    if port == 0:
        raise ValueError("The port must be a number from 1 to 65535.")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        labels = host.rstrip(".").split(".")
        if len(host) > 253 or not all(_LABEL.match(label) for label in labels):
            raise ValueError(f"{host!r} is neither an IP address nor a valid host name.") from None
    return parts.scheme, host, port or (443 if parts.scheme == "https" else 80)


def validate_gateway_address(value: str) -> None:
    """Model and form validator (empty is allowed: no gateway set)."""
    if not value:
        return
    try:
        parse(value)
    except ValueError as exc:
        raise ValidationError(str(exc), code="invalid") from None


def base_url(address: str) -> str:
    """``scheme://host:port`` of a valid gateway address ("" when none is set)."""
    if not address:
        return ""
    scheme, host, port = parse(address)
    shown = f"[{host}]" if ":" in host else host
    default = 443 if scheme == "https" else 80
    return f"{scheme}://{shown}" + ("" if port == default else f":{port}")
