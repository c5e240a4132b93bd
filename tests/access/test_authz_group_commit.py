"""The allow group commit (leader and followers, ``console/access/authz/allows.py``): many
threads staging at once get every row committed exactly once, sharing commits (PostgreSQL, and
SQLite as ``make run`` uses it); on PostgreSQL
a committer whose connection broke reconnects; when the database refuses, every waiting check
is refused (never answered as allowed) and nothing is left queued."""

from __future__ import annotations

import threading
from concurrent import futures
from datetime import UTC, datetime

import psycopg
import pytest
from django.db import connection

from console.access.authz import allows
from console.access.authz.decision import Decision
from console.access.models import StagedAllow

pytestmark = [pytest.mark.django_db(transaction=True)]


def _decision(n: int) -> Decision:
    return Decision(200, "allowed", principal=f"svc-{n % 7}", user_id=n % 7 + 1, endpoint_id=n % 11 + 1,
                    endpoint_repr=f"fraud/ep-{n % 11}", project_id=3, project_name="fraud", token_prefix="ict_abcd")


@pytest.fixture
def group(settings):
    settings.AUTHZ_ALLOW_GROUP_COMMIT = True
    settings.AUTHZ_ALLOW_SYNCHRONOUS_COMMIT = False
    settings.AUTHZ_ALLOW_WRITERS = 2
    found = allows.GroupCommit()
    yield found
    committers = []
    while not found._free.empty():
        committers.append(found._free.get_nowait())
    for committer in committers:
        committer.close()


def _stage_all(group: allows.GroupCommit, threads: int, each: int) -> list[BaseException | None]:
    start = threading.Barrier(threads)

    def run(t: int):
        start.wait()
        try:
            for i in range(each):
                group.commit(allows._row(_decision(t * each + i), method="POST", at=1_700_000_000 + i))
        except BaseException as exc:  # noqa: BLE001 - returned to the test
            return exc
        finally:
            connection.close()
        return None

    with futures.ThreadPoolExecutor(threads) as pool:
        return list(pool.map(run, range(threads)))


def test_concurrent_checks_share_commits_and_every_row_is_committed_once(group):
    assert _stage_all(group, threads=16, each=40) == [None] * 16
    rows = list(StagedAllow.objects.values_list("principal", "endpoint_id", "decided_at"))
    assert len(rows) == 16 * 40
    assert group.rows == 16 * 40
    assert group.commits < group.rows  # concurrent checks shared commits
    first = StagedAllow.objects.get(principal="svc-0", endpoint_id=1, decided_at=datetime.fromtimestamp(1_700_000_000, UTC))
    assert (first.user_id, first.endpoint_repr, first.project_id, first.project_name, first.token_prefix,
            first.method) == (1, "fraud/ep-0", 3, "fraud", "ict_abcd", "POST")
    assert StagedAllow.objects.filter(method="POST", project_name="fraud").count() == 640


@pytest.mark.postgres
def test_a_committer_whose_connection_broke_reconnects(group):
    group.commit(allows._row(_decision(1), method="POST", at=1_700_000_000))
    committers = [group._free.get_nowait() for _ in range(2)]
    for committer in committers:
        if committer.raw is not None:
            committer.raw.close()  # as a database restart would leave it
        group._free.put(committer)
    group.commit(allows._row(_decision(2), method="POST", at=1_700_000_001))
    assert StagedAllow.objects.count() == 2


@pytest.mark.postgres
def test_when_the_database_refuses_every_waiting_check_is_refused(group, monkeypatch):
    def refuse(self):
        raise psycopg.OperationalError("connection refused")

    monkeypatch.setattr(allows._Committer, "_connect", refuse)
    errors = _stage_all(group, threads=8, each=3)
    assert all(isinstance(error, psycopg.OperationalError) for error in errors)
    assert not group._pending
    assert StagedAllow.objects.count() == 0
    # Through ``stage``: the transports see AllowNotRecorded (503 / UNAVAILABLE, never an allow).
    monkeypatch.setattr(allows, "group", lambda: group)
    with pytest.raises(allows.AllowNotRecorded):
        allows.stage(_decision(1), method="POST")
    monkeypatch.undo()
    group.commit(allows._row(_decision(3), method="POST", at=1_700_000_002))  # the database is back
    assert StagedAllow.objects.count() == 1
