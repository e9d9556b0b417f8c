"""Heartbeat leases: a dead worker's task is rescued about one lease after it died, a live
worker's long task is never taken over, and renewing costs one statement per worker."""

from __future__ import annotations

import signal
from datetime import timedelta
from unittest import mock

import pytest
from django.db import OperationalError, connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from bgtask import clock, run_batch
from bgtask.models import Task
from bgtask.store import TaskStore
from bgtask.worker.batch import new_worker_id
from bgtask.worker.heartbeat import Heartbeat
from tests.conftest import batch_result, start_batch_process, wait_for
from tests.reliability import tasks as hostile
from tests.reliability.helpers import enqueue_records
from tests.sampleapp import tasks
from tests.sampleapp.models import Execution

pytestmark = pytest.mark.django_db(transaction=True)

LEASE = 2.0  # BGTASK_LEASE_SECONDS of the worker processes
# Slack for the comparison of the test's clock with the rows (the same host's clock; the offset
# bgtask measures to the database is within a round trip).
SLACK = timedelta(seconds=0.5)


def _lease_expired(task: Task) -> bool:
    task.refresh_from_db()
    return task.status == Task.RUNNING and task.locked_until < clock.now()


@pytest.mark.parametrize("death", ["sigkill", "os._exit"])
def test_a_dead_workers_task_runs_again_about_one_lease_after_it_died(tmp_path, death):
    if death == "sigkill":
        started, release = tmp_path / "started", tmp_path / "release"
        task = tasks.block_until_file("victim", str(started), str(release), schedule=0)
    else:
        started = tmp_path / "exited"
        task = hostile.exit_process_once("victim", str(started), schedule=0)
    worker = start_batch_process(60, BGTASK_TEST_LEASE_SECONDS=str(LEASE))
    wait_for(started.exists, message="the task to start")
    if death == "sigkill":
        worker.send_signal(signal.SIGKILL)
        release.touch()  # for the run after the rescue
    assert worker.wait(timeout=30) == (-signal.SIGKILL if death == "sigkill" else 3)
    died_at = timezone.now()

    # MAX_RUN_TIME is an hour, yet the lease ends about one lease after the death.
    task.refresh_from_db()
    assert task.status == Task.RUNNING
    assert task.locked_until <= died_at + timedelta(seconds=LEASE) + SLACK
    wait_for(lambda: _lease_expired(task), 30, message="the dead worker's lease to run out")
    result = batch_result(start_batch_process(30))
    assert (result["rescued"], result["succeeded"]) == (1, 1)
    task.refresh_from_db()
    assert task.status == Task.SUCCEEDED and task.attempts == 1
    assert Execution.objects.filter(key="victim").count() == 2


def test_a_live_workers_long_task_is_never_taken_over(tmp_path):
    started, release = tmp_path / "started", tmp_path / "release"
    task = tasks.block_until_file("long", str(started), str(release), timeout=120, schedule=0)
    worker = start_batch_process(120, BGTASK_TEST_LEASE_SECONDS=str(LEASE))
    wait_for(started.exists, message="the task to start")
    task.refresh_from_db()
    first_lease = task.locked_until
    leases = {first_lease}
    # Other batches keep trying for four leases; none may rescue or run the task.
    while clock.now() < first_lease + timedelta(seconds=3 * LEASE):
        result = run_batch(0.5)
        assert (result.rescued, result.ran) == (0, 0)
        task.refresh_from_db()
        assert task.status == Task.RUNNING and task.locked_until > clock.now() - SLACK
        leases.add(task.locked_until)
        current = task.locked_until
        wait_for(
            lambda c=current: Task.objects.get(pk=task.pk).locked_until != c,
            30,
            message="the next renewal",
        )
    assert len(leases) >= 3, "the heartbeat did not renew the lease"
    release.touch()
    result = batch_result(worker)
    assert (result["succeeded"], result["rescued"]) == (1, 0)
    task.refresh_from_db()
    assert task.status == Task.SUCCEEDED and task.attempts == 0
    assert Execution.objects.filter(key="long").count() == 1


def test_one_renewal_is_one_statement_for_every_task_the_worker_holds():
    enqueue_records([f"r{i}" for i in range(5)])
    store, worker_id = TaskStore(), new_worker_id()
    beat = Heartbeat("default", worker_id, lease_seconds=60, max_run_time=3600)
    claimed = store.claim_due(worker_id, 10, beat.lease_until())
    assert len(claimed) == 5
    Task.objects.update(locked_until=timezone.now() + timedelta(seconds=5))
    beat.task_started(claimed[0].id)
    clock.offset()  # measured beforehand: the renewal itself is the only statement
    with CaptureQueriesContext(connection) as queries:
        assert beat.renew() == 5
    beat.stop()
    assert len(queries) == 1 and queries[0]["sql"].startswith("UPDATE"), queries.captured_queries
    soonest = timezone.now() + timedelta(seconds=60) - SLACK
    assert not Task.objects.filter(locked_until__lt=soonest).exists()


def test_fast_tasks_cause_no_renewal_and_a_slow_one_does(settings):
    settings.BGTASK_LEASE_SECONDS = 0.9
    enqueue_records([f"f{i}" for i in range(30)])
    assert run_batch(30).lease_renewals == 0
    tasks.slow_record("slow", 1.5, schedule=0)
    result = run_batch(30)
    assert result.succeeded == 1 and result.lease_renewals >= 1


def test_renewal_never_extends_a_lease_past_max_run_time():
    tasks.record("capped")
    store, worker_id = TaskStore(), new_worker_id()
    beat = Heartbeat("default", worker_id, lease_seconds=60, max_run_time=1)
    (task,) = store.claim_due(worker_id, 1, beat.lease_until())
    beat.task_started(task.id)
    started = clock.now()
    beat.renew()
    task.refresh_from_db()
    assert task.locked_until <= started + timedelta(seconds=1) + SLACK
    # Once the task has run MAX_RUN_TIME (counted on the monotonic clock) there is nothing left
    # to renew: renewals keep being refused from then on, and none went past the cap.
    wait_for(lambda: beat.renew() == 0, 30, message="renewals to stop at MAX_RUN_TIME")
    assert beat.renew() == 0
    beat.stop()
    task.refresh_from_db()
    assert task.locked_until <= started + timedelta(seconds=1) + SLACK


def test_a_failed_renewal_does_not_touch_the_task(caplog):
    tasks.record("renewal-fails")
    store, worker_id = TaskStore(), new_worker_id()
    beat = Heartbeat("default", worker_id, lease_seconds=60, max_run_time=3600)
    (task,) = store.claim_due(worker_id, 1, beat.lease_until())
    beat.task_started(task.id)
    with mock.patch.object(
        Task.objects.none().__class__, "update", side_effect=OperationalError("server gone")
    ):
        assert beat.renew() == 0
        assert beat.renew() == 0
    beat.stop()
    assert sum("Could not renew" in r.getMessage() for r in caplog.records) == 1
    assert Task.objects.running().count() == 1
