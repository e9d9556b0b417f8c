"""Task.cancel_requested_at: when a cancel of the running task was asked (issue 19 item 2)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("bgtask", "0010_worker_batches"),
    ]

    operations = [
        migrations.AddField(
            model_name="task",
            name="cancel_requested_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
