"""The ``cancelled`` status (issue 19 item 1): its own state, apart from failures everywhere a
failure is counted, and migration 0007 moving the cancels stored as ``failed`` before it."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.urls import reverse
from django.utils import timezone

from bgtask.cancellation import cancel
from bgtask.models import Task
from bgtask.status import health
from bgtask.web.admin import retry_failed
from tests.features import tasks

pytestmark = pytest.mark.django_db(transaction=True)


def _finished(name, status, last_error="", queue="mail"):
    now = timezone.now()
    return Task.objects.create(
        task_name=name,
        queue=queue,
        status=status,
        last_error=last_error,
        started_at=now - timedelta(seconds=5),
        finished_at=now - timedelta(seconds=1),
    )


def test_cancel_writes_cancelled_and_failure_figures_leave_it_out():
    _finished("mail.send", Task.FAILED, "RuntimeError: smtp down")
    for i in range(3):
        assert cancel(tasks.record(f"c{i}", queue="mail"), reason="campaign over")
    assert Task.objects.cancelled().count() == 3
    assert Task.objects.failed().count() == 1
    figures = health()
    mail = figures["queues"]["mail"]
    assert (mail["failed"], mail["failed_last_hour"], mail["failed_last_day"]) == (1, 1, 1)
    assert (mail["cancelled"], mail["cancelled_last_hour"], mail["cancelled_last_day"]) == (3, 3, 3)
    assert [(row["task_name"], row["failures"]) for row in figures["most_failing"]] == [
        ("mail.send", 1)
    ]
    assert sum(point["failed"] for point in figures["throughput"]["per_minute"]) == 1


def test_cancelled_tasks_are_history_and_can_be_retried():
    task = tasks.record("r")
    cancel(task)
    assert list(Task.objects.finished()) == [task]
    assert retry_failed(Task.objects.filter(pk=task.pk)) == 1
    assert Task.objects.get(pk=task.pk).status == Task.QUEUED


def test_the_admin_filters_and_counts_cancelled_apart(client):
    client.force_login(User.objects.create_superuser("admin", "a@example.invalid", "pw"))
    failed = _finished("mail.send", Task.FAILED, "RuntimeError: smtp down")
    task = tasks.record("c")
    cancel(task, reason="unsubscribed")
    changelist = reverse("admin:bgtask_task_changelist")
    response = client.get(changelist, {"status__exact": "cancelled"})
    assert [t.pk for t in response.context["cl"].result_list] == [task.pk]
    assert ("Cancelled", 1) in response.context["status_counts"]
    assert ("Failed", 1) in response.context["status_counts"]
    response = client.get(changelist, {"status__exact": "failed"})
    assert [t.pk for t in response.context["cl"].result_list] == [failed.pk]
    page = client.get(reverse("admin:bgtask_task_change", args=[task.pk])).content.decode()
    assert "bgtask-status-cancelled" in page
    assert reverse("admin:bgtask_task_act", args=[task.pk, "retry"]) in page
    data = client.get(reverse("bgtask:status")).json()
    assert data["queues"]["default"]["cancelled"] == 1
    assert data["queues"]["default"]["failed"] == 0


def _migrate(target):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate([("bgtask", target)] if target else executor.loader.graph.leaf_nodes())


def test_migration_0007_moves_the_cancels_stored_as_failed():
    _migrate("0006_admin_indexes")
    try:
        executor = MigrationExecutor(connection)
        old_task = executor.loader.project_state(("bgtask", "0006_admin_indexes")).apps.get_model(
            "bgtask", "Task"
        )
        now = timezone.now()
        shapes = {
            "with_reason": ("failed", "Cancelled: campaign over"),
            "without_reason": ("failed", "Cancelled before it ran."),
            "real_failure": ("failed", "CancelledError: the event loop stopped"),
            "traceback": ("failed", "Traceback (most recent call last):\nCancelled: not ours"),
            "succeeded": ("succeeded", ""),
        }
        for name, (status, error) in shapes.items():
            old_task.objects.create(
                task_name=name, status=status, last_error=error, failed_at=now, finished_at=now
            )
        _migrate(None)
        after = dict(Task.objects.values_list("task_name", "status"))
        assert after == {
            "with_reason": "cancelled",
            "without_reason": "cancelled",
            "real_failure": "failed",
            "traceback": "failed",
            "succeeded": "succeeded",
        }
        assert Task.objects.get(task_name="with_reason").failed_at is None
        _migrate("0006_admin_indexes")
        assert Task.objects.filter(status="cancelled").count() == 0
        assert Task.objects.filter(status="failed").count() == 4
    finally:
        _migrate(None)
