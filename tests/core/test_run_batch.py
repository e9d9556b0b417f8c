"""run_batch in this process: order, outcomes, retries, budget, leases, bad rows."""

import math
import threading
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from bgtask import BatchResult, run_batch
from bgtask.models import Task
from bgtask.signals import task_failed, task_retried, task_started, task_succeeded
from tests.sampleapp import tasks
from tests.sampleapp.models import Execution

pytestmark = pytest.mark.django_db


def order_of_runs() -> list[str]:
    return list(Execution.objects.order_by("id").values_list("key", flat=True))


def test_runs_due_tasks_and_reports_counts():
    for i in range(5):
        tasks.record(f"k{i}")
    result = run_batch(10)
    assert isinstance(result, BatchResult)
    assert (result.succeeded, result.failed, result.retried) == (5, 0, 0)
    assert Task.objects.succeeded().count() == 5
    assert sorted(order_of_runs()) == [f"k{i}" for i in range(5)]


def test_stores_the_return_value():
    task = tasks.add(2, 40)
    run_batch(5)
    task.refresh_from_db()
    assert task.status == Task.SUCCEEDED
    assert task.return_value == 42
    assert task.started_at is not None and task.finished_at >= task.started_at
    assert task.locked_by is None and task.locked_until is None


def test_future_tasks_are_left_alone():
    tasks.record("later", schedule=3600)
    result = run_batch(5)
    assert result.ran == 0
    assert Task.objects.get().status == Task.QUEUED
    assert Execution.objects.count() == 0


def test_higher_priority_first_then_oldest_run_at():
    now = timezone.now()
    tasks.record("low-old", priority=0, schedule=now - timedelta(seconds=30))
    tasks.record("high-new", priority=10, schedule=now - timedelta(seconds=1))
    tasks.record("high-old", priority=10, schedule=now - timedelta(seconds=20))
    tasks.record("low-new", priority=0, schedule=now - timedelta(seconds=2))
    tasks.record("negative", priority=-5, schedule=now - timedelta(seconds=60))
    run_batch(10)
    assert order_of_runs() == ["high-old", "high-new", "low-old", "low-new", "negative"]


def test_queue_filter_runs_only_that_queue():
    tasks.record("a", queue="alpha")
    tasks.record("b", queue="beta")
    result = run_batch(5, queue="alpha")
    assert result.succeeded == 1
    assert order_of_runs() == ["a"]
    assert Task.objects.get(queue="beta").status == Task.QUEUED


def test_failure_is_retried_with_the_seed_backoff():
    task = tasks.always_fail("first")
    before = timezone.now()
    result = run_batch(5)
    after = timezone.now()
    assert (result.succeeded, result.failed, result.retried) == (0, 0, 1)
    task.refresh_from_db()
    assert task.status == Task.QUEUED
    assert task.attempts == 1
    assert "RuntimeError: first" in task.last_error and "Traceback" in task.last_error
    # attempts ** 4 + 5 = 6 seconds after the failure
    assert before + timedelta(seconds=6) <= task.run_at <= after + timedelta(seconds=6)
    assert task.failed_at is None and task.locked_by is None


@pytest.mark.parametrize("attempts", [1, 2, 4, 10])
def test_backoff_grows_as_attempts_to_the_fourth_plus_five(attempts):
    task = tasks.always_fail()
    Task.objects.filter(pk=task.pk).update(attempts=attempts - 1)
    before = timezone.now()
    run_batch(5)
    task.refresh_from_db()
    assert task.attempts == attempts
    delay = (task.run_at - before).total_seconds()
    assert attempts**4 + 5 <= delay <= attempts**4 + 5 + 5


def test_retried_task_succeeds_when_due_again():
    task = tasks.fail_once("flaky")
    run_batch(5)
    Task.objects.filter(pk=task.pk).update(run_at=timezone.now())
    result = run_batch(5)
    task.refresh_from_db()
    assert result.succeeded == 1 and task.status == Task.SUCCEEDED and task.attempts == 1


def test_max_attempts_marks_failed_for_good(settings):
    settings.MAX_ATTEMPTS = 3
    task = tasks.always_fail("again")
    for expected_attempts in (1, 2):
        run_batch(5)
        Task.objects.filter(pk=task.pk).update(run_at=timezone.now())
        task.refresh_from_db()
        assert task.attempts == expected_attempts and task.status == Task.QUEUED
    result = run_batch(5)
    task.refresh_from_db()
    assert result.failed == 1
    assert task.status == Task.FAILED and task.attempts == 3 and task.failed_at is not None
    # Never again, even when its run_at has long passed.
    Task.objects.filter(pk=task.pk).update(run_at=timezone.now() - timedelta(days=1))
    assert run_batch(5).ran == 0


def test_default_max_attempts_is_25():
    task = tasks.always_fail()
    Task.objects.filter(pk=task.pk).update(attempts=23)
    run_batch(5)
    task.refresh_from_db()
    assert task.status == Task.QUEUED and task.attempts == 24
    Task.objects.filter(pk=task.pk).update(run_at=timezone.now())
    run_batch(5)
    task.refresh_from_db()
    assert task.status == Task.FAILED and task.attempts == 25


def test_unknown_task_name_is_recorded_and_retried_not_crashing_the_batch():
    ghost = Task.objects.create(task_name="no.such.task", arguments='{"args": [], "kwargs": {}}')
    tasks.record("after-ghost")
    result = run_batch(5)
    ghost.refresh_from_db()
    assert result.retried == 1 and result.succeeded == 1
    assert ghost.status == Task.QUEUED and ghost.attempts == 1
    assert "No task named 'no.such.task' is registered" in ghost.last_error
    assert ghost.run_at > timezone.now()


def test_dotted_path_in_a_row_is_never_imported():
    row = Task.objects.create(
        task_name="os.system", arguments='{"args": ["echo pwned"], "kwargs": {}}'
    )
    run_batch(5)
    row.refresh_from_db()
    assert row.status == Task.QUEUED and "No task named 'os.system'" in row.last_error


@pytest.mark.parametrize(
    "stored", ["not json", "[1, 2]", '{"args": {}, "kwargs": {}}', '{"args": [], "kwargs": []}']
)
def test_undecodable_arguments_fail_at_once(stored):
    bad = Task.objects.create(task_name="sample.record", arguments=stored)
    tasks.record("good")
    result = run_batch(5)
    bad.refresh_from_db()
    assert result.failed == 1 and result.succeeded == 1
    assert bad.status == Task.FAILED and bad.failed_at is not None
    assert "Stored" in bad.last_error


@pytest.mark.parametrize("duration", [0, -1, math.inf, -math.inf, math.nan])
def test_non_positive_or_non_finite_duration_is_a_value_error(duration):
    with pytest.raises(ValueError, match="duration"):
        run_batch(duration)


@pytest.mark.parametrize("duration", ["10", None, True])
def test_non_number_duration_is_a_type_error(duration):
    with pytest.raises(TypeError, match="duration"):
        run_batch(duration)


def test_budget_is_respected_and_unstarted_tasks_are_released_at_once():
    for i in range(6):
        tasks.slow_record(f"s{i}", 0.4)
    started = time.monotonic()
    result = run_batch(1)
    elapsed = time.monotonic() - started
    # At most the tasks started within the budget ran; none started after it.
    assert result.succeeded == Execution.objects.count()
    assert 1 <= result.succeeded <= 3
    assert result.budget_spent
    assert elapsed < 1 + 0.4 + 1  # budget + the task that was running + slack for a busy machine
    assert Task.objects.running().count() == 0
    left = Task.objects.due()
    assert left.count() == 6 - result.succeeded
    assert not left.exclude(locked_by=None).exists()
    # Claimable at once by the next batch.
    assert run_batch(10).succeeded == 6 - result.succeeded


def test_abandoned_task_is_claimed_again_after_max_run_time():
    task = tasks.record("abandoned")
    Task.objects.filter(pk=task.pk).update(
        status=Task.RUNNING,
        locked_by="dead-worker",
        locked_until=timezone.now() + timedelta(hours=1),
    )
    assert run_batch(5).ran == 0  # lease still valid: nobody else may run it
    Task.objects.filter(pk=task.pk).update(locked_until=timezone.now() - timedelta(seconds=1))
    result = run_batch(5)
    task.refresh_from_db()
    assert result.rescued == 1 and result.succeeded == 1
    assert task.status == Task.SUCCEEDED and task.attempts == 1
    assert "Abandoned" in task.last_error
    assert Execution.objects.filter(key="abandoned").count() == 1


def test_abandoned_task_out_of_attempts_is_failed(settings):
    settings.MAX_ATTEMPTS = 2
    task = tasks.record("doomed")
    Task.objects.filter(pk=task.pk).update(
        status=Task.RUNNING,
        attempts=1,
        locked_by="dead",
        locked_until=timezone.now() - timedelta(1),
    )
    result = run_batch(5)
    task.refresh_from_db()
    assert result.rescued == 1 and result.ran == 0
    assert task.status == Task.FAILED and task.attempts == 2 and task.failed_at is not None


@pytest.mark.parametrize(
    ("max_run_time", "lease_seconds", "expected"),
    [(3600, 60, 60), (120, 90, 90), (30, 60, 30)],
)
def test_lease_is_lease_seconds_from_the_claim_capped_by_max_run_time(
    settings, max_run_time, lease_seconds, expected
):
    settings.MAX_RUN_TIME = max_run_time
    settings.BGTASK_LEASE_SECONDS = lease_seconds
    seen = {}

    def grab(sender, task, **kwargs):
        seen.update(
            Task.objects.filter(pk=task.pk).values("status", "locked_until", "locked_by")[0]
        )

    task_started.connect(grab)
    try:
        before = timezone.now()
        tasks.record("x")
        run_batch(5)
    finally:
        task_started.disconnect(grab)
    assert seen["status"] == Task.RUNNING and seen["locked_by"]
    assert (
        before + timedelta(seconds=expected - 1)
        <= seen["locked_until"]
        <= timezone.now() + timedelta(seconds=expected + 1)
    )


def test_explicit_lease_deadline_is_used():
    until = timezone.now() + timedelta(seconds=42)
    seen = {}

    def grab(sender, task, **kwargs):
        seen["locked_until"] = Task.objects.get(pk=task.pk).locked_until

    task_started.connect(grab)
    try:
        tasks.record("x")
        run_batch(5, lease_expires_at=until)
    finally:
        task_started.disconnect(grab)
    assert seen["locked_until"] == until


def test_outcome_is_not_written_when_the_lease_was_taken_over():
    def steal(sender, task, **kwargs):
        Task.objects.filter(pk=task.pk).update(locked_by="someone-else")

    task_started.connect(steal)
    try:
        task = tasks.record("x")
        run_batch(5)
    finally:
        task_started.disconnect(steal)
    task.refresh_from_db()
    assert task.status == Task.RUNNING and task.locked_by == "someone-else"


def test_stop_event_ends_the_batch_after_the_running_task():
    stop = threading.Event()

    def stop_on_start(sender, task, **kwargs):
        stop.set()

    for i in range(3):
        tasks.record(f"k{i}")
    task_started.connect(stop_on_start)
    try:
        result = run_batch(10, stop=stop)
    finally:
        task_started.disconnect(stop_on_start)
    assert result.succeeded == 1
    assert Task.objects.due().count() == 2 and Task.objects.running().count() == 0


def test_signals_carry_the_task_and_error():
    events = []
    receivers = {
        task_started: lambda sender, task, **kw: events.append(("started", task.task_name)),
        task_succeeded: lambda sender, task, result, **kw: events.append(("succeeded", result)),
        task_retried: lambda sender, task, error, **kw: events.append(("retried", str(error))),
        task_failed: lambda sender, task, error, **kw: events.append(("failed", str(error))),
    }
    for signal, receiver in receivers.items():
        signal.connect(receiver, weak=False)
    try:
        tasks.add(1, 1, priority=2)
        tasks.always_fail("nope", priority=1)
        Task.objects.create(task_name="sample.add", arguments="{broken")
        run_batch(5)
    finally:
        for signal, receiver in receivers.items():
            signal.disconnect(receiver)
    assert ("started", "sample.add") in events
    assert ("succeeded", 2) in events
    assert ("retried", "nope") in events
    assert any(kind == "failed" and "not valid JSON" in text for kind, text in events)


def test_non_json_return_value_still_succeeds_without_a_result():
    from bgtask import background, registry

    @background(name="test.returns_object")
    def returns_object():
        return object()

    try:
        task = returns_object()
        assert run_batch(5).succeeded == 1
        task.refresh_from_db()
        assert task.status == Task.SUCCEEDED and task.result is None
    finally:
        registry.unregister("test.returns_object")


def test_system_exit_and_keyboard_interrupt_inside_a_task_do_not_end_the_batch():
    from bgtask import background, registry

    @background(name="test.exits")
    def exits(kind):
        raise SystemExit(3) if kind == "exit" else KeyboardInterrupt()

    try:
        exits("exit")
        exits("interrupt")
        tasks.record("survivor")
        result = run_batch(5)
    finally:
        registry.unregister("test.exits")
    assert result.retried == 2 and result.succeeded == 1
    assert Execution.objects.filter(key="survivor").exists()
