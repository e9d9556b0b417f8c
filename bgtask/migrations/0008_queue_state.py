"""bgtask_queue_state: the paused queues every claim leaves out (issue 19 item 4)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("bgtask", "0007_cancelled_status"),
    ]

    operations = [
        migrations.CreateModel(
            name="QueueState",
            fields=[
                ("name", models.CharField(max_length=100, primary_key=True, serialize=False)),
                ("paused", models.BooleanField(default=False)),
                ("paused_at", models.DateTimeField(blank=True, null=True)),
            ],
            options={
                "db_table": "bgtask_queue_state",
            },
        ),
    ]
