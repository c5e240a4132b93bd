"""Alerts resolved before alerts had a state are marked resolved."""

from django.db import migrations


def forwards(apps, schema_editor):
    ReconcileAlert = apps.get_model("endpoints", "ReconcileAlert")
    ReconcileAlert.objects.filter(resolved_at__isnull=False).update(state="resolved")


class Migration(migrations.Migration):
    dependencies = [("endpoints", "0008_alert_lifecycle_and_notifications")]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
