"""InvalidTaskError (or a subclass) raised by a task fails it at once, whatever attempts remain."""

import pytest

from bgtask import run_batch
from bgtask.exceptions import InvalidTaskError
from bgtask.models import Task
from tests.compat import tasks
from tests.sampleapp.models import Execution

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def failures():
    from bgtask import signals

    seen, retried = [], []

    def on_failed(sender, task, error, **kwargs):
        seen.append((task.pk, error))

    def on_retried(sender, task, **kwargs):
        retried.append(task.pk)

    signals.task_failed.connect(on_failed, weak=False)
    signals.task_retried.connect(on_retried, weak=False)
    yield seen, retried
    signals.task_failed.disconnect(on_failed)
    signals.task_retried.disconnect(on_retried)


@pytest.mark.parametrize("subclass", [False, True])
def test_the_task_fails_on_its_first_attempt_with_its_traceback(failures, subclass):
    seen, retried = failures
    task = tasks.invalid("k", subclass=subclass)
    outcome = run_batch(10)
    assert (outcome.failed, outcome.retried) == (1, 0)
    row = Task.objects.get(pk=task.pk)
    assert row.status == Task.FAILED and row.attempts == 1 and row.failed_at is not None
    assert row.last_error.startswith("Traceback")
    name = "OrderGone" if subclass else "InvalidTaskError"
    assert f"{name}: k:" in row.last_error
    assert "in invalid" in row.last_error  # the task's own frame
    [(pk, error)] = seen
    assert pk == task.pk and isinstance(error, InvalidTaskError)
    assert retried == []
    assert Execution.objects.count() == 1


def test_attempts_left_and_a_generous_policy_do_not_matter(failures):
    task = tasks.invalid("late")
    Task.objects.filter(pk=task.pk).update(attempts=3, max_attempts=100)
    run_batch(10)
    row = Task.objects.get(pk=task.pk)
    assert (row.status, row.attempts) == (Task.FAILED, 4)


def test_it_takes_the_seed_signature():
    error = InvalidTaskError("bad input", errors={"field": "missing"})
    assert str(error) == "bad input" and error.errors == {"field": "missing"}
    assert issubclass(InvalidTaskError, Exception)
