"""Every bgtask signal fires with the task, and the error where there is one."""

import pytest
from django.test import override_settings

from bgtask import run_batch
from bgtask.exceptions import UnknownTask
from bgtask.models import Task
from bgtask.serialization import UndecodableArguments
from tests.features import tasks
from tests.sampleapp import tasks as sample

pytestmark = pytest.mark.django_db(transaction=True)


def names(received):
    return [name for name, _ in received]


def test_a_success_sends_enqueued_started_succeeded(received):
    task = sample.add(2, 3)
    run_batch(10)
    assert names(received) == ["task_enqueued", "task_started", "task_succeeded"]
    for _, kwargs in received:
        assert kwargs["task"].pk == task.pk
    assert received[-1][1]["result"] == 5


@override_settings(MAX_ATTEMPTS=2)
def test_a_failure_sends_retried_then_failed_with_the_error(received):
    task = tasks.fail("f")
    run_batch(10)
    Task.objects.filter(pk=task.pk).update(run_at=task.run_at)  # skip the backoff
    run_batch(10)
    sent = [(name, kwargs) for name, kwargs in received if name in ("task_retried", "task_failed")]
    assert [name for name, _ in sent] == ["task_retried", "task_failed"]
    for _, kwargs in sent:
        assert isinstance(kwargs["error"], RuntimeError) and kwargs["task"].pk == task.pk
    assert sent[-1][1]["task"].status == Task.FAILED


def test_tasks_that_cannot_run_send_their_error(received):
    Task.objects.create(task_name="nowhere.to.be.found")
    Task.objects.create(task_name="sample.noop", arguments="not json")
    run_batch(10)
    errors = {name: kwargs["error"] for name, kwargs in received if "error" in kwargs}
    assert isinstance(errors["task_retried"], UnknownTask)
    assert isinstance(errors["task_failed"], UndecodableArguments)


def test_bulk_repetitions_and_periodic_rows_send_enqueued(received):
    tasks.record.bulk([("a",), ("b",)])
    tasks.record("r", repeat=60)
    run_batch(10)
    assert names(received).count("task_enqueued") == 4  # 2 bulk + 1 call + 1 repetition


@override_settings(MAX_ATTEMPTS=2)
def test_tasks_rescued_from_a_dead_worker_send_retried_then_failed(received):
    from datetime import timedelta

    from django.utils import timezone

    from bgtask.exceptions import TaskAbandoned

    past = timezone.now() - timedelta(minutes=5)
    requeued = Task.objects.create(
        task_name="sample.noop",
        status=Task.RUNNING,
        locked_by="dead",
        locked_until=past,
        run_at=timezone.now() + timedelta(hours=1),
    )
    failed = Task.objects.create(
        task_name="sample.noop",
        status=Task.RUNNING,
        locked_by="dead",
        locked_until=past,
        attempts=1,
    )
    assert run_batch(5).rescued == 2
    errors = {kwargs["task"].pk: (name, kwargs["error"]) for name, kwargs in received}
    assert errors[requeued.pk][0] == "task_retried"
    assert errors[failed.pk][0] == "task_failed"
    assert isinstance(errors[failed.pk][1], TaskAbandoned)
    assert "Abandoned" in str(errors[failed.pk][1])
