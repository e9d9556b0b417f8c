"""Poison tasks never take the batch down or block the tasks behind them."""

import pytest
from django.test import override_settings
from django.utils import timezone

from bgtask import run_batch
from bgtask.models import Task
from tests.conftest import batch_result, start_batch_process
from tests.reliability.helpers import enqueue, enqueue_records, execution_counts

POISON = {
    "rel.always_raise": "RuntimeError: poison: always raises",
    "rel.raise_system_exit": "SystemExit: 3",
    "rel.raise_keyboard_interrupt": "KeyboardInterrupt: poison: Ctrl-C from inside a task",
    "rel.recurse_forever": "RecursionError",
}


def _enqueue_poison_then_good():
    # Poison first (higher priority), so the good tasks can only run if the batch survives it.
    for name in [*POISON, "rel.return_non_json"]:
        enqueue(name, [([], {})], priority=10)
    enqueue_records([f"good-{i}" for i in range(10)])


def _assert_poison_recorded(failed_status: str) -> None:
    for name, error in POISON.items():
        task = Task.objects.get(task_name=name)
        assert task.status == failed_status, name
        assert task.attempts >= 1
        assert error in task.last_error, (name, task.last_error[-300:])
        assert task.locked_by is None
    non_json = Task.objects.get(task_name="rel.return_non_json")
    assert non_json.status == Task.SUCCEEDED and non_json.result is None
    assert execution_counts() == {f"good-{i}": 1 for i in range(10)}
    assert Task.objects.filter(task_name="sample.record", status=Task.SUCCEEDED).count() == 10


@pytest.mark.django_db(transaction=True)
def test_poison_tasks_in_a_real_worker_process_are_retried_and_the_rest_run():
    _enqueue_poison_then_good()
    result = batch_result(start_batch_process(60))  # exit 0: SystemExit did not end the process
    assert result["retried"] == len(POISON)
    assert result["succeeded"] == 11
    _assert_poison_recorded(Task.QUEUED)
    # Retried with backoff, not at once: they cannot hog the next batch.
    assert not Task.objects.due().exists()


@pytest.mark.django_db(transaction=True)
def test_poison_tasks_fail_for_good_after_their_attempts():
    _enqueue_poison_then_good()
    with override_settings(MAX_ATTEMPTS=2):
        first = run_batch(30)
        Task.objects.queued().update(run_at=timezone.now())  # skip the backoff wait
        second = run_batch(30)
    assert (first.retried, first.succeeded) == (len(POISON), 11)
    assert (second.failed, second.ran) == (len(POISON), len(POISON))
    _assert_poison_recorded(Task.FAILED)
    assert all(t.failed_at for t in Task.objects.failed())


@pytest.mark.parametrize(
    ("name", "status", "says"),
    [
        ("rel.raise_unprintable", Task.QUEUED, "_UnprintableError"),
        ("rel.raise_huge_message", Task.QUEUED, "characters cut]"),
        ("rel.return_huge_result", Task.SUCCEEDED, ""),
    ],
)
@pytest.mark.django_db(transaction=True)
def test_unprintable_errors_and_huge_outcomes_are_recorded_without_breaking_the_batch(
    name, status, says
):
    # 20 MB: over MariaDB's default max_allowed_packet (16 MB), so storing it whole would fail.
    enqueue(name, [([], {})], priority=10)
    enqueue_records(["good"])
    result = run_batch(60)
    assert result.ran == 2
    task = Task.objects.get(task_name=name)
    assert task.status == status and task.locked_by is None
    assert says in task.last_error
    assert len(task.last_error) < 70_000
    assert task.result is None  # a huge result is dropped, not stored
    assert execution_counts() == {"good": 1}
