"""Limits across workers (issue 19 item 5): the per-scope lock and rate state
(bgtask_limit_state), the key of a keyed concurrency limit on each row (nullable, no default to
write, so adding it rewrites no row), and the due index per task name that a limited task name's
claim reads. MariaDB skips the partial index (no partial indexes there); its limited claims use
the full due index of migration 0002, filtering on the task name."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("bgtask", "0012_trace_context"),
    ]

    operations = [
        migrations.CreateModel(
            name="LimitState",
            fields=[
                ("scope", models.CharField(max_length=255, primary_key=True, serialize=False)),
                ("tat", models.FloatField(default=0.0)),
            ],
            options={
                "db_table": "bgtask_limit_state",
            },
        ),
        migrations.AddField(
            model_name="task",
            name="limit_key",
            field=models.CharField(blank=True, editable=False, max_length=255, null=True),
        ),
        migrations.AddIndex(
            model_name="task",
            index=models.Index(
                condition=models.Q(("status", "queued")),
                fields=["task_name", "-priority", "run_at", "id"],
                name="bgtask_due_name_idx",
            ),
        ),
    ]
