"""Free-text search of the trail: a substring anywhere in names, targets, ids, the address and
the details; on PostgreSQL through the trigram index of migration 0006."""

from __future__ import annotations

import importlib

import pytest
from django.db import connection
from django.urls import reverse

from audit import selectors
from audit import services as audit

pytestmark = pytest.mark.django_db


@pytest.fixture
def trail():
    return {
        "detail": audit.record(action="endpoint.update", actor_name="alice", target_type="endpoint", target_id="1",
                               target_repr="fraud/scorer", details={"reason": "rollback after zq-incident-7731"}),
        "target": audit.record(action="endpoint.delete", actor_name="bob", target_type="endpoint", target_id="2",
                               target_repr="fraud/old-ranker"),
        "address": audit.record(action="login", actor_name="carol", source_ip="203.0.113.77"),
        "wildcards": audit.record(action="grant.create", actor_name="dave", details={"note": "50%_off"}),
    }


def _found(client, q):
    response = client.get(reverse("audit:event-list"), {"q": q})
    assert response.status_code == 200
    return {event.pk for event in response.context["events"]}


@pytest.mark.parametrize(("q", "key"), [("zq-incident-7731", "detail"), ("INCIDENT-77", "detail"),
                                        ("old-rank", "target"), ("203.0.113.77", "address"), ("50%_off", "wildcards")])
def test_a_rare_substring_finds_its_event_and_no_other(client, auditor, trail, q, key):
    client.force_login(auditor)
    assert _found(client, q) == {trail[key].pk}


def test_like_wildcards_in_the_term_are_literal(client, auditor, trail):
    client.force_login(auditor)
    assert _found(client, "%") == {trail["wildcards"].pk}
    assert _found(client, "0_o") == set()


@pytest.mark.postgres
def test_on_postgresql_the_search_uses_the_trigram_index(auditor, trail):
    migration = importlib.import_module("audit.migrations.0006_event_text_trigram_index")
    assert migration.SEARCH_TEXT_SQL == selectors.SEARCH_TEXT_SQL
    qs = selectors.event_search(user=auditor, filters=selectors.EventFilters(q="zq-incident-7731"))
    with connection.cursor() as cursor:
        # A tiny table would be scanned (or walked in time order) anyway: make the planner show its choice.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_indexscan = off")
        sql, params = qs.query.sql_with_params()
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "audit_event_text_trgm" in plan
