"""Database triggers that make the audit event table append-only (see audit/db.py)."""

from django.db import migrations

from audit.db import install_triggers, remove_triggers

TABLE = "audit_auditevent"


def forwards(apps, schema_editor):
    install_triggers(schema_editor, TABLE, "prunable")


def backwards(apps, schema_editor):
    remove_triggers(schema_editor, TABLE)


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_initial")]

    operations = [migrations.RunPython(forwards, backwards)]
