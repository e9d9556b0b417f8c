"""bgtask.backends.DatabaseBackend: Django's Tasks framework on bgtask's table and run_batch."""

from datetime import timedelta

import pytest

pytest.importorskip("django.tasks", reason="Django's Tasks framework needs Django >= 6.0")

from django.tasks import TaskResultStatus, task_backends
from django.tasks import signals as django_signals
from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist
from django.utils import timezone

from bgtask import run_batch
from bgtask.backends import STATUSES, DatabaseBackend, exception_class_path
from bgtask.models import Task
from tests.conftest import batch_result, start_batch_process
from tests.features import django_tasks
from tests.sampleapp.models import Execution

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_configured_backend_is_bgtasks():
    assert isinstance(task_backends["default"], DatabaseBackend)
    assert django_tasks.add.get_backend() is task_backends["default"]


def test_enqueue_writes_a_row_and_run_batch_runs_it():
    result = django_tasks.add.enqueue(2, 3)
    assert result.status == TaskResultStatus.READY
    row = Task.objects.get(pk=int(result.id))
    assert row.task_name == "django:tests.features.django_tasks.add"
    assert (row.args, row.queue, row.priority) == ([2, 3], "default", 0)
    assert run_batch(10).succeeded == 1
    fetched = django_tasks.add.get_result(result.id)
    assert fetched.status == TaskResultStatus.SUCCESSFUL
    assert fetched.return_value == 5
    assert fetched.is_finished and fetched.finished_at is not None
    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL and result.return_value == 5


def test_priority_and_queue_name_are_stored_and_honoured():
    low = django_tasks.add.enqueue(1, 1)
    high = django_tasks.record.enqueue("high")
    row = Task.objects.get(pk=int(high.id))
    assert (row.priority, row.queue) == (50, "django-other")
    run_batch(10, queue="django-other")
    assert Task.objects.get(pk=int(low.id)).status == Task.QUEUED  # other queue: untouched
    assert list(Execution.objects.values_list("key", flat=True)) == ["high"]
    Execution.objects.all().delete()
    django_tasks.record.using(priority=-10, queue_name="default").enqueue("low")
    django_tasks.record.using(priority=10, queue_name="default").enqueue("high")
    run_batch(10, queue="default")
    assert list(Execution.objects.order_by("id").values_list("key", flat=True)) == ["high", "low"]


def test_run_after_defers_the_task():
    later = timezone.now() + timedelta(hours=1)
    result = django_tasks.add.using(run_after=later).enqueue(1, 2)
    assert Task.objects.get(pk=int(result.id)).run_at == later
    assert run_batch(5).ran == 0
    Task.objects.filter(pk=int(result.id)).update(run_at=timezone.now())
    assert run_batch(5).succeeded == 1


def test_takes_context_gets_this_result_and_attempt():
    result = django_tasks.with_context.enqueue("k")
    run_batch(10)
    value = django_tasks.with_context.get_result(result.id).return_value
    assert value == {"id": result.id, "attempt": 1, "key": "k"}


def test_async_functions_run():
    result = django_tasks.async_double.enqueue(21)
    run_batch(10)
    assert django_tasks.async_double.get_result(result.id).return_value == 42


def test_an_exception_fails_the_result_with_its_class_and_traceback():
    result = django_tasks.refuse.enqueue("no")
    outcome = run_batch(10)
    assert outcome.failed == 1 and outcome.retried == 0  # Django's contract: no retries
    failed = django_tasks.refuse.get_result(result.id)
    assert failed.status == TaskResultStatus.FAILED
    [error] = failed.errors
    assert error.exception_class is django_tasks.Refused
    assert "no" in error.traceback
    with pytest.raises(ValueError, match="failed"):
        failed.return_value  # noqa: B018


def test_a_return_value_that_is_not_json_fails_the_task():
    result = django_tasks.returns_object.enqueue()
    run_batch(10)
    assert django_tasks.returns_object.get_result(result.id).status == TaskResultStatus.FAILED


def test_unknown_ids_raise_task_result_does_not_exist():
    for bad in ("999999999", "abc", ""):
        with pytest.raises(TaskResultDoesNotExist):
            django_tasks.add.get_backend().get_result(bad)


def test_a_plain_bgtask_row_is_not_a_django_result():
    from tests.sampleapp import tasks

    row = tasks.noop()
    with pytest.raises(TaskResultDoesNotExist):
        django_tasks.add.get_backend().get_result(str(row.pk))


def test_statuses_map_one_to_one():
    assert set(STATUSES) == {s for s, _ in Task.STATUS_CHOICES}
    assert set(STATUSES.values()) == set(TaskResultStatus)


def test_each_status_reads_back():
    result = django_tasks.add.enqueue(1, 2)
    backend = django_tasks.add.get_backend()
    for status, expected in STATUSES.items():
        Task.objects.filter(pk=int(result.id)).update(status=status)
        assert backend.get_result(result.id).status == expected


def test_django_signals_are_sent():
    seen = []

    def receiver(sender, task_result, signal, **kwargs):
        seen.append((signal, task_result.status))

    for signal in (
        django_signals.task_enqueued,
        django_signals.task_started,
        django_signals.task_finished,
    ):
        signal.connect(receiver, weak=False)
    try:
        django_tasks.add.enqueue(1, 1)
        django_tasks.refuse.enqueue("x")
        run_batch(10)
    finally:
        for signal in (
            django_signals.task_enqueued,
            django_signals.task_started,
            django_signals.task_finished,
        ):
            signal.disconnect(receiver)
    names = [
        (
            {
                django_signals.task_enqueued: "enqueued",
                django_signals.task_started: "started",
                django_signals.task_finished: "finished",
            }[signal],
            status,
        )
        for signal, status in seen
    ]
    assert names.count(("enqueued", TaskResultStatus.READY)) == 2
    assert names.count(("started", TaskResultStatus.RUNNING)) == 2
    assert ("finished", TaskResultStatus.SUCCESSFUL) in names
    assert ("finished", TaskResultStatus.FAILED) in names


def test_invalid_tasks_are_refused_before_any_write():
    with pytest.raises(InvalidTask):
        django_tasks.add.using(queue_name="nope").enqueue(1, 2)
    with pytest.raises(InvalidTask):
        django_tasks.add.using(priority=1000)
    with pytest.raises(TypeError):
        django_tasks.add.enqueue(object(), 1)
    assert Task.objects.count() == 0


def test_rows_only_run_tasks_registered_under_their_name():
    # A row naming a path that was never defined as a django Task is not imported: it waits
    # (retried with backoff) for a worker that knows it.
    Task.objects.create(task_name="django:os.system", arguments='{"args":["true"],"kwargs":{}}')
    assert run_batch(5).retried == 1
    assert "No task named 'django:os.system'" in Task.objects.get().last_error


def test_exception_class_path_parses_tracebacks():
    assert exception_class_path("Traceback...\n  File x\nValueError: bad") == "builtins.ValueError"
    assert exception_class_path('  File "x"\n    code\npkg.mod.Err: multi\nline') == "pkg.mod.Err"
    assert exception_class_path("bgtask.timeouts.TaskTimedOut: Timed out") == (
        "bgtask.timeouts.TaskTimedOut"
    )
    assert exception_class_path("KeyError") == "builtins.KeyError"


def test_a_worker_process_runs_django_tasks_it_learned_by_autodiscovery():
    # The worker imports tests/features/tasks.py (an installed app's tasks module), which
    # imports the django.tasks module: that is how it knows these names.
    added = django_tasks.add.enqueue(20, 22)
    context = django_tasks.with_context.enqueue("p")
    assert batch_result(start_batch_process(30))["succeeded"] == 2
    assert django_tasks.add.get_result(added.id).return_value == 42
    value = django_tasks.with_context.get_result(context.id).return_value
    assert value["id"] == context.id and value["attempt"] == 1
