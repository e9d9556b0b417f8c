"""``manage.py bgtask <verb>`` (issue 19 item 6): what each verb does, and the exit codes scripts
read, from a real process."""

import json

import pytest
from django.core.management import call_command

from bgtask.cancellation import cancel
from bgtask.features.pausing import paused_queues
from bgtask.models import Task
from tests.conftest import run_python
from tests.features import tasks

pytestmark = pytest.mark.django_db(transaction=True)


def bgtask_cli(*args: str):
    """``manage.py bgtask ARGS`` in a child process on the test database."""
    code = (
        "import sys, django; from django.core.management import execute_from_command_line; "
        f"execute_from_command_line(['manage.py', 'bgtask', *{list(args)!r}])"
    )
    return run_python(code)


def test_list_filters_and_prints_json():
    a = tasks.record("a", queue="mail")
    b = tasks.record("b")
    cancel(b)
    done = bgtask_cli("list", "--status", "cancelled", "--json")
    assert done.returncode == 0, done.stderr
    assert [row["id"] for row in json.loads(done.stdout)] == [b.pk]
    done = bgtask_cli("list", "--queue", "mail", "--name", "features.record")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == [
        "ID",
        "STATUS",
        "QUEUE",
        "TASK_NAME",
        "ATTEMPTS",
        "RUN_AT",
        "FINISHED_AT",
    ]
    assert [line.split()[0] for line in lines[1:]] == [str(a.pk)]


def test_show_prints_every_field_and_not_found_exits_3():
    task = tasks.record("shown")
    done = bgtask_cli("show", str(task.pk), "--json")
    assert done.returncode == 0, done.stderr
    row = json.loads(done.stdout)
    assert (row["id"], row["task_name"], row["status"]) == (task.pk, "features.record", "queued")
    done = bgtask_cli("show", str(task.pk))
    assert "task_name" in done.stdout and "features.record" in done.stdout
    done = bgtask_cli("show", str(task.pk + 1000))
    assert done.returncode == 3
    assert f"No task with id {task.pk + 1000}." in done.stderr


def test_retry_and_cancel_act_on_each_id_and_say_what_they_left():
    queued = tasks.record("q")
    other = tasks.record("o")
    done = bgtask_cli("cancel", str(queued.pk), str(other.pk))
    assert done.returncode == 0, done.stderr
    assert Task.objects.cancelled().count() == 2
    # Retry: the cancelled ones come back; a queued one is not applicable (4).
    third = tasks.record("t")
    done = bgtask_cli("retry", str(queued.pk), str(third.pk))
    assert done.returncode == 4, done.stderr
    assert Task.objects.get(pk=queued.pk).status == Task.QUEUED
    assert f"Task {third.pk}: is not failed or cancelled (it is queued)" in done.stderr
    # A missing id: the others are still acted on, and not found (3) wins over 4.
    done = bgtask_cli("cancel", str(queued.pk), "999999", str(other.pk))
    assert done.returncode == 3, done.stderr
    assert Task.objects.get(pk=queued.pk).status == Task.CANCELLED
    assert "Task 999999: not found." in done.stderr


def test_pause_resume_and_stats():
    tasks.record("s", queue="mail")
    done = bgtask_cli("pause", "mail")
    assert done.returncode == 0 and "Queue 'mail' paused." in done.stdout, done.stderr
    assert set(paused_queues()) == {"mail"}
    done = bgtask_cli("stats", "--json")
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout)
    assert figures["queues"]["mail"]["paused"] is True and figures["queues"]["mail"]["due"] == 1
    done = bgtask_cli("stats")
    header, row = (line.split() for line in done.stdout.splitlines())
    assert dict(zip(header, row, strict=True)) | {"LAG_S": "-"} == {
        "QUEUE": "mail",
        "DUE": "1",
        "SCHEDULED": "0",
        "RUNNING": "0",
        "FAILED": "0",
        "CANCELLED": "0",
        "LAG_S": "-",  # grows while the test runs
        "PAUSED": "yes",
    }
    assert bgtask_cli("resume", "mail").returncode == 0
    assert paused_queues() == {}
    assert "was not paused" in bgtask_cli("resume", "mail").stdout


@pytest.mark.parametrize(
    "args",
    [
        (),
        ("frobnicate",),
        ("show",),
        ("show", "x"),
        ("retry",),
        ("pause", ""),
        ("list", "--limit", "0"),
    ],
)
def test_usage_errors_exit_2(args):
    done = bgtask_cli(*args)
    assert done.returncode == 2, (done.stdout, done.stderr)


def test_call_command_raises_for_scripts_in_python():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError) as raised:
        call_command("bgtask", "show", "424242")
    assert raised.value.returncode == 3


def test_cancel_of_a_running_task_says_it_was_asked_to_stop():
    from datetime import timedelta

    from django.utils import timezone

    from bgtask.store import TaskStore

    tasks.record("r")
    [running] = TaskStore().claim_due("w", 1, timezone.now() + timedelta(minutes=5))
    done = bgtask_cli("cancel", str(running.pk))
    assert done.returncode == 0, done.stderr
    assert f"Task {running.pk}: asked to stop" in done.stdout
    assert "cancelled." not in done.stdout
    assert Task.objects.get(pk=running.pk).status == Task.RUNNING
