"""``console.bulk.execute_arrays`` on PostgreSQL: rows bound as arrays by the server, in the
caller's transaction, with mixed ints and floats, and the database's refusal reported as
Django's error."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, connection, transaction

from console import bulk

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def table():
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE bulk_probe (id integer PRIMARY KEY, score double precision, note text, body bytea)")
    yield "bulk_probe"
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE bulk_probe")


SQL = ("INSERT INTO bulk_probe (id, score, note, body) SELECT * FROM unnest(%b::integer[], %b::double precision[], "
       "%b::text[], %b::bytea[]) ON CONFLICT (id) DO NOTHING RETURNING id")


def _rows():
    with connection.cursor() as cursor:
        cursor.execute("SELECT id, score, note, body FROM bulk_probe ORDER BY id")
        return [(*row[:3], None if row[3] is None else bytes(row[3])) for row in cursor.fetchall()]


def test_rows_go_in_with_mixed_numbers_and_nulls_and_returning_gives_the_new_ones(table):
    assert sorted(bulk.execute_arrays(SQL, [[1, 2, 3], [1, 2.5, None], ["a", None, "é"], [b"\x00x", None, b""]])) \
        == [(1,), (2,), (3,)]
    assert bulk.execute_arrays(SQL, [[3, 4], [0.5, 7], ["x", "y"], [None, None]]) == [(4,)]  # 3 exists: skipped
    assert _rows() == [(1, 1.0, "a", b"\x00x"), (2, 2.5, None, None), (3, None, "é", b""), (4, 7.0, "y", None)]


def test_it_runs_in_the_callers_transaction_and_refusals_are_djangos_errors(table):
    with pytest.raises(RuntimeError), transaction.atomic():
        bulk.execute_arrays(SQL, [[1], [1.0], ["a"], [None]])
        raise RuntimeError("roll back")
    assert _rows() == []
    with pytest.raises(IntegrityError):
        bulk.execute_arrays("INSERT INTO bulk_probe (id) SELECT * FROM unnest(%b::integer[])", [[5, 5]])
