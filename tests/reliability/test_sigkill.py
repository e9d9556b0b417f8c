"""SIGKILL of a worker mid-task and at random points of its claim/run/record cycle."""

import random
import signal
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from bgtask import conf, run_batch
from bgtask.models import Task
from tests.conftest import batch_result, start_batch_process, wait_for
from tests.reliability.helpers import enqueue_records, execution_counts, size
from tests.sampleapp import tasks
from tests.sampleapp.models import Execution

LEASE = 1.5  # MAX_RUN_TIME of the killed workers: short, so their tasks are rescued soon


def _leases_expired() -> bool:
    return not Task.objects.running().filter(locked_until__gte=timezone.now()).exists()


@pytest.mark.django_db(transaction=True)
def test_a_task_killed_mid_run_runs_again_once_its_lease_expires(tmp_path):
    started, release = tmp_path / "started", tmp_path / "release"
    task = tasks.block_until_file("victim", str(started), str(release), schedule=0)
    worker = start_batch_process(60, BGTASK_TEST_MAX_RUN_TIME=str(LEASE))
    wait_for(started.exists, message="the task to start")
    killed_at = timezone.now()
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=10)

    task.refresh_from_db()
    assert task.status == Task.RUNNING
    assert task.locked_until <= killed_at + timedelta(seconds=LEASE)
    # While the lease holds, nobody else may run it (it may still be running somewhere). Checked
    # in this process: a worker process could take longer to start than the lease has left.
    if timezone.now() < task.locked_until - timedelta(seconds=0.3):
        meanwhile = run_batch(5)
        assert (meanwhile.ran, meanwhile.rescued) == (0, 0)
    wait_for(_leases_expired, message="the lease to expire")

    release.touch()
    result = batch_result(start_batch_process(30))
    assert (result["rescued"], result["succeeded"]) == (1, 1)
    task.refresh_from_db()
    assert task.status == Task.SUCCEEDED
    assert task.attempts == 1  # the killed run counts as an attempt
    assert "Abandoned" in task.last_error
    assert Execution.objects.filter(key="victim").count() == 2


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_sigkill_at_random_points_loses_nothing_and_strands_nothing(full_count):
    wanted_kills = size(full_count, 50, 6)
    per_round = 150  # enough that the worker is still busy when the kill comes
    rng = random.Random(6)
    all_keys, kills, round_no = [], 0, 0
    # A round whose worker finished before the kill does not count; give up on a runaway loop.
    while kills < wanted_kills and round_no < 3 * wanted_kills:
        round_no += 1
        keys = [f"k{round_no}-{i}" for i in range(per_round)]
        all_keys += keys
        enqueue_records(keys)
        worker = start_batch_process(60, BGTASK_TEST_MAX_RUN_TIME=str(LEASE))
        # Wait until it is inside the cycle (claiming, running, recording), then kill at random.
        wait_for(
            lambda p=f"k{round_no}-", w=worker: (
                Execution.objects.filter(key__startswith=p).exists() or w.poll() is not None
            ),
            message="the worker to start running tasks",
        )
        time.sleep(rng.uniform(0, 0.08))  # a random point in the cycle, not a wait for a state
        if worker.poll() is None:
            kills += 1
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
        killed_at = timezone.now()
        # Nothing is locked beyond the lease the dead worker took.
        assert (
            not Task.objects.running()
            .filter(locked_until__gt=killed_at + timedelta(seconds=LEASE))
            .exists()
        )

    wait_for(_leases_expired, message="every lease to expire")
    final = batch_result(start_batch_process(300))
    counts = execution_counts()
    assert set(counts) == set(all_keys), "a task was lost"
    assert Task.objects.succeeded().count() == len(all_keys)
    assert not Task.objects.filter(status__in=[Task.QUEUED, Task.RUNNING]).exists()
    # Only the task running at the kill and the successes of its claim not yet written (at most
    # BGTASK_OUTCOME_BATCH - 1) can have had their side effect without their outcome.
    repeats = sum(n - 1 for n in counts.values())
    assert repeats <= kills * conf.outcome_batch()
    assert kills == wanted_kills
    print(
        f"\n[sigkill] {round_no} rounds, {kills} kills mid-cycle, {final['rescued']} rescued at "
        f"the end, {repeats} interrupted tasks ran again"
    )
