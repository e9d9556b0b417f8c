"""Successes written in groups (bgtask.outcomes), with real worker processes: a crash re-runs at
most the one group not yet written, a lease lost while buffered is detected per row, a stop
signal writes the group, BGTASK_OUTCOME_BATCH=1 writes each success before the next task, and
task_succeeded is sent only once the row says succeeded."""

from __future__ import annotations

import json
import re
import signal
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from django.test import override_settings
from django.utils import timezone

from bgtask import run_batch, signals
from bgtask.models import Task
from tests.conftest import batch_result, start_batch_process, start_process_tasks, wait_for
from tests.reliability.helpers import enqueue, enqueue_records, execution_counts
from tests.sampleapp import tasks
from tests.sampleapp.models import Execution

LEASE = 1.5  # MAX_RUN_TIME of the killed worker: short, so its tasks are rescued soon
# Groups as large as the test needs and never written for their age: only a claim, a retry, a
# failure, the end of the batch or a full group writes them.
GROUPED = {"BGTASK_TEST_OUTCOME_BATCH": "1000", "BGTASK_TEST_OUTCOME_MAX_DELAY": "600"}
FAST, REST = 10, 20


def due() -> dict:
    """Due a few seconds ago: due for a worker whatever the database clock's measured offset."""
    return {"run_at": timezone.now() - timedelta(seconds=5)}


def key_of(task_row: Task) -> str:
    return json.loads(task_row.arguments)["args"][0]


@dataclass
class MidGroup:
    """A worker held inside a task while successes of the same claim wait in its buffer."""

    worker: object
    blocker: Task
    release: Path
    group: set[str]  # keys of tasks that ran (side effect written) but whose row is running


def _unwritten_keys(blocker: Task) -> set[str]:
    running = Task.objects.running().filter(task_name="sample.record")
    ran = set(execution_counts())
    return {key_of(row) for row in running if key_of(row) in ran}


def block_mid_group(tmp_path: Path, start) -> MidGroup:
    """Fast tasks, then one that blocks, then more behind it; the claim size doubles while claims
    go fast, so the blocking task is normally claimed after some fast ones of its claim ran. On a
    loaded machine it may be claimed first in its claim (nothing buffered): try again then."""
    for attempt in range(4):
        folder = tmp_path / str(attempt)
        folder.mkdir()
        # A worker writes its group before a task it does not know to be quick (bgtask.outcomes),
        # so it first runs the blocking task's name once, quickly: then the blocker finds a group.
        (folder / "warm-release").touch()
        tasks.block_until_file(
            "warm",
            str(folder / "warm-started"),
            str(folder / "warm-release"),
            schedule=timedelta(seconds=-5),
            priority=20,
        )
        enqueue_records([f"fast-{i}" for i in range(FAST)], priority=10, **due())
        started, release = folder / "started", folder / "release"
        blocker = tasks.block_until_file(
            "blocker", str(started), str(release), schedule=timedelta(seconds=-5), priority=5
        )
        enqueue_records([f"rest-{i}" for i in range(REST)], **due())
        worker = start()
        wait_for(
            lambda w=worker, s=started: s.exists() or w.poll() is not None,
            message="the blocking task to start",
        )
        assert worker.poll() is None, worker.communicate()[1][-3000:]
        blocker.refresh_from_db()
        group = _unwritten_keys(blocker)
        if group:
            return MidGroup(worker, blocker, release, group)
        release.touch()
        worker.kill()
        worker.wait()
        Task.objects.all().delete()
        Execution.objects.all().delete()
    pytest.fail("the blocking task was always first in its claim; no group was buffered")


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_group_reruns_that_group_only(tmp_path):
    held = block_mid_group(
        tmp_path, lambda: start_batch_process(60, BGTASK_TEST_MAX_RUN_TIME=str(LEASE), **GROUPED)
    )
    written = {key_of(row) for row in Task.objects.succeeded()}
    assert written, "no group was written before the kill"
    # Every buffered success belongs to the blocking task's claim: groups end at each claim.
    lease_holders = set(
        Task.objects.running().filter(task_name="sample.record").values_list("locked_by", flat=True)
    )
    assert lease_holders == {held.blocker.locked_by}
    running_at_kill = Task.objects.running().count()  # the group, the blocker, the unstarted
    held.worker.send_signal(signal.SIGKILL)
    held.worker.wait(timeout=10)

    wait_for(
        lambda: not Task.objects.running().filter(locked_until__gte=timezone.now()).exists(),
        message="the dead worker's leases to expire",
    )
    held.release.touch()
    result = batch_result(start_batch_process(60))
    assert result["rescued"] == running_at_kill
    assert Task.objects.count() == Task.objects.succeeded().count() == FAST + 2 + REST
    counts = execution_counts()
    reran = {key for key, n in counts.items() if n > 1}
    assert reran == held.group | {"blocker"}, "only the unwritten group may run again"
    assert all(counts[key] == 1 for key in written), "a written success ran again"
    assert max(counts.values()) == 2
    print(f"\n[batching] killed with {len(held.group)} success(es) buffered; exactly those re-ran")


@pytest.mark.django_db(transaction=True)
def test_a_lease_lost_while_buffered_is_detected_per_row_and_its_outcome_discarded(tmp_path):
    held = block_mid_group(tmp_path, lambda: start_batch_process(60, **GROUPED))
    stolen_key = sorted(held.group)[0]
    stolen = next(
        row
        for row in Task.objects.running().filter(task_name="sample.record")
        if key_of(row) == stolen_key
    )
    # Another worker rescued the row and claimed it while its success waited in the buffer.
    Task.objects.filter(id=stolen.id).update(locked_by="another-worker")
    held.release.touch()
    out, err = held.worker.communicate(timeout=120)
    assert held.worker.returncode == 0, err[-3000:]

    lost = re.findall(r"Task sample\.record #(\d+): lease lost", err)
    assert lost == [str(stolen.id)], err[-3000:]
    stolen.refresh_from_db()
    assert (stolen.status, stolen.locked_by) == (Task.RUNNING, "another-worker")
    others = Task.objects.exclude(id=stolen.id)
    # FAST + REST records, the warm-up run and the blocker; the stolen one is counted as run.
    assert others.count() == others.filter(status=Task.SUCCEEDED).count() == FAST + REST + 1
    assert json.loads(out.strip().splitlines()[-1])["succeeded"] == FAST + REST + 2


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
@pytest.mark.django_db(transaction=True)
def test_a_stop_signal_writes_the_buffered_group(tmp_path, sig):
    held = block_mid_group(
        tmp_path,
        lambda: start_process_tasks("--duration", "120", "--sleep", "0.1", **GROUPED),
    )
    held.worker.send_signal(sig)
    held.release.touch()
    _out, err = held.worker.communicate(timeout=60)
    assert held.worker.returncode == 0, err[-3000:]
    assert not Task.objects.running().exists(), "a success was left unwritten"
    ran = set(execution_counts())
    succeeded = {key_of(row) for row in Task.objects.succeeded().exclude(id=held.blocker.id)}
    assert held.group <= succeeded
    assert succeeded == ran - {"blocker"}
    assert Task.objects.get(id=held.blocker.id).status == Task.SUCCEEDED


def _observed_workload() -> None:
    """60 recording tasks with an observer after every sixth, in id order."""
    for i in range(60):
        enqueue_records([f"r{i}"], **due())
        if i % 6 == 5:
            enqueue("rel.observe_unwritten", [([f"obs{i}"], {})], **due())


def _observations() -> list[tuple[int, int]]:
    found = []
    for key in Execution.objects.filter(key__startswith="obs").values_list("key", flat=True):
        unwritten, running = re.search(r"unwritten=(\d+):running=(\d+)", key).groups()
        found.append((int(unwritten), int(running)))
    assert len(found) == 10
    return found


@pytest.mark.django_db(transaction=True)
def test_with_outcome_batch_1_each_success_is_written_before_the_next_task_starts():
    _observed_workload()
    batch_result(
        start_batch_process(60, BGTASK_TEST_OUTCOME_BATCH="1", BGTASK_TEST_OUTCOME_MAX_DELAY="600")
    )
    observed = _observations()
    assert all(unwritten == 0 for unwritten, _ in observed), observed
    # The observers ran inside claims of several tasks, where a buffer would have held some.
    assert any(running > 1 for _, running in observed), observed
    assert Task.objects.succeeded().count() == 70


@pytest.mark.django_db(transaction=True)
def test_grouped_successes_are_seen_unwritten_by_a_later_task_of_the_claim():
    # The control of the test above: the same workload does see unwritten successes when grouped.
    _observed_workload()
    batch_result(start_batch_process(60, **GROUPED))
    observed = _observations()
    assert any(unwritten > 0 for unwritten, _ in observed), observed
    assert Task.objects.succeeded().count() == 70


@pytest.mark.parametrize("outcome_batch", [1, 50])
@pytest.mark.django_db(transaction=True)
def test_task_succeeded_is_sent_once_the_row_says_succeeded(outcome_batch):
    seen = []

    def receiver(sender, task, result, **kwargs):
        row = Task.objects.get(id=task.id)
        seen.append((row.status, row.result, result, task.status))

    for i in range(30):
        tasks.add(i, 1, schedule=timedelta(seconds=-5))
    signals.task_succeeded.connect(receiver)
    try:
        with override_settings(BGTASK_OUTCOME_BATCH=outcome_batch, BGTASK_OUTCOME_MAX_DELAY=600):
            result = run_batch(60)
    finally:
        signals.task_succeeded.disconnect(receiver)
    assert result.succeeded == 30
    assert len(seen) == 30
    assert all(row == Task.SUCCEEDED for row, _, _, _ in seen), seen
    assert sorted(value for _, _, value, _ in seen) == list(range(1, 31))
    assert all(stored == json.dumps(value) for _, stored, value, _ in seen)
