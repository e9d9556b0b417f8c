"""The enqueuing trace context on each row (issue 22, OpenTelemetry): nullable, no default to
write, so adding it rewrites no row on PostgreSQL, SQLite or MariaDB."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("bgtask", "0011_cancel_requested_at"),
    ]

    operations = [
        migrations.AddField(
            model_name="task",
            name="trace_context",
            field=models.TextField(blank=True, editable=False, null=True),
        ),
    ]
