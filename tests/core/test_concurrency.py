"""Several run_batch processes at once: every task exactly once; a killed worker loses nothing."""

import os
import signal
from collections import Counter

import pytest
from django.db import connection
from django.utils import timezone

from bgtask import run_batch
from bgtask.models import Task
from tests.conftest import batch_result, start_batch_process, wait_for
from tests.sampleapp import tasks
from tests.sampleapp.models import Execution

pytestmark = pytest.mark.django_db(transaction=True)


def enqueue_records(count: int) -> list[str]:
    keys = [f"t{i}" for i in range(count)]
    rows = [Task(**tasks.record.build_row([key], {}, 0, None, None)) for key in keys]
    Task.objects.bulk_create(rows, batch_size=1000)
    return keys


def test_parallel_workers_run_every_task_exactly_once():
    processes, count = (2, 5000) if connection.vendor == "sqlite" else (4, 5000)
    keys = enqueue_records(count)
    workers = [start_batch_process(240) for _ in range(processes)]
    results = [batch_result(worker, timeout=300) for worker in workers]

    runs = Counter(Execution.objects.values_list("key", flat=True))
    assert set(runs) == set(keys), "every task ran"
    assert max(runs.values()) == 1, f"ran twice: {[k for k, n in runs.items() if n > 1][:10]}"
    assert sum(r["succeeded"] for r in results) == count
    assert Task.objects.succeeded().count() == count
    assert not Task.objects.exclude(status=Task.SUCCEEDED).exists()
    # The work was shared, not drained by one process while the others idled.
    pids = Counter(Execution.objects.values_list("pid", flat=True))
    assert len(pids) >= 2, pids


def test_worker_killed_mid_task_its_task_runs_again_after_max_run_time(tmp_path):
    started, release = tmp_path / "started", tmp_path / "release"
    task = tasks.block_until_file("victim", str(started), str(release))
    tasks.record("bystander", priority=-1)
    worker = start_batch_process(60, BGTASK_TEST_MAX_RUN_TIME="3")
    wait_for(started.exists, timeout=60, message="the task to start in the worker")
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait(timeout=10)

    task.refresh_from_db()
    assert task.status == Task.RUNNING and task.locked_until is not None
    # While its lease holds nobody may take it, and the bystander it never started is ours to run.
    assert run_batch(5).succeeded <= 1
    assert Execution.objects.filter(key="victim").count() == 1
    task.refresh_from_db()
    assert task.status == Task.RUNNING

    wait_for(lambda: timezone.now() > task.locked_until, timeout=30, message="the lease to expire")
    release.write_text("go")
    result = run_batch(10)
    task.refresh_from_db()
    assert result.rescued == 1
    assert task.status == Task.SUCCEEDED and task.attempts == 1 and "Abandoned" in task.last_error
    assert Execution.objects.filter(key="victim").count() == 2
    assert Execution.objects.filter(key="bystander").count() == 1
    assert not Task.objects.exclude(status=Task.SUCCEEDED).exists()


def test_concurrent_enqueue_and_drain_loses_nothing():
    """Enqueueing while workers drain (SQLite: no 'database is locked' reaches either side)."""
    worker = start_batch_process(60)
    for i in range(300):
        tasks.record(f"e{i}")
    first = batch_result(worker, timeout=120)
    rest = run_batch(30)
    assert first["succeeded"] + rest.succeeded == 300
    runs = Counter(Execution.objects.values_list("key", flat=True))
    assert len(runs) == 300 and max(runs.values()) == 1
