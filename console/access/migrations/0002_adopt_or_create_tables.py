"""Give the access app its tables: rename round 1's ``console_*`` tables in place on an
upgraded database (rows, ids, constraints and indexes kept), create them on a new one.

Round 1 created grants, API tokens and the access version from the ``console`` app
(migration ``console.0002_grants_and_api_tokens``, since removed: it made the framework's
migrations depend on the domain's). Their content types move with them, so the permission
rows Django made for them keep their ids. The stale migration record goes too, so a future
``console`` migration of that name could never be mistaken for applied.
"""

from django.db import migrations

TABLES = [("AccessVersion", "console_accessversion"), ("ApiToken", "console_apitoken"), ("Grant", "console_grant")]
OLD_MIGRATION = ("console", "0002_grants_and_api_tokens")


def adopt_or_create(apps, schema_editor):
    existing = set(schema_editor.connection.introspection.table_names())
    for name, old_table in TABLES:
        model = apps.get_model("access", name)
        if old_table in existing:
            schema_editor.alter_db_table(model, old_table, model._meta.db_table)
        else:
            schema_editor.create_model(model)
    ContentType = apps.get_model("contenttypes", "ContentType")
    ContentType.objects.using(schema_editor.connection.alias).filter(
        app_label="console", model__in=[name.lower() for name, _ in TABLES]
    ).update(app_label="access")
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("DELETE FROM django_migrations WHERE app = %s AND name = %s", OLD_MIGRATION)


def give_back(apps, schema_editor):
    """Reverse: the round-1 names again, for a rollback to the code before the layering."""
    for name, old_table in TABLES:
        model = apps.get_model("access", name)
        schema_editor.alter_db_table(model, model._meta.db_table, old_table)
    ContentType = apps.get_model("contenttypes", "ContentType")
    ContentType.objects.using(schema_editor.connection.alias).filter(
        app_label="access", model__in=[name.lower() for name, _ in TABLES]
    ).update(app_label="console")
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("INSERT INTO django_migrations (app, name, applied) VALUES (%s, %s, CURRENT_TIMESTAMP)",
                       OLD_MIGRATION)


class Migration(migrations.Migration):
    dependencies = [
        ("access", "0001_initial"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(adopt_or_create, give_back)]
