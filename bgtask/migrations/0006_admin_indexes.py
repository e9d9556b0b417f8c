"""Indexes for the admin and the dashboard at a million rows (issue 13).

The new indexes are created before the one they replace is dropped, so the pruner always has an
index on finished_at while this migration runs.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("bgtask", "0005_compat"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="task",
            index=models.Index(
                fields=["finished_at", "status", "queue", "task_name"], name="bgtask_outcome_idx"
            ),
        ),
        migrations.AddIndex(
            model_name="task",
            index=models.Index(
                condition=models.Q(("status", "failed")),
                fields=["id", "queue"],
                name="bgtask_failed_idx",
            ),
        ),
        migrations.AddIndex(
            model_name="task",
            index=models.Index(
                condition=models.Q(("attempts__gt", 0), ("status", "queued")),
                fields=["started_at"],
                name="bgtask_retrying_idx",
            ),
        ),
        migrations.RemoveIndex(
            model_name="task",
            name="bgtask_finished_idx",
        ),
    ]
