"""An ordinary 403 (or 404) writes one log line; a real server error keeps its traceback."""

from __future__ import annotations

import logging

import pytest
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.urls import include, path, reverse

pytestmark = pytest.mark.django_db


def _forbidden(request):
    raise PermissionDenied("Only platform admins may open this page.")


def _broken(request):
    raise RuntimeError("the database went away")


# The error pages link to the console's own routes.
urlpatterns = [path("forbidden/", _forbidden), path("broken/", _broken), path("", include(settings.ROOT_URLCONF))]


def _request_records(caplog):
    return [r for r in caplog.records if r.name == "django.request"]


@pytest.mark.urls("tests.console.test_request_logging")
def test_a_permission_denied_is_logged_as_one_line_without_traceback(client, caplog):
    with caplog.at_level(logging.WARNING, logger="django.request"):
        response = client.get("/forbidden/")

    assert response.status_code == 403
    [record] = _request_records(caplog)
    assert record.levelno == logging.WARNING and "/forbidden/" in record.getMessage()
    assert record.exc_info is None and not record.exc_text
    assert "Traceback" not in caplog.text


@pytest.mark.urls("tests.console.test_request_logging")
def test_a_server_error_still_logs_its_traceback(client, caplog):
    client.raise_request_exception = False
    with caplog.at_level(logging.WARNING, logger="django.request"):
        response = client.get("/broken/")

    assert response.status_code == 500
    [record] = _request_records(caplog)
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None and record.exc_info[0] is RuntimeError
    assert "Traceback" in caplog.text and "the database went away" in caplog.text


def test_a_403_on_a_real_page_is_one_line(client, alice, caplog):
    client.force_login(alice)  # no grants: no trail to read
    with caplog.at_level(logging.WARNING, logger="django.request"):
        response = client.get(reverse("audit:event-list"))

    assert response.status_code == 403
    assert [r.exc_info for r in _request_records(caplog)] == [None]
    assert "Traceback" not in caplog.text
