from typing import Any

from django.apps import AppConfig, apps
from django.db.backends.signals import connection_created

from bgtask import conf


def _tune_sqlite(sender: Any, connection: Any, **kwargs: Any) -> None:
    """WAL lets readers and one writer work at once, so enqueues are not blocked by a draining
    worker; synchronous=NORMAL is durable across a process crash (not a power cut) in WAL mode."""
    if connection.vendor != "sqlite" or not conf.sqlite_wal():
        return
    if connection.settings_dict["NAME"] in ("", ":memory:") or "mode=memory" in str(
        connection.settings_dict["NAME"]
    ):
        return
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")


class BgtaskConfig(AppConfig):
    name = "bgtask"
    verbose_name = "Background tasks"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.utils.module_loading import autodiscover_modules

        from bgtask import checks  # noqa: F401  (registers the system checks)

        connection_created.connect(_tune_sqlite, dispatch_uid="bgtask_tune_sqlite")
        # Wake-on-enqueue reads BGTASK_WAKE_FUNCTION at each enqueue and does nothing while it is
        # unset; boto3 is imported only when a wake-up is actually sent.
        from bgtask.aws.wake import on_task_enqueued, on_tasks_bulk_enqueued
        from bgtask.signals import task_enqueued, tasks_bulk_enqueued

        task_enqueued.connect(on_task_enqueued, dispatch_uid="bgtask_aws_wake")
        # Idle workers (issue 18): pg_notify on PostgreSQL, and this process's waiters on commit.
        from bgtask.enqueue import announce

        task_enqueued.connect(announce.on_task_enqueued, dispatch_uid="bgtask_announce")
        tasks_bulk_enqueued.connect(
            announce.on_tasks_bulk_enqueued, dispatch_uid="bgtask_announce_bulk"
        )
        tasks_bulk_enqueued.connect(on_tasks_bulk_enqueued, dispatch_uid="bgtask_aws_wake_bulk")
        # BGTASK_IMMEDIATE (tests): read at each enqueue; the worker is imported only when it runs.
        from bgtask.testing import immediate

        immediate.connect()
        # Optional integrations: each connects only when its library imports (bgtask.integrations).
        from bgtask.integrations import opentelemetry, sentry

        opentelemetry.connect()
        sentry.connect()
        # The admin lives with the rest of the web side (bgtask.web), not at bgtask.admin where the
        # admin's autodiscovery looks, so it is registered here when the admin is installed.
        if apps.is_installed("django.contrib.admin"):
            from bgtask.web import admin  # noqa: F401

        # Every installed app's tasks module registers its tasks; an error inside one propagates.
        autodiscover_modules("tasks")
