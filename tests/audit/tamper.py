"""Tampering as an attacker with database access would: raw SQL with the append-only
triggers dropped (and put back afterwards)."""

from __future__ import annotations

from contextlib import contextmanager

from django.db import connection

from audit.db import APPEND_ONLY_TABLES, install_triggers, remove_triggers


class _Editor:
    """Enough of a schema editor for audit.db's trigger helpers, usable inside a test's
    transaction (Django's SQLite schema editor refuses to run inside one)."""

    connection = connection

    def execute(self, sql, params=None):
        with connection.cursor() as cursor:
            cursor.execute(sql, params)


@contextmanager
def triggers_dropped():
    editor = _Editor()
    for table in APPEND_ONLY_TABLES:
        remove_triggers(editor, table)
    try:
        yield
    finally:
        for table, policy in APPEND_ONLY_TABLES.items():
            install_triggers(editor, table, policy)


def sql(statement: str, params=None) -> int:
    with triggers_dropped(), connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.rowcount
