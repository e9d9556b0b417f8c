"""Cancelled tasks get a status of their own (issue 19).

Until now a cancel wrote ``status = 'failed'`` with ``last_error`` set to ``Cancelled: <reason>``
or ``Cancelled before it ran.`` (bgtask.features.cancellation); those rows move to
``cancelled``, so that failure counts stop including them. Only those two exact shapes move: an
exception's text such as ``CancelledError`` is a real failure. Going back moves every cancelled
row to ``failed`` again, as the older code would have written it.
"""

from django.db import migrations, models
from django.db.models import Q


def _old_cancels(Task):
    shape = Q(last_error__startswith="Cancelled: ") | Q(last_error="Cancelled before it ran.")
    return Task.objects.filter(shape, status="failed")


def forwards(apps, schema_editor):
    Task = apps.get_model("bgtask", "Task")
    _old_cancels(Task).using(schema_editor.connection.alias).update(
        status="cancelled", failed_at=None
    )


def backwards(apps, schema_editor):
    Task = apps.get_model("bgtask", "Task")
    tasks = Task.objects.using(schema_editor.connection.alias).filter(status="cancelled")
    tasks.update(status="failed", failed_at=models.F("finished_at"))


class Migration(migrations.Migration):
    dependencies = [
        ("bgtask", "0006_admin_indexes"),
    ]

    operations = [
        migrations.AlterField(
            model_name="task",
            name="status",
            field=models.CharField(
                choices=[
                    ("queued", "Queued"),
                    ("running", "Running"),
                    ("succeeded", "Succeeded"),
                    ("failed", "Failed"),
                    ("cancelled", "Cancelled"),
                ],
                default="queued",
                max_length=10,
            ),
        ),
        migrations.RunPython(forwards, backwards),
        migrations.AddIndex(
            model_name="task",
            index=models.Index(
                condition=models.Q(("status", "cancelled")),
                fields=["id", "queue"],
                name="bgtask_cancelled_idx",
            ),
        ),
    ]
