"""bgtask_worker_batch: the last finished batch of each worker host (issue 19 item 7)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("bgtask", "0009_task_progress"),
    ]

    operations = [
        migrations.CreateModel(
            name="WorkerBatch",
            fields=[
                ("host", models.CharField(max_length=255, primary_key=True, serialize=False)),
                ("worker_id", models.CharField(max_length=64)),
                ("finished_at", models.DateTimeField(db_index=True)),
                ("counts", models.TextField(default="{}")),
            ],
            options={
                "db_table": "bgtask_worker_batch",
            },
        ),
    ]
