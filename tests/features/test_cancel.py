"""cancel(): a queued task never runs; a running one is asked to stop."""

from datetime import timedelta

import pytest
from django.utils import timezone

from bgtask import run_batch
from bgtask.cancellation import cancel, cancel_queued
from bgtask.models import Task
from bgtask.store import TaskStore
from bgtask.worker.completer import Completer
from bgtask.worker.execution import execute
from tests.features import tasks
from tests.sampleapp.models import Execution

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_cancelled_task_never_runs_and_says_why():
    task = tasks.record("c")
    assert cancel(task, reason="customer left") is True
    assert task.status == Task.CANCELLED
    assert task.last_error == "Cancelled: customer left"
    assert task.finished_at is not None
    assert run_batch(5).ran == 0
    assert not Execution.objects.exists()
    assert cancel(task) is False  # already finished


def test_a_running_task_that_ends_before_its_worker_sees_the_cancel_keeps_its_outcome():
    # Stopping a running task is asked, not done on the spot (tests/reliability/
    # test_cancel_running.py has a worker see the request and stop the task).
    task = tasks.record("r")
    store = TaskStore()
    [claimed] = store.claim_due("w", 1, timezone.now() + timedelta(minutes=5))
    assert cancel(task.pk) is True
    row = Task.objects.get(pk=task.pk)
    assert row.status == Task.RUNNING and row.cancel_requested_at is not None
    Completer(store, "w", group_size=1, max_delay=0).record(execute(claimed))
    assert Task.objects.get(pk=task.pk).status == Task.SUCCEEDED


def test_cancel_frees_the_unique_key_and_ends_a_repeating_chain():
    task = tasks.record("u", unique=True, repeat=60)
    assert cancel(task.pk)
    assert Task.objects.get(pk=task.pk).unique_key is None
    tasks.record("u", unique=True)  # not refused any more
    assert Task.objects.queued().count() == 1


def test_cancel_queued_takes_a_queryset_and_skips_others():
    for key in "abc":
        tasks.record(key)
    TaskStore().claim_due("w", 1, timezone.now() + timedelta(minutes=5))
    assert cancel_queued(Task.objects.all()) == 2
    assert Task.objects.running().count() == 1


def test_cancel_refuses_what_is_not_a_task():
    with pytest.raises(TypeError):
        cancel("12")
