"""Security headers, CSP and cookie flags as a browser receives them."""

import re

import pytest
from django.test import Client, override_settings
from django.urls import reverse

pytestmark = pytest.mark.django_db


def _csp(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    directives = {}
    for part in header.split(";"):
        tokens = part.split()
        if tokens:
            directives[tokens[0]] = tokens[1:]
    return directives


@pytest.mark.parametrize("url_name", ["login", "home"])
def test_pages_forbid_framing_sniffing_and_inline_scripts(client, alice, url_name):
    if url_name != "login":
        client.force_login(alice)
    response = client.get(reverse(url_name))
    assert response.status_code == 200
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    csp = _csp(response)
    assert csp["default-src"] == ["'self'"]
    assert csp["script-src"] == ["'self'"]
    assert csp["frame-ancestors"] == ["'none'"]
    assert csp["object-src"] == ["'none'"]


def test_csp_names_no_third_party_origin_anywhere(client, alice):
    assert client.get(reverse("login")).status_code == 200
    client.force_login(alice)
    for url in [reverse("login"), reverse("home"), reverse("api-docs"), reverse("api-redoc")]:
        header = client.get(url)["Content-Security-Policy"]
        assert not re.search(r"https?://", header), (url, header)
        assert "unsafe-eval" not in header
        assert "'unsafe-inline'" not in _csp(client.get(url)).get("script-src", [])


def test_rendered_pages_contain_no_inline_script(client, alice):
    pages = [client.get(reverse("login")).content.decode()]
    client.force_login(alice)
    pages += [client.get(reverse(name)).content.decode() for name in ("home", "api-docs", "api-redoc")]
    for url, html in zip(["login", "home", "api-docs", "api-redoc"], pages, strict=True):
        for attrs, body in re.findall(r"<script([^>]*)>(.*?)</script>", html, flags=re.S):
            assert "src=" in attrs or 'type="application/json"' in attrs, (url, attrs, body[:80])
            if "src=" in attrs:
                assert not body.strip(), url


@override_settings(
    SESSION_COOKIE_SECURE=True,
    CSRF_COOKIE_SECURE=True,
    SECURE_HSTS_SECONDS=31536000,
    SECURE_HSTS_INCLUDE_SUBDOMAINS=True,
    SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https"),
)
def test_behind_tls_cookies_are_secure_and_hsts_is_sent(alice):
    from tests.factories import DEFAULT_PASSWORD

    client = Client(enforce_csrf_checks=False)
    page = client.get(reverse("login"), HTTP_X_FORWARDED_PROTO="https")
    assert page["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    response = client.post(
        reverse("login"), {"username": "alice", "password": DEFAULT_PASSWORD}, HTTP_X_FORWARDED_PROTO="https"
    )
    assert response.status_code == 302
    assert response.cookies["sessionid"]["secure"]
    assert response.cookies["sessionid"]["httponly"]
    assert response.cookies["csrftoken"]["secure"]


def test_plain_http_gets_no_hsts(client):
    assert "Strict-Transport-Security" not in client.get(reverse("login"))


def test_request_id_is_echoed_and_a_forged_one_is_replaced(client):
    ok = client.get(reverse("login"), HTTP_X_REQUEST_ID="abc-123")
    assert ok["X-Request-Id"] == "abc-123"
    forged = client.get(reverse("login"), HTTP_X_REQUEST_ID="<script>alert(1)</script>")
    assert re.fullmatch(r"[0-9a-f]{32}", forged["X-Request-Id"])
