from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('access', '0005_staged_allow'),
    ]

    operations = [
        migrations.CreateModel(
            name='AllowJournalProgress',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.CharField(max_length=200, unique=True)),
                ('shipped_bytes', models.BigIntegerField(default=0)),
                ('shipped_rows', models.BigIntegerField(default=0)),
                ('updated_at', models.DateTimeField()),
            ],
            options={
                'default_permissions': (),
            },
        ),
    ]
