"""On Lambda a task may not outlive the invocation: its limit is the smaller of its ``timeout`` and
the time left before the safety margin; a task the deadline cuts is recorded as a retry before
Lambda would kill the process, and one whose ``timeout`` cannot fit is left for a later run."""

from __future__ import annotations

import pytest
from django.test import override_settings

from bgtask.models import Task
from handlers import worker
from handlers.local_context import LocalContext
from tests.sampleapp import tasks
from tests.sampleapp.models import Execution

pytestmark = pytest.mark.django_db(transaction=True)

MARGIN = 3.0


@override_settings(BGTASK_LAMBDA_SAFETY_MARGIN=MARGIN)
def test_a_task_still_running_at_the_deadline_is_stopped_and_retried_before_the_timeout():
    task = tasks.slow_record("long", 120)  # no timeout of its own
    context = LocalContext(timeout=MARGIN + 3)

    summary = worker.handler({"source": "bgtask.schedule"}, context)

    # The handler answered before Lambda's kill, with the attempt recorded as a retry.
    assert context.get_remaining_time_in_millis() > 0
    assert (summary["retried"], summary["failed"], summary["succeeded"]) == (1, 0, 0)
    task.refresh_from_db()
    assert task.status == Task.QUEUED and task.attempts == 1 and task.locked_by is None
    assert task.last_error.startswith("bgtask.timeouts.DeadlineReached: Stopped after")
    assert "invocation's deadline" in task.last_error
    assert Execution.objects.filter(key="long").count() == 1


@override_settings(BGTASK_LAMBDA_SAFETY_MARGIN=MARGIN)
def test_a_task_whose_own_timeout_is_shorter_than_what_is_left_fails_on_its_timeout():
    task = tasks.slow_record("own-timeout", 120, timeout=0.5)

    summary = worker.handler({"source": "bgtask.schedule"}, LocalContext(timeout=MARGIN + 30))

    assert summary["failed"] == 1
    task.refresh_from_db()
    assert task.status == Task.FAILED
    assert task.last_error.startswith("bgtask.timeouts.TaskTimedOut: Timed out")


@override_settings(BGTASK_LAMBDA_SAFETY_MARGIN=MARGIN)
def test_a_task_whose_timeout_cannot_fit_is_not_started_but_left_for_the_next_invocation():
    long = tasks.slow_record("too-long", 0, timeout=60)

    summary = worker.handler({"source": "bgtask.schedule"}, LocalContext(timeout=MARGIN + 20))

    assert (summary["succeeded"], summary["retried"], summary["released"]) == (0, 0, 1)
    assert summary["budget_spent"] is True  # so fan-out may start a fresh invocation for it
    long.refresh_from_db()
    assert long.status == Task.QUEUED and long.attempts == 0 and long.locked_by is None
    assert not Execution.objects.exists()

    # An invocation with the time for it runs it.
    summary = worker.handler({"source": "bgtask.schedule"}, LocalContext(timeout=MARGIN + 90))
    assert summary["succeeded"] == 1
    long.refresh_from_db()
    assert long.status == Task.SUCCEEDED
