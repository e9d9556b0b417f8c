"""timeout=: a runaway task is stopped in the worker and recorded as timed out."""

import threading

import pytest

from bgtask import run_batch
from bgtask.models import Task
from bgtask.timeouts import TaskTimedOut
from tests.features import tasks
from tests.sampleapp.models import Execution

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_runaway_loop_is_stopped_and_fails_saying_it_timed_out(received):
    tasks.spin("spin", 120, timeout=0.3)
    result = run_batch(60)
    assert (result.failed, result.retried, result.succeeded) == (1, 0, 0)
    task = Task.objects.get()
    assert task.status == Task.FAILED and task.attempts == 1
    assert "Timed out" in task.last_error and "0.3 s" in task.last_error
    [(_, failed)] = [item for item in received if item[0] == "task_failed"]
    assert isinstance(failed["error"], TaskTimedOut) and failed["task"].pk == task.pk


def test_a_task_that_swallows_exceptions_is_still_stopped():
    tasks.sleep_swallowing("swallow", 120, timeout=0.3)
    assert run_batch(60).failed == 1
    assert "Timed out" in Task.objects.get().last_error


def test_timeouts_work_when_run_batch_runs_in_another_thread():
    tasks.spin("thread", 120, timeout=0.3)
    outcome = {}
    worker = threading.Thread(target=lambda: outcome.update(result=run_batch(60)))
    worker.start()
    worker.join(60)
    assert not worker.is_alive()
    assert outcome["result"].failed == 1
    assert "Timed out" in Task.objects.get().last_error


def test_a_task_within_its_timeout_succeeds_and_the_next_one_is_not_hit():
    tasks.spin("quick", 0.01, timeout=5)
    tasks.record("after")
    assert run_batch(30).succeeded == 2
    assert Execution.objects.count() == 2


def test_timeout_is_validated_and_a_decorator_default_is_stored():
    for bad in (0, -1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="timeout"):
            tasks.record("x", timeout=bad)
    with pytest.raises(TypeError, match="timeout"):
        tasks.record("x", timeout="5")
    assert Task.objects.count() == 0
    assert tasks.with_defaults("k").timeout == 7.5
    assert tasks.record("y", timeout=2).timeout == 2.0


def test_a_worker_process_stops_a_runaway_and_carries_on():
    from tests.conftest import batch_result, start_batch_process

    tasks.sleep_swallowing("proc", 300, timeout=0.5)
    tasks.record("next")
    result = batch_result(start_batch_process(60))
    assert (result["failed"], result["succeeded"]) == (1, 1)
    assert Task.objects.failed().get().last_error.startswith("bgtask.timeouts.TaskTimedOut")


def test_a_function_with_its_own_timeout_parameter_keeps_receiving_it():
    from bgtask import background, registry

    @background(name="features.fetch")
    def fetch(url, timeout=10):
        return timeout

    try:
        task = fetch("https://example.invalid", timeout=3)
        assert (task.kwargs, task.timeout) == ({"timeout": 3}, None)
        limited = fetch.enqueue(["u"], {"timeout": 3}, timeout=1.5)
        assert (limited.kwargs, limited.timeout) == ({"timeout": 3}, 1.5)
    finally:
        registry.unregister("features.fetch")
