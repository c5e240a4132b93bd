"""Cluster API tokens move to an encrypted column (console/crypto.py): each stored token is
encrypted with the first key of CONSOLE_ENCRYPTION_KEYS, then the clear column is dropped.
Reversing decrypts them back."""

from django.db import migrations, models


def encrypt_tokens(apps, schema_editor):
    from console import crypto

    Cluster = apps.get_model("endpoints", "Cluster")
    for cluster in Cluster.objects.exclude(api_token="").only("pk", "api_token"):
        Cluster.objects.filter(pk=cluster.pk).update(api_token_ciphertext=crypto.encrypt(cluster.api_token))


def decrypt_tokens(apps, schema_editor):
    from console import crypto

    Cluster = apps.get_model("endpoints", "Cluster")
    for cluster in Cluster.objects.exclude(api_token_ciphertext="").only("pk", "api_token_ciphertext"):
        Cluster.objects.filter(pk=cluster.pk).update(api_token=crypto.decrypt(cluster.api_token_ciphertext))


class Migration(migrations.Migration):

    dependencies = [
        ("endpoints", "0009_resolved_alerts_state"),
    ]

    operations = [
        migrations.AddField(
            model_name="cluster",
            name="api_token_ciphertext",
            field=models.TextField(blank=True, editable=False),
        ),
        migrations.RunPython(encrypt_tokens, decrypt_tokens),
        migrations.RemoveField(
            model_name="cluster",
            name="api_token",
        ),
    ]
