"""Database-level protection of the audit tables, and the one documented bypass.

Triggers reject UPDATE and DELETE on audit tables (and TRUNCATE on PostgreSQL), so even a
bug or a hand-typed SQL statement through the application's database user cannot rewrite
history. Seals and their HMAC (kept outside the database) are what prove integrity against
someone who can drop triggers; the triggers stop accidents and casual edits.

The bypass: ``with bypass("prune"):`` opens a transaction in which DELETE is allowed on
prunable tables (audit events, pruned by retention only after they are sealed and archived).
``bypass("teardown")`` additionally allows DELETE/TRUNCATE on permanent tables; it exists
only for the test database's flush between transactional tests (tests/conftest.py wraps
Django's flush in it). UPDATE is never allowed. On PostgreSQL the bypass is the
transaction-local setting ``inference_console.audit_bypass``; on SQLite it is a per-connection
function ``console_audit_bypass()`` that this module registers, so the flag can never leak
to another connection and a client without the function (the sqlite3 shell) cannot delete.
"""

from __future__ import annotations

from contextlib import contextmanager

from django.db import connections, transaction
from django.db.backends.signals import connection_created
from django.dispatch import receiver

PRUNE = "prune"
TEARDOWN = "teardown"

# table -> policy: "prunable" rows may be deleted under bypass("prune"); "permanent" rows
# only under bypass("teardown").
APPEND_ONLY_TABLES: dict[str, str] = {"audit_auditevent": "prunable", "audit_auditseal": "permanent"}

_PG_FUNCTION = """
CREATE OR REPLACE FUNCTION console_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  mode text := current_setting('inference_console.audit_bypass', true);
BEGIN
  IF TG_OP IN ('DELETE', 'TRUNCATE') AND (
       mode = 'teardown' OR (mode = 'prune' AND TG_ARGV[0] = 'prunable' AND TG_OP = 'DELETE')
     ) THEN
    IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
    RETURN NULL;
  END IF;
  RAISE EXCEPTION 'audit trail is append-only: % on % refused', TG_OP, TG_TABLE_NAME
    USING ERRCODE = 'insufficient_privilege';
END $$;
"""


def _allowed(mode: str | None, wanted: str) -> int:
    if mode == TEARDOWN:
        return 1
    return 1 if mode == PRUNE and wanted == PRUNE else 0


@receiver(connection_created)
def _register_sqlite_function(sender, connection, **kwargs):
    if connection.vendor != "sqlite":
        return
    connection.connection.create_function(
        "console_audit_bypass", 1, lambda wanted: _allowed(getattr(connection, "_audit_bypass", None), wanted)
    )


def install_triggers(schema_editor, table: str, policy: str) -> None:
    """Install the append-only triggers on ``table`` (called from migrations)."""
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(_PG_FUNCTION, params=None)
        for event, level in (("UPDATE OR DELETE", "ROW"), ("TRUNCATE", "STATEMENT")):
            name = f"{table}_append_only_{'row' if level == 'ROW' else 'truncate'}"
            schema_editor.execute(f'DROP TRIGGER IF EXISTS {name} ON "{table}"')
            schema_editor.execute(
                f'CREATE TRIGGER {name} BEFORE {event} ON "{table}" FOR EACH {level} '
                f"EXECUTE FUNCTION console_audit_append_only('{policy}')"
            )
    elif vendor == "sqlite":
        wanted = PRUNE if policy == "prunable" else TEARDOWN
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_no_update")
        schema_editor.execute(
            f'CREATE TRIGGER {table}_no_update BEFORE UPDATE ON "{table}" BEGIN '
            f"SELECT RAISE(ABORT, 'audit trail is append-only: UPDATE on {table} refused'); END"
        )
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_no_delete")
        schema_editor.execute(
            f'CREATE TRIGGER {table}_no_delete BEFORE DELETE ON "{table}" '
            f"WHEN console_audit_bypass('{wanted}') = 0 BEGIN "
            f"SELECT RAISE(ABORT, 'audit trail is append-only: DELETE on {table} refused'); END"
        )
    else:  # pragma: no cover - only PostgreSQL and SQLite are supported
        raise NotImplementedError(f"append-only triggers are not implemented for {vendor}")


def remove_triggers(schema_editor, table: str) -> None:
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        for suffix in ("row", "truncate"):
            schema_editor.execute(f'DROP TRIGGER IF EXISTS {table}_append_only_{suffix} ON "{table}"')
    elif vendor == "sqlite":
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_no_update")
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_no_delete")


@contextmanager
def bypass(mode: str, *, using: str = "default"):
    """Allow deleting audit rows inside one transaction. Only retention pruning (``PRUNE``)
    and the test database's teardown (``TEARDOWN``) may use it."""
    if mode not in (PRUNE, TEARDOWN):
        raise ValueError(f"unknown audit bypass mode {mode!r}")
    connection = connections[using]
    with transaction.atomic(using=using):
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT set_config('inference_console.audit_bypass', %s, true)", [mode])
            yield
            # Transaction-local settings last until the outermost transaction ends, so clear it
            # now in case this block is nested; on an exception the rollback (to the savepoint)
            # reverts the setting by itself.
            with connection.cursor() as cursor:
                cursor.execute("SELECT set_config('inference_console.audit_bypass', '', true)")
        else:
            previous = getattr(connection, "_audit_bypass", None)
            connection._audit_bypass = mode
            try:
                yield
            finally:
                connection._audit_bypass = previous
