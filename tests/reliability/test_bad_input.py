"""Bad input at every core entrance: a clear error where it enters, and nothing half-written."""

import math
import subprocess
import sys
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings
from django.utils import timezone

from bgtask import run_batch
from bgtask.models import Task
from tests.conftest import REPO_ROOT, worker_env
from tests.reliability.helpers import enqueue_records, execution_counts
from tests.sampleapp import tasks

# -- enqueue: arguments ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "says"),
    [
        ((object(),), {}, TypeError, "args[0]"),
        (({1, 2},), {}, TypeError, "set is not JSON"),
        (((1, 2),), {}, TypeError, "tuple would come back as a list"),
        ((datetime(2026, 1, 1),), {}, TypeError, "datetime is not JSON"),
        ((Decimal("1.5"),), {}, TypeError, "Decimal is not JSON"),
        ((math.nan,), {}, TypeError, "NaN and infinity"),
        (([1, {"deep": [math.inf]}],), {}, TypeError, "args[0][1]['deep'][0]"),
        ((), {"key": {1: "int key"}}, TypeError, "dict key 1 is not a string"),
        ((b"bytes",), {}, TypeError, "bytes is not JSON"),
    ],
)
@pytest.mark.django_db
def test_arguments_that_are_not_json_are_refused_and_nothing_is_written(args, kwargs, error, says):
    with pytest.raises(error) as caught:
        tasks.record.enqueue(args, kwargs)
    assert says in str(caught.value)
    assert "JSON" in str(caught.value)
    assert not Task.objects.exists()


@pytest.mark.django_db
def test_arguments_over_the_size_limit_are_refused_and_nothing_is_written():
    with override_settings(BGTASK_MAX_ARGS_BYTES=1000):
        tasks.record("x" * 900)  # under the limit: fine
        with pytest.raises(ValueError, match=r"over BGTASK_MAX_ARGS_BYTES \(1000\)"):
            tasks.record("x" * 1000)
        with pytest.raises(ValueError, match="pass its id"):
            tasks.record("é" * 600)  # counted in bytes, not characters
    assert Task.objects.count() == 1


@pytest.mark.parametrize("limit", [0, -1, 1.5, "big", None, True])
@pytest.mark.django_db
def test_a_nonsense_size_limit_setting_is_a_configuration_error(limit):
    from django.core.exceptions import ImproperlyConfigured

    with override_settings(BGTASK_MAX_ARGS_BYTES=limit), pytest.raises(ImproperlyConfigured):
        tasks.record("x")
    assert not Task.objects.exists()


# -- enqueue: schedule, queue, priority ------------------------------------------------------


@pytest.mark.parametrize(
    ("schedule", "error", "says"),
    [
        ("soon", TypeError, "not str"),
        ("60", TypeError, "not str"),
        ([60], TypeError, "not list"),
        (True, TypeError, "not a bool"),
        (math.nan, ValueError, "finite"),
        (math.inf, ValueError, "finite"),
        (-math.inf, ValueError, "finite"),
        (1e30, ValueError, "beyond any date"),
        (timedelta(days=999_999_999), ValueError, "beyond any date"),
        (-timedelta(days=999_999_999), ValueError, "beyond any date"),
        (datetime.max.replace(tzinfo=ZoneInfo("Etc/GMT+12")), ValueError, "beyond any date in UTC"),
        (datetime.min.replace(tzinfo=ZoneInfo("Etc/GMT-12")), ValueError, "beyond any date in UTC"),
        (datetime.max.date(), TypeError, "not date"),
    ],
)
@pytest.mark.django_db
def test_wrong_schedules_are_refused_and_nothing_is_written(schedule, error, says):
    with pytest.raises(error, match=says):
        tasks.record("k", schedule=schedule)
    assert not Task.objects.exists()


@pytest.mark.django_db
def test_a_schedule_in_the_past_is_due_at_once():
    tasks.record("late", schedule=-3600)
    tasks.record("later", schedule=timezone.now() - timedelta(days=400))
    assert Task.objects.due().count() == 2


@pytest.mark.parametrize(
    ("option", "error"),
    [
        ({"queue": ""}, TypeError),
        ({"queue": "   "}, TypeError),
        ({"queue": 5}, TypeError),
        ({"queue": "q" * 101}, ValueError),
        ({"priority": "high"}, TypeError),
        ({"priority": 1.5}, TypeError),
        ({"priority": True}, TypeError),
        ({"priority": 2**40}, ValueError),
    ],
)
@pytest.mark.django_db
def test_wrong_queue_or_priority_is_refused_and_nothing_is_written(option, error):
    with pytest.raises(error):
        tasks.record("k", **option)
    assert not Task.objects.exists()


# -- run_batch -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("duration", "error"),
    [
        (0, ValueError),
        (-1, ValueError),
        (-1e9, ValueError),
        (math.nan, ValueError),
        (math.inf, ValueError),
        ("55", TypeError),
        (None, TypeError),
        (True, TypeError),
        ([55], TypeError),
    ],
)
@pytest.mark.django_db
def test_run_batch_refuses_negative_or_absurd_durations_and_touches_nothing(duration, error):
    enqueue_records(["untouched"])
    with pytest.raises(error, match="duration"):
        run_batch(duration)
    task = Task.objects.get()
    assert (task.status, task.locked_by, task.attempts) == (Task.QUEUED, None, 0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"queue": ""},
        {"queue": 7},
        {"lease_expires_at": datetime(2030, 1, 1)},  # naive: which zone?
    ],
)
@pytest.mark.django_db
def test_run_batch_refuses_bad_options_and_touches_nothing(kwargs):
    enqueue_records(["untouched"])
    with pytest.raises((TypeError, ValueError)):
        run_batch(5, **kwargs)
    assert Task.objects.get().locked_by is None


# -- rows written by something else: unknown names, corrupt rows ----------------------------


@pytest.mark.django_db(transaction=True)
def test_unknown_task_names_are_not_run_and_do_not_block_the_rest(tmp_path):
    marker = tmp_path / "pwned"
    Task.objects.create(task_name="no.such.task")
    Task.objects.create(
        task_name="os.system", arguments=f'{{"args": ["touch {marker}"], "kwargs": {{}}}}'
    )
    Task.objects.create(task_name="")
    enqueue_records(["good"])
    result = run_batch(30)
    assert (result.retried, result.succeeded) == (3, 1)
    for task in Task.objects.exclude(task_name="sample.record"):
        # Retried with backoff: a newer deploy may know the name.
        assert task.status == Task.QUEUED and task.run_at > timezone.now()
        assert "is registered in this process" in task.last_error
    assert not marker.exists()
    assert execution_counts() == {"good": 1}


@pytest.mark.parametrize(
    "stored",
    [
        "not json",
        "",
        "[1, 2]",
        "null",
        '{"args": 5}',
        '{"args": [], "kwargs": []}',
        '{"args": "abc", "kwargs": {}}',
        "\x01\x02binary",
    ],
)
@pytest.mark.django_db(transaction=True)
def test_corrupt_stored_arguments_fail_that_task_only(stored):
    corrupt = Task.objects.create(task_name="sample.record", arguments=stored, priority=10)
    enqueue_records(["good"])
    result = run_batch(30)
    assert (result.failed, result.succeeded) == (1, 1)
    corrupt.refresh_from_db()
    # Retrying cannot fix a corrupt row: it fails at once, saying what is wrong.
    assert corrupt.status == Task.FAILED and corrupt.attempts == 1
    assert "Stored arg" in corrupt.last_error
    assert execution_counts() == {"good": 1}


@pytest.mark.django_db(transaction=True)
def test_stored_arguments_that_do_not_fit_the_function_are_retried_with_a_clear_error():
    Task.objects.create(
        task_name="sample.record", arguments='{"args": [1, 2, 3], "kwargs": {"nope": 1}}'
    )
    result = run_batch(30)
    assert result.retried == 1
    assert "TypeError" in Task.objects.get().last_error


@pytest.mark.django_db(transaction=True)
def test_rows_in_an_unknown_status_are_left_alone():
    Task.objects.create(task_name="sample.record", status="bogus", arguments='{"args": ["x"]}')
    enqueue_records(["good"])
    assert run_batch(30).succeeded == 1
    assert Task.objects.get(status="bogus").locked_by is None
    assert execution_counts() == {"good": 1}


# -- process_tasks options -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "says"),
    [
        (["--sleep", "-1"], "--sleep must be"),
        (["--sleep", "nan"], "--sleep must be"),
        (["--sleep", "inf"], "--sleep must be"),
        (["--duration", "nan"], "--duration must be"),
        (["--duration", "abc"], "invalid float value"),
        (["--sleep", "soon"], "invalid float value"),
        (["--log-level", "LOUD"], "invalid choice"),
        (["--queue", ""], "--queue: queue must be a non-empty string"),
        (["--queue", "q" * 101], "--queue: queue names are at most 100"),
        (["--log-file", "/nonexistent-dir/bgtask.log"], "--log-file"),
        (["--no-such-option"], "unrecognized arguments"),
    ],
)
@pytest.mark.django_db
def test_process_tasks_refuses_bad_options_with_a_command_error(options, says):
    enqueue_records(["untouched"])
    with pytest.raises(CommandError, match=says.replace("(", r"\(")):
        call_command("process_tasks", "--duration", "1", *options)
    assert Task.objects.get().status == Task.QUEUED
    assert not execution_counts()


@pytest.mark.django_db(transaction=True)
def test_process_tasks_bad_option_from_the_shell_is_one_line_and_exit_1():
    done = subprocess.run(
        [sys.executable, "-m", "django", "process_tasks", "--queue", ""],
        env=worker_env(),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("CommandError: --queue")


@pytest.mark.parametrize(
    "lease",
    [
        {"locked_by": "gone-worker", "locked_until": None},  # running with no lease at all
        {"locked_by": None, "locked_until": None},
    ],
)
@pytest.mark.django_db(transaction=True)
def test_a_running_row_without_a_lease_is_rescued_not_stuck_forever(lease):
    stuck = Task.objects.create(
        task_name="sample.record", arguments='{"args": ["stuck"]}', status=Task.RUNNING, **lease
    )
    result = run_batch(30)
    assert (result.rescued, result.succeeded) == (1, 1)
    stuck.refresh_from_db()
    assert stuck.status == Task.SUCCEEDED and stuck.attempts == 1
    assert execution_counts() == {"stuck": 1}
