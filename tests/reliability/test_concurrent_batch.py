"""Issue 17: N tasks in flight in one batch, and ``async def`` tasks, keep every guarantee.

Real worker processes on the test database; every wait is for an event (a file a task writes, a
row's state), with a generous ceiling, never a fixed sleep.
"""

from __future__ import annotations

import json
import signal
from datetime import timedelta

import pytest
from django.utils import timezone

from bgtask import registry, run_batch
from bgtask.features import periodic as features_periodic
from bgtask.models import Task
from bgtask.worker.execution import run_to_completion
from tests.conftest import batch_result, start_batch_process, start_process_tasks, wait_for
from tests.reliability.helpers import execution_counts
from tests.sampleapp import tasks
from tests.sampleapp.models import Execution

LEASE = 2.0  # the killed workers' lease: short, so their tasks are rescued soon


def _blockers(tmp_path, n: int, prefix: str = "b", **options):
    """n tasks that each announce their start in a file, then wait for a shared release file."""
    release = tmp_path / f"{prefix}-release"
    started = [tmp_path / f"{prefix}-{i}.started" for i in range(n)]
    rows = [
        tasks.block_until_file(f"{prefix}{i}", str(path), str(release), schedule=0, **options)
        for i, path in enumerate(started)
    ]
    return rows, started, release


def _all_exist(paths):
    return lambda: all(path.exists() for path in paths)


@pytest.mark.django_db(transaction=True)
def test_an_async_task_runs_its_body_and_stores_its_result():
    task = tasks.async_record("a1")
    result = run_batch(30)
    task.refresh_from_db()
    assert (result.succeeded, task.status) == (1, Task.SUCCEEDED)
    assert json.loads(task.result) == {"key": "a1", "async": True}
    assert execution_counts() == {"a1": 1}


@pytest.mark.django_db(transaction=True)
def test_async_tasks_run_in_a_worker_process_at_concurrency_1_and_n():
    rows = [tasks.async_record(f"p{i}") for i in range(6)]
    assert batch_result(start_batch_process(60))["succeeded"] == 6
    more = [tasks.async_record(f"q{i}") for i in range(6)]
    assert batch_result(start_batch_process(60, concurrency=4))["succeeded"] == 6
    for row in rows + more:
        row.refresh_from_db()
        assert row.status == Task.SUCCEEDED and json.loads(row.result)["async"] is True
    assert set(execution_counts().values()) == {1}


def test_now_runs_an_async_task_to_completion_from_sync_code(db):
    assert tasks.async_record.now("n1") == {"key": "n1", "async": True}
    assert execution_counts() == {"n1": 1}


@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.django_db(transaction=True)
def test_n_tasks_are_running_at_the_same_moment(tmp_path, kind):
    release = tmp_path / "release"
    started = [tmp_path / f"{i}.started" for i in range(4)]
    make = tasks.block_until_file if kind == "sync" else tasks.async_block_until_file
    for i, path in enumerate(started):
        make(f"c{i}", str(path), str(release), schedule=0)
    worker = start_batch_process(120, concurrency=4)
    try:
        # All four have started and none can finish before the release: they run together.
        wait_for(_all_exist(started), timeout=60, message="four tasks running at once")
        assert Task.objects.running().count() == 4
        release.touch()
        result = batch_result(worker)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert result["succeeded"] == 4


@pytest.mark.django_db(transaction=True)
def test_a_slow_task_does_not_hold_back_the_quick_ones(tmp_path):
    started, release = tmp_path / "slow.started", tmp_path / "slow.release"
    slow = tasks.block_until_file("slow", str(started), str(release), schedule=0, priority=9)
    quick = [tasks.record(f"quick{i}") for i in range(10)]
    worker = start_batch_process(120, concurrency=2)
    try:
        wait_for(started.exists, timeout=60, message="the slow task to start")
        wait_for(
            lambda: (
                Task.objects.filter(pk__in=[t.pk for t in quick], status=Task.SUCCEEDED).count()
                == 10
            ),
            timeout=60,
            message="the quick tasks to finish while the slow one runs",
        )
        slow.refresh_from_db()
        assert slow.status == Task.RUNNING
        release.touch()
        result = batch_result(worker)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert result["succeeded"] == 11


@pytest.mark.django_db(transaction=True)
def test_one_tasks_timeout_stops_it_alone(tmp_path):
    release = tmp_path / "release"
    started = [tmp_path / f"{i}.started" for i in range(3)]
    others = [
        tasks.block_until_file(f"o{i}", str(path), str(release), schedule=0)
        for i, path in enumerate(started)
    ]
    # The function has a parameter named timeout: the task option goes through .enqueue().
    runaway = tasks.block_until_file.enqueue(
        ["runaway", str(tmp_path / "r.started"), str(tmp_path / "never")], timeout=1
    )
    worker = start_batch_process(120, concurrency=4)
    try:
        wait_for(_all_exist(started), timeout=60, message="the other tasks to start")

        def runaway_failed():
            runaway.refresh_from_db()
            return runaway.status == Task.FAILED

        wait_for(runaway_failed, timeout=60, message="the runaway to be stopped")
        assert "TaskTimedOut" in runaway.last_error
        # The others are still running: the timeout stopped its own task only.
        assert Task.objects.filter(pk__in=[t.pk for t in others], status=Task.RUNNING).count() == 3
        release.touch()
        result = batch_result(worker)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert (result["succeeded"], result["failed"]) == (3, 1)


@pytest.mark.django_db(transaction=True)
def test_an_async_tasks_timeout_cancels_it_and_fails_it(tmp_path):
    task = tasks.async_block_until_file.enqueue(
        ["aslow", str(tmp_path / "s"), str(tmp_path / "never")], timeout=0.5
    )
    quick = tasks.async_record("aquick")
    result = run_batch(60, concurrency=2)
    task.refresh_from_db()
    quick.refresh_from_db()
    assert (task.status, quick.status) == (Task.FAILED, Task.SUCCEEDED)
    assert "TaskTimedOut" in task.last_error
    assert result.failed == 1 and result.succeeded == 1


@pytest.mark.django_db(transaction=True)
def test_sigterm_with_n_in_flight_lets_them_finish_and_releases_the_rest(tmp_path):
    rows, started, release = _blockers(tmp_path, 3)
    rest = [tasks.record(f"rest{i}") for i in range(5)]
    Task.objects.filter(pk__in=[t.pk for t in rest]).update(priority=-1)
    worker = start_process_tasks("--duration", "120", "--concurrency", "3", "--sleep", "0.1")
    try:
        wait_for(_all_exist(started), timeout=60, message="three tasks in flight")
        worker.send_signal(signal.SIGTERM)
        release.touch()  # only after the signal may they finish
        _out, err = worker.communicate(timeout=90)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == 0, err[-3000:]
    assert Task.objects.filter(pk__in=[t.pk for t in rows], status=Task.SUCCEEDED).count() == 3
    assert not Task.objects.running().exists()
    assert not any(key.startswith("rest") for key in execution_counts())
    assert Task.objects.filter(pk__in=[t.pk for t in rest], status=Task.QUEUED).count() == 5


@pytest.mark.django_db(transaction=True)
def test_sigkill_with_n_in_flight_rescues_every_one_and_none_runs_twice_meanwhile(tmp_path):
    rows, started, release = _blockers(tmp_path, 4)
    worker = start_batch_process(
        120, concurrency=4, BGTASK_TEST_LEASE_SECONDS=str(LEASE), BGTASK_TEST_MAX_RUN_TIME="3600"
    )
    wait_for(_all_exist(started), timeout=60, message="four tasks in flight")
    killed_at = timezone.now()
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=30)
    running = list(Task.objects.running())
    assert len(running) == 4
    assert all(t.locked_until <= killed_at + timedelta(seconds=LEASE + 1) for t in running)
    # While the leases hold nobody runs them (checked in this process, if time is left).
    if timezone.now() < min(t.locked_until for t in running) - timedelta(seconds=0.5):
        meanwhile = run_batch(5, concurrency=4)
        assert (meanwhile.ran, meanwhile.rescued) == (0, 0)
    release.touch()
    wait_for(
        lambda: not Task.objects.running().filter(locked_until__gte=timezone.now()).exists(),
        timeout=60,
        message="the leases to expire",
    )
    result = batch_result(start_batch_process(60, concurrency=4))
    assert (result["rescued"], result["succeeded"]) == (4, 4)
    assert execution_counts() == {f"b{i}": 2 for i in range(4)}  # killed run + rescued run
    for row in rows:
        row.refresh_from_db()
        assert (row.status, row.attempts) == (Task.SUCCEEDED, 1)


@pytest.mark.django_db(transaction=True)
def test_no_task_starts_after_the_budget_with_n_threads(tmp_path):
    # Four blockers fill the slots; the budget ends while they run; the ten behind them must
    # not start, however soon a slot frees after the budget.
    rows, started, release = _blockers(tmp_path, 4)
    behind = [tasks.record(f"late{i}") for i in range(10)]
    Task.objects.filter(pk__in=[t.pk for t in behind]).update(priority=-1)
    worker = start_batch_process(1.0, concurrency=4)
    try:
        wait_for(_all_exist(started), timeout=60, message="four tasks in flight")
        # The batch's budget (1 s) is over once the runner has held them past it; the batch
        # reports it, and only then are they released.
        wait_for(
            lambda: (
                Task.objects.filter(pk__in=[t.pk for t in rows])
                .filter(started_at__lte=timezone.now() - timedelta(seconds=1.5))
                .count()
                == 4
            ),
            timeout=60,
            message="the budget to pass while the tasks run",
        )
        release.touch()
        result = batch_result(worker)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert result["budget_spent"] is True
    assert result["succeeded"] == 4
    assert not any(key.startswith("late") for key in execution_counts())
    assert Task.objects.filter(pk__in=[t.pk for t in behind], status=Task.QUEUED).count() == 10
    assert not Execution.objects.filter(key__startswith="late").exists()


@pytest.mark.django_db(transaction=True)
def test_async_callers_enqueue_with_the_awaitable_forms():
    from django.core.exceptions import SynchronousOnlyOperation

    from bgtask.bulk import aenqueue_many

    async def async_view():
        with pytest.raises(SynchronousOnlyOperation):
            tasks.record("sync-call-in-async-code")  # why the awaitable forms exist
        first = await tasks.record.adelay("a", schedule=0)
        second = await tasks.record.aenqueue(["b"], queue="mail")
        count = await aenqueue_many(
            [tasks.record.call("c"), tasks.add.call(1, 2)], return_tasks=False
        )
        return first, second, count, await tasks.add.anow(2, 3)

    # A loop of its own, not asyncio.run: that would leave the main thread without a current
    # loop, and the later tests that go through Mangum (asyncio.get_event_loop()) would fail.
    first, second, count, summed = run_to_completion(async_view())
    assert (first.queue, second.queue, count, summed) == ("default", "mail", 2, 5)
    assert Task.objects.count() == 4
    assert run_batch(30).succeeded == 4


@pytest.mark.django_db(transaction=True)
def test_a_periodic_async_task_runs_its_body():
    from bgtask.periodic import periodic

    @periodic("* * * * *", name="tests.async_periodic")
    async def tick():
        await Execution.objects.acreate(key="tick", pid=0)
        return "ticked"

    try:
        tick.enqueue()
        assert run_batch(30).succeeded >= 1
        assert execution_counts()["tick"] >= 1
        assert Task.objects.filter(task_name="tests.async_periodic", result='"ticked"').exists()
    finally:
        registry.unregister("tests.async_periodic")
        features_periodic.unregister("tests.async_periodic")


@pytest.mark.django_db(transaction=True)
def test_the_hard_deadline_stops_the_task_still_running_and_not_the_ones_that_finished(tmp_path):
    # The Lambda case: a task with no timeout of its own is cut at the invocation's deadline
    # (DeadlineReached, retried); the quick tasks beside it finish and are recorded.
    long_task = tasks.block_until_file("long", str(tmp_path / "s"), str(tmp_path / "never"))
    quick = [tasks.record(f"quick{i}") for i in range(5)]
    deadline = timezone.now() + timedelta(seconds=3)
    result = run_batch(30, concurrency=4, hard_deadline=deadline, lease_expires_at=deadline)
    long_task.refresh_from_db()
    assert long_task.status == Task.QUEUED and "DeadlineReached" in long_task.last_error
    assert Task.objects.filter(pk__in=[t.pk for t in quick], status=Task.SUCCEEDED).count() == 5
    assert (result.succeeded, result.retried) == (5, 1)
