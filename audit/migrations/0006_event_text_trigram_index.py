"""Free-text search of the trail on PostgreSQL: a trigram (pg_trgm) GIN index over the text the
search looks in (audit.selectors.SEARCH_TEXT_SQL, kept equal to the expression below by
tests/audit/test_trail_search.py). SQLite has no such index: the search there scans
(docs/audit.md §7). Building it on a large trail takes minutes and locks the table against
writes; see the upgrade notes."""

from django.db import migrations

SEARCH_TEXT_SQL = (
    "(actor_name || ' ' || action || ' ' || target_repr || ' ' || project_name || ' ' || request_id || ' ' "
    "|| external_id || ' ' || coalesce(host(source_ip), '') || ' ' || details::text)"
)


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    schema_editor.execute(
        f"CREATE INDEX IF NOT EXISTS audit_event_text_trgm ON audit_auditevent USING gin ({SEARCH_TEXT_SQL} gin_trgm_ops)")


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP INDEX IF EXISTS audit_event_text_trgm")


class Migration(migrations.Migration):
    dependencies = [("audit", "0005_ingest_buffer_and_refusals")]

    operations = [migrations.RunPython(create, drop)]
