"""The fast digest verification uses (``digests.row_digest``, from database tuples) gives the
same bytes as the digest written with every event (``digests.event_digest``): otherwise every
trail sealed before would fail to verify."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from ipaddress import ip_address
from types import SimpleNamespace

import pytest

from audit import digests

DETAILS = [
    {},
    {"old": {"replicas": 1}, "new": {"replicas": 2}, "z": [1, 2.5, 1e-07, None, True]},
    {"text": "é ü 漢字 \u2028 \n \t \"quoted\" \\ \x01", "nested": {"b": 1, "a": {"d": [], "c": {}}}},
]


@pytest.mark.parametrize("details", DETAILS)
@pytest.mark.parametrize("project_id", [None, 7])
@pytest.mark.parametrize("source_ip", [None, "10.0.0.1", "2001:db8::1"])
@pytest.mark.parametrize("occurred_at", [datetime(2026, 3, 1, 12, 0, 0, 5, tzinfo=UTC),
                                         datetime(2026, 3, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))])
def test_row_digest_is_the_event_digest(details, project_id, source_ip, occurred_at):
    values = {"occurred_at": occurred_at, "source": "console", "actor_id": "3", "actor_name": "renée\t",
              "action": "endpoint.update", "target_type": "endpoint", "target_id": "12",
              "target_repr": "fraud/iris \"v2\"", "project_id": project_id, "project_name": "fraud",
              "outcome": "success", "source_ip": source_ip, "user_agent": "Mozilla/5.0", "request_id": "r-1",
              "details": details, "external_id": ""}
    expected = digests.event_digest(SimpleNamespace(**values))
    as_stored = [values[name] for name in digests.CANONICAL_FIELDS]
    assert digests.row_digest(as_stored) == expected
    # As PostgreSQL returns them: details as JSON text, the address as an object.
    as_text = {**values, "details": json.dumps(details),
               "source_ip": ip_address(source_ip) if source_ip else None}
    assert digests.row_digest([as_text[name] for name in digests.CANONICAL_FIELDS]) == expected


@pytest.mark.parametrize("occurred_at", [datetime(2026, 3, 1, 12, 0, 0, 5, tzinfo=UTC),
                                         datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
                                         datetime(2026, 3, 1, 1, 0, tzinfo=timezone(timedelta(hours=2)))])
def test_canonical_time_given_as_text_gives_the_same_digest(occurred_at):
    values = dict.fromkeys(digests.CANONICAL_FIELDS)
    values.update(occurred_at=occurred_at, source="console", action="x", details={"a": 1}, external_id="")
    expected = digests.event_digest(SimpleNamespace(**values))
    as_text = [digests._timestamp(occurred_at) if name == "occurred_at" else values[name]
               for name in digests.CANONICAL_FIELDS]
    assert digests.row_digest(as_text, canonical_time=True) == expected


@pytest.mark.postgres
@pytest.mark.django_db
@pytest.mark.parametrize("occurred_at", [datetime(2026, 3, 1, 12, 0, 0, 5, tzinfo=UTC),
                                         datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
                                         datetime(2026, 3, 1, 1, 0, tzinfo=timezone(timedelta(hours=2))),
                                         datetime(2026, 6, 1, 0, 0, 0, 120000, tzinfo=timezone(timedelta(hours=-5)))])
def test_postgresql_writes_the_canonical_time_verification_reads(occurred_at):
    from django.db import connection

    from audit.verify import _CANONICAL_TIME_SQL

    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {_CANONICAL_TIME_SQL} FROM (SELECT %s::timestamptz AS occurred_at) t",  # noqa: S608
                       [occurred_at])
        assert cursor.fetchone()[0] == digests._timestamp(occurred_at)


# Digests written by main before verification's fast path changed (commit 0bc6b4e): the
# canonical bytes must never change, or every trail sealed before would fail to verify.
GOLDEN = [
    ({"occurred_at": datetime(2026, 11, 28, 10, 0, 0, 123456, tzinfo=UTC), "source": "kubernetes", "actor_id": "",
      "actor_name": "system:serviceaccount:kserve:controller", "action": "k8s.patch",
      "target_type": "k8s:inferenceservices", "target_id": "fraud/scorer", "target_repr": "inferenceservices fraud/scorer",
      "project_id": 4, "project_name": "fraud", "outcome": "success", "source_ip": "10.0.0.7",
      "user_agent": "kubectl/v1.31", "request_id": "a1b2",
      "details": {"verb": "patch", "user": {"username": "x", "groups": ["a", "b"]}, "latency": 0.25, "n": 3,
                  "ok": True, "none": None, "text": "é \"q\" \n"},
      "external_id": "a1b2:ResponseComplete"},
     "e609c25dd54e70412136edfa26da5645edbfa0d079088b81a5d71d5bf95f6323"),
    ({"occurred_at": datetime(2026, 3, 1, 14, 0, tzinfo=timezone(timedelta(hours=2))), "source": "console",
      "actor_id": "3", "actor_name": "renée", "action": "endpoint.update", "target_type": "endpoint", "target_id": "12",
      "target_repr": "fraud/iris", "project_id": None, "project_name": "", "outcome": "success", "source_ip": None,
      "user_agent": "Mozilla/5.0", "request_id": "r-1", "details": {}, "external_id": ""},
     "349d34b540547aca9f135db9823532e9bdb60256d2eead4c268cacbcbb5ad69d"),
]


@pytest.mark.parametrize(("values", "digest"), GOLDEN)
def test_digests_of_trails_sealed_by_earlier_versions_are_unchanged(values, digest):
    assert digests.event_digest(SimpleNamespace(**values)) == digest
    as_stored = [values[name] for name in digests.CANONICAL_FIELDS]
    assert digests.row_digest(as_stored) == digest
    as_read = [digests._timestamp(values["occurred_at"]) if name == "occurred_at"
               else json.dumps(values["details"]) if name == "details"
               else ip_address(values["source_ip"]) if name == "source_ip" and values["source_ip"] else values[name]
               for name in digests.CANONICAL_FIELDS]
    assert digests.row_digest(as_read, canonical_time=True) == digest
