"""The access app's models, in the migration state only.

Round 1 created these tables from the ``console`` app (``console_grant``,
``console_apitoken``, ``console_accessversion``). This migration only tells Django the models
now belong to ``access``; ``0002_adopt_or_create_tables`` then renames the round-1 tables in
place (an upgraded database) or creates them (a new one).
"""

import console.access.models
import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('auth', '0012_alter_user_first_name_max_length'),
        ('endpoints', '0003_status_explanation'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[
            migrations.CreateModel(
                name='AccessVersion',
                fields=[
                    ('id', models.PositiveSmallIntegerField(default=1, primary_key=True, serialize=False)),
                    ('version', models.BigIntegerField(default=0)),
                ],
            ),
            migrations.CreateModel(
                name='ApiToken',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('name', models.CharField(max_length=100)),
                    ('prefix', models.CharField(max_length=16, unique=True)),
                    ('secret_hash', models.CharField(max_length=64)),
                    ('scopes', models.JSONField(default=list)),
                    ('created_at', models.DateTimeField(auto_now_add=True)),
                    ('expires_at', models.DateTimeField(blank=True, null=True)),
                    ('last_used_at', models.DateTimeField(blank=True, null=True)),
                    ('revoked_at', models.DateTimeField(blank=True, null=True)),
                    ('created_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                    ('user', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='api_tokens', to=settings.AUTH_USER_MODEL)),
                ],
                options={
                    'ordering': ['-created_at', '-id'],
                },
                bases=(console.access.models.RevocableExpiring, models.Model),
            ),
            migrations.CreateModel(
                name='Grant',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('role', models.CharField(choices=[('viewer', 'Viewer'), ('deployer', 'Deployer'), ('owner', 'Owner'), ('caller', 'Caller')], max_length=16)),
                    ('reason', models.CharField(blank=True, max_length=300)),
                    ('granted_by_name', models.CharField(blank=True, max_length=150)),
                    ('created_at', models.DateTimeField(auto_now_add=True)),
                    ('expires_at', models.DateTimeField(blank=True, db_index=True, null=True)),
                    ('revoked_at', models.DateTimeField(blank=True, db_index=True, null=True)),
                    ('revoked_by_name', models.CharField(blank=True, max_length=150)),
                    ('revoke_reason', models.CharField(blank=True, max_length=300)),
                    ('expiry_recorded_at', models.DateTimeField(blank=True, null=True)),
                    ('endpoint', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='grants', to='endpoints.endpoint')),
                    ('granted_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                    ('group', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='grants', to='auth.group')),
                    ('project', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='grants', to='endpoints.project')),
                    ('registered_model', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='grants', to='endpoints.registeredmodel')),
                    ('revoked_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                    ('user', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='grants', to=settings.AUTH_USER_MODEL)),
                ],
                options={
                    'ordering': ['-created_at', '-id'],
                    'indexes': [models.Index(fields=['user', 'revoked_at'], name='grant_user_live_idx'), models.Index(fields=['group', 'revoked_at'], name='grant_group_live_idx')],
                    'constraints': [models.CheckConstraint(condition=models.Q(models.Q(('group__isnull', True), ('user__isnull', False)), models.Q(('group__isnull', False), ('user__isnull', True)), _connector='OR'), name='grant_exactly_one_principal'), models.CheckConstraint(condition=models.Q(models.Q(('endpoint__isnull', True), ('project__isnull', False), ('registered_model__isnull', True)), models.Q(('endpoint__isnull', True), ('project__isnull', True), ('registered_model__isnull', False)), models.Q(('endpoint__isnull', False), ('project__isnull', True), ('registered_model__isnull', True)), _connector='OR'), name='grant_exactly_one_object')],
                },
                bases=(console.access.models.RevocableExpiring, models.Model),
            ),
        ]),
    ]
