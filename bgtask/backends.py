"""Django's Tasks framework (Django >= 6.0) on bgtask's table and worker.

    TASKS = {"default": {"BACKEND": "bgtask.backends.DatabaseBackend"}}

``@django.tasks.task`` functions then enqueue rows into ``bgtask_task`` and run under
``run_batch`` like any bgtask task, honouring ``priority``, ``queue_name`` (stored as the queue),
``run_after``, ``takes_context`` and async functions. ``get_result(id)`` reads the row back as a
``TaskResult``; ``django.tasks.signals`` are sent on enqueue, start and finish.

Statuses map: queued = READY, running = RUNNING, succeeded = SUCCESSFUL, failed = FAILED, and
cancelled = FAILED too (Django's statuses have no cancelled one). As Django's contract says, a task
that raises has FAILED: these rows are not retried (a worker that dies under one still gets it
rescued and run again).

Rows name their task ``django:<module path>``. The worker looks that name up among the Task
objects this process has seen defined (``@task`` validates against the backend, which registers
it), enqueued, or imported by bgtask's autodiscovery of every app's ``tasks`` module; it never
imports a dotted path read from a row.

>>> from django.tasks import task
>>> @task(priority=10, queue_name="default")
... def add(a, b):
...     return a + b
>>> result = add.enqueue(1, 2)
>>> run_batch(10)
>>> add.get_result(result.id).return_value
3
"""

from __future__ import annotations

import contextvars
import dataclasses
import re
from typing import Any

try:
    from django.tasks import TaskContext, TaskResult, TaskResultStatus
except ImportError as exc:  # Django < 6.0
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(
        "bgtask.backends.DatabaseBackend needs Django's Tasks framework (Django >= 6.0)."
    ) from exc
from django.tasks import signals as django_signals
from django.tasks.backends.base import BaseTaskBackend
from django.tasks.base import Task as DjangoTask
from django.tasks.base import TaskError
from django.tasks.exceptions import TaskResultDoesNotExist
from django.utils.json import normalize_json

from bgtask import clock, registry, signals
from bgtask.enqueue import trace_context
from bgtask.enqueue.readiness import writing_tasks
from bgtask.enqueue.validation import check_queue
from bgtask.models import Task
from bgtask.serialization import encode_arguments
from bgtask.store import TaskStore

NAME_PREFIX = "django:"

STATUSES = {
    Task.QUEUED: TaskResultStatus.READY,
    Task.RUNNING: TaskResultStatus.RUNNING,
    Task.SUCCEEDED: TaskResultStatus.SUCCESSFUL,
    Task.FAILED: TaskResultStatus.FAILED,
    Task.CANCELLED: TaskResultStatus.FAILED,
}

# The row being run in this thread, so a takes_context task gets a TaskContext for it.
_current_row: contextvars.ContextVar[Task | None] = contextvars.ContextVar(
    "bgtask_django_row", default=None
)
# module path -> the Task object as defined (priority/queue of a row come from the row).
_defined: dict[str, DjangoTask[..., Any]] = {}

# The last line of a traceback names the exception: "pkg.mod.Error: message" or "Error".
_EXCEPTION_LINE = re.compile(r"^([A-Za-z_][\w.]*)(?::|$)")


class DjangoTaskRunner:
    """What bgtask's registry holds for a django Task: runs a row's call of it."""

    # Django's contract: an exception makes the result FAILED, so no retries.
    retry_on_error = False

    def __init__(self, task: DjangoTask[..., Any]) -> None:
        self.task = task
        self.name = row_name(task)
        self.origin = task.module_path

    def run(self, args: list[Any], kwargs: dict[str, Any]) -> Any:
        if self.task.takes_context:
            row = _current_row.get()
            backend = self.task.get_backend()
            # The backend is a DatabaseBackend: only its validate_task registers a runner.
            result = backend.result_for(row) if row is not None else None  # type: ignore[attr-defined]
            args = [TaskContext(task_result=result), *args]  # type: ignore[arg-type]
        # normalize_json refuses a return value that is not JSON, as Django's backends do.
        return normalize_json(self.task.call(*args, **kwargs))


def row_name(task: DjangoTask[..., Any]) -> str:
    return f"{NAME_PREFIX}{task.module_path}"


def _register(task: DjangoTask[..., Any]) -> None:
    base = _defined.get(task.module_path)
    if base is not None and base.func is task.func:
        return
    _defined[task.module_path] = task
    registry.register(DjangoTaskRunner(task))


def exception_class_path(error_text: str) -> str:
    """``module.Class`` of the exception a stored traceback ends with (``builtins`` if bare).

    The exception line is the first after the traceback's last indented (source) line, so a
    message spanning several lines is not mistaken for it; text with no traceback (a time-out,
    an abandoned lease) is read from its first line.
    """
    lines = error_text.strip().splitlines() or [""]
    indented = [i for i, line in enumerate(lines) if line.startswith(" ")]
    line = lines[indented[-1] + 1] if indented and indented[-1] + 1 < len(lines) else lines[0]
    match = _EXCEPTION_LINE.match(line)
    if not match:
        return "builtins.Exception"
    path = match.group(1)
    return path if "." in path else f"builtins.{path}"


class DatabaseBackend(BaseTaskBackend):
    """A Django Tasks framework backend (Django 6.0+): ``@django.tasks.task`` functions are
    stored in ``bgtask_task`` and ``run_batch`` runs them with bgtask's own tasks.

    ``TASKS = {"default": {"BACKEND": "bgtask.backends.DatabaseBackend"}}``. Supports
    ``run_after``, priorities, async functions and ``get_result()``. A task that raises is
    ``FAILED`` at once, as Django's contract says: these rows are not retried.
    """

    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def validate_task(self, task: DjangoTask[..., Any]) -> None:
        super().validate_task(task)
        check_queue(task.queue_name)
        # Every Task validated here (at definition, .using(), enqueue) becomes runnable by name.
        _register(task)

    def enqueue[**P, R](
        self, task: DjangoTask[P, R], args: list[Any], kwargs: dict[str, Any]
    ) -> TaskResult[P, R]:
        self.validate_task(task)
        arguments = encode_arguments(
            normalize_json(list(args)),  # type: ignore[arg-type]  # a list stays a list
            normalize_json(dict(kwargs)),  # type: ignore[arg-type]  # a dict stays a dict
        )
        row = Task(
            task_name=row_name(task),
            queue=task.queue_name,
            priority=task.priority,
            arguments=arguments,
            run_at=task.run_after or clock.now(),
            # Kept as given: a TaskResult read back says None when no run_after was given.
            run_after=task.run_after,
            trace_context=trace_context.current(),
        )
        # No USE_TZ check here: Django's Tasks API allows naive run_after values when it is off.
        with writing_tasks(aware_time=False):
            TaskStore().insert(row)
        signals.task_enqueued.send(sender=Task, task=row)
        result: TaskResult[P, R] = self.result_for(row, task)  # type: ignore[assignment]
        django_signals.task_enqueued.send(type(self), task_result=result)
        return result

    def get_result(self, result_id: str) -> TaskResult[..., Any]:
        try:
            pk = int(str(result_id))
        except ValueError:
            raise TaskResultDoesNotExist(f"No task result with id {result_id!r}.") from None
        row = Task.objects.filter(pk=pk, task_name__startswith=NAME_PREFIX).first()
        if row is None:
            raise TaskResultDoesNotExist(f"No task result with id {result_id!r}.")
        return self.result_for(row)

    def result_for(
        self, row: Task, task: DjangoTask[..., Any] | None = None
    ) -> TaskResult[..., Any]:
        """The TaskResult a row stands for."""
        if task is None:
            base = _defined.get(row.task_name.removeprefix(NAME_PREFIX))
            if base is None:
                raise TaskResultDoesNotExist(
                    f"Task result {row.pk} is for {row.task_name}, which is not defined in this "
                    "process (is its module imported, e.g. an app's tasks module?)."
                )
            task = dataclasses.replace(
                base, priority=row.priority, queue_name=row.queue, run_after=row.run_after
            )
        status = STATUSES[row.status]
        runs = row.attempts + (1 if row.status in (Task.RUNNING, Task.SUCCEEDED) else 0)
        errors: list[TaskError] = []
        if row.last_error and row.status in (Task.FAILED, Task.CANCELLED, Task.QUEUED):
            errors.append(
                TaskError(
                    exception_class_path=exception_class_path(row.last_error),
                    traceback=row.last_error,
                )
            )
        result = TaskResult(
            task=task,
            id=str(row.pk),
            status=status,
            enqueued_at=row.created_at,
            started_at=row.started_at,
            finished_at=row.finished_at or row.failed_at,
            last_attempted_at=row.started_at,
            args=row.args,
            kwargs=row.kwargs,
            backend=self.alias,
            errors=errors,
            # bgtask keeps the current lease holder only, not every worker's id.
            worker_ids=[row.locked_by or "bgtask"] * runs,
        )
        if row.status == Task.SUCCEEDED:
            object.__setattr__(result, "_return_value", row.return_value)
        return result


def _backend_for(row: Task) -> DatabaseBackend | None:
    if not row.task_name.startswith(NAME_PREFIX):
        return None
    task = _defined.get(row.task_name.removeprefix(NAME_PREFIX))
    backend = task.get_backend() if task is not None else None
    return backend if isinstance(backend, DatabaseBackend) else None


def _on_started(sender: Any, task: Task, **kwargs: Any) -> None:
    backend = _backend_for(task)
    if backend is None:
        return
    _current_row.set(task)
    django_signals.task_started.send(type(backend), task_result=backend.result_for(task))


def _on_finished(sender: Any, task: Task, **kwargs: Any) -> None:
    backend = _backend_for(task)
    if backend is None:
        return
    _current_row.set(None)
    django_signals.task_finished.send(type(backend), task_result=backend.result_for(task))


signals.task_started.connect(_on_started, dispatch_uid="bgtask.backends.started")
signals.task_succeeded.connect(_on_finished, dispatch_uid="bgtask.backends.succeeded")
signals.task_failed.connect(_on_finished, dispatch_uid="bgtask.backends.failed")
