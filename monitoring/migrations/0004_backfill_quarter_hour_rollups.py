"""Quarter-hour rollups for the minute rollups already stored (the 24-hour dashboard reads
quarter-hour rows from now on): each quarter is the sum of its minutes. Reversible (the
quarter-hour rows are deleted)."""

from datetime import UTC, datetime

from django.db import migrations

QUARTER = 900
SUMMED = ("requests", "errors", "unpaired", "latency_count", "latency_sum_ms", "prompt_tokens", "completion_tokens",
          *(f"h{i:02d}" for i in range(50)))


def backfill(apps, schema_editor):
    rollup = apps.get_model("monitoring", "LatencyRollup")
    fields = [f for f in SUMMED if any(field.name == f for field in rollup._meta.fields)]
    quarters: dict[tuple, list] = {}
    rows = rollup.objects.filter(resolution=60).values_list("endpoint_id", "version_key", "start", *fields)
    for endpoint_id, version_key, start, *values in rows.iterator(chunk_size=5000):
        stamp = int(start.timestamp())
        key = (endpoint_id, version_key, stamp - stamp % QUARTER)
        total = quarters.get(key)
        if total is None:
            quarters[key] = list(values)
        else:
            for i, value in enumerate(values):
                total[i] += value
    rollup.objects.bulk_create(
        [rollup(endpoint_id=endpoint_id, version_key=version_key, resolution=QUARTER,
                start=datetime.fromtimestamp(start, tz=UTC), **dict(zip(fields, values, strict=True)))
         for (endpoint_id, version_key, start), values in quarters.items()],
        batch_size=1000, ignore_conflicts=True)


def remove(apps, schema_editor):
    apps.get_model("monitoring", "LatencyRollup").objects.filter(resolution=QUARTER).delete()


class Migration(migrations.Migration):
    dependencies = [("monitoring", "0003_rollup_quarter_hour")]

    operations = [migrations.RunPython(backfill, remove)]
