"""Seals are permanent: no UPDATE, DELETE or TRUNCATE, not even under the prune bypass (see
audit/db.py). The event table's triggers are installed again because SQLite rebuilds a table
(dropping its triggers) when 0003 widens ``target_id``."""

from django.db import migrations

from audit.db import install_triggers, remove_triggers


def forwards(apps, schema_editor):
    install_triggers(schema_editor, "audit_auditseal", "permanent")
    install_triggers(schema_editor, "audit_auditevent", "prunable")


def backwards(apps, schema_editor):
    remove_triggers(schema_editor, "audit_auditseal")


class Migration(migrations.Migration):
    dependencies = [("audit", "0003_seals_and_ingest")]

    operations = [migrations.RunPython(forwards, backwards)]
