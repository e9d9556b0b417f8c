"""MariaDB/MySQL have no partial indexes, so Django skips the partial claim indexes there.
These full indexes give the claim query the same shape (status first, then the claim order)."""

from django.db import migrations

INDEXES = {
    "bgtask_due_my_idx": "(status, priority DESC, run_at, id)",
    "bgtask_due_queue_my_idx": "(status, queue, priority DESC, run_at, id)",
}


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "mysql":
        return
    for name, columns in INDEXES.items():
        schema_editor.execute(f"CREATE INDEX {name} ON bgtask_task {columns}")


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "mysql":
        return
    for name in INDEXES:
        schema_editor.execute(f"DROP INDEX {name} ON bgtask_task")


class Migration(migrations.Migration):
    atomic = False
    dependencies = [("bgtask", "0001_initial")]
    operations = [migrations.RunPython(create, drop)]
