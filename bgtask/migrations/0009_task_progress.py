"""Task.progress and progress_note: how far a running task says it is (issue 19 item 3)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("bgtask", "0008_queue_state"),
    ]

    operations = [
        migrations.AddField(
            model_name="task",
            name="progress",
            field=models.FloatField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="task",
            name="progress_note",
            field=models.CharField(blank=True, max_length=255, null=True),
        ),
    ]
