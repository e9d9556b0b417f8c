"""``capture_enqueued()``: record each task written while it is open, with arguments and options.

It listens to ``task_enqueued`` and ``tasks_bulk_enqueued`` (``bgtask.signals``), which every
enqueue path sends once its row is written, so it sees ``fn(...)``, ``fn.enqueue``, bulk enqueues,
``@periodic`` occurrences and the Django Tasks backend alike, and nothing is mocked: the rows are
written as usual. Inside an atomic block (a ``TestCase`` runs each test in one) it also runs the
``transaction.on_commit`` callbacks registered meanwhile when it closes, as a commit would, so a
task enqueued from ``on_commit`` is captured too.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections
from django.test import TestCase

from bgtask.models import Task
from bgtask.signals import task_enqueued, tasks_bulk_enqueued

_UNSET: Any = object()


@dataclass(frozen=True)
class EnqueuedTask:
    """One enqueued call, as it was written: ``task`` is the row (``None`` from the fast bulk
    path, ``fn.bulk(..., return_tasks=False)``, which makes no model instances)."""

    name: str
    args: list[Any]
    kwargs: dict[str, Any]
    queue: str
    priority: int
    run_at: datetime
    options: dict[str, Any] = field(default_factory=dict)
    task: Task | None = None

    @classmethod
    def from_task(cls, task: Task) -> EnqueuedTask:
        return cls(
            name=task.task_name,
            args=task.args,
            kwargs=task.kwargs,
            queue=task.queue,
            priority=task.priority,
            run_at=task.run_at,
            options=_options({field: getattr(task, field, None) for field in _OPTION_FIELDS}),
            task=task,
        )

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> EnqueuedTask:
        probe = Task(arguments=row["arguments"])  # decodes the stored JSON as the worker will
        return cls(
            name=row["task_name"],
            args=probe.args,
            kwargs=probe.kwargs,
            queue=row["queue"],
            priority=row["priority"],
            run_at=row["run_at"],
            options=_options({field: row.get(field) for field in _OPTION_FIELDS}),
        )


# Row fields set by call options other than queue/priority/schedule (None or "" when unset).
_OPTION_FIELDS = (
    "repeat",
    "repeat_until",
    "timeout",
    "unique_key",
    "verbose_name",
    "max_attempts",
)


def _options(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value not in (None, "", 0)}


def _task_name(task: Any) -> str:
    if isinstance(task, str):
        return task
    name = getattr(task, "name", None)
    if isinstance(name, str):
        return name
    raise TypeError(f"Expected a task function (or its name), got {task!r}.")


class EnqueuedTasks(Sequence[EnqueuedTask]):
    """What a capture saw, in order; a sequence of ``EnqueuedTask`` with assertions."""

    def __init__(self) -> None:
        self._items: list[EnqueuedTask] = []
        self._lock = threading.Lock()

    def __getitem__(self, index: Any) -> Any:
        return self._items[index]

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"<EnqueuedTasks {[(t.name, t.args, t.kwargs) for t in self._items]!r}>"

    def _add(self, item: EnqueuedTask) -> None:
        with self._lock:
            self._items.append(item)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def of(self, task: Any) -> list[EnqueuedTask]:
        """The calls of one task (a task function, or its name)."""
        name = _task_name(task)
        return [item for item in self._items if item.name == name]

    def matching(
        self,
        task: Any,
        *,
        args: Sequence[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        queue: str | None = None,
        priority: int | None = None,
        **options: Any,
    ) -> list[EnqueuedTask]:
        """The calls of ``task`` whose arguments and options equal those given (``None``: any)."""
        return [
            item
            for item in self.of(task)
            if (args is None or item.args == list(args))
            and (kwargs is None or item.kwargs == kwargs)
            and (queue is None or item.queue == queue)
            and (priority is None or item.priority == priority)
            and all(item.options.get(key) == value for key, value in options.items())
        ]

    def assert_enqueued(
        self,
        task: Any,
        *,
        args: Sequence[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        queue: str | None = None,
        priority: int | None = None,
        count: int | None = None,
        **options: Any,
    ) -> EnqueuedTask:
        """Fail unless ``task`` was enqueued with these arguments and options (``count``: exactly
        that many times); return the (first) matching call.

        >>> enqueued.assert_enqueued(send_receipt, args=[42], queue="emails")
        """
        found = self.matching(
            task, args=args, kwargs=kwargs, queue=queue, priority=priority, **options
        )
        wanted = _describe(task, args, kwargs, queue, priority, options)
        if not found or (count is not None and len(found) != count):
            seen = "\n".join(f"  - {_describe_item(item)}" for item in self._items) or "  nothing"
            times = f" {count} time(s)" if count is not None else ""
            raise AssertionError(
                f"Expected {wanted} to be enqueued{times}; found {len(found)} matching call(s). "
                f"Enqueued:\n{seen}"
            )
        return found[0]

    def assert_not_enqueued(
        self,
        task: Any,
        *,
        args: Sequence[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        queue: str | None = None,
        priority: int | None = None,
        **options: Any,
    ) -> None:
        """Fail if ``task`` was enqueued with these arguments and options (none given: at all)."""
        found = self.matching(
            task, args=args, kwargs=kwargs, queue=queue, priority=priority, **options
        )
        if found:
            raise AssertionError(
                f"Expected {_describe(task, args, kwargs, queue, priority, options)} not to be "
                f"enqueued; found {len(found)}: "
                + "; ".join(_describe_item(item) for item in found)
            )


def _describe(
    task: Any,
    args: Sequence[Any] | None,
    kwargs: dict[str, Any] | None,
    queue: str | None,
    priority: int | None,
    options: dict[str, Any],
) -> str:
    given = {"args": args, "kwargs": kwargs, "queue": queue, "priority": priority, **options}
    shown = ", ".join(f"{key}={value!r}" for key, value in given.items() if value is not None)
    return f"{_task_name(task)}({shown})"


def _describe_item(item: EnqueuedTask) -> str:
    extra = "".join(f", {key}={value!r}" for key, value in item.options.items())
    return (
        f"{item.name}(args={item.args!r}, kwargs={item.kwargs!r}, queue={item.queue!r}, "
        f"priority={item.priority}{extra})"
    )


@contextmanager
def capture_enqueued(
    *, run_on_commit: bool = True, using: str = DEFAULT_DB_ALIAS
) -> Iterator[EnqueuedTasks]:
    """Record what is enqueued while the block runs; yields an ``EnqueuedTasks``.

    ``run_on_commit``: inside an atomic block (a ``TestCase``'s test), run the
    ``transaction.on_commit`` callbacks registered on ``using`` during the block when it ends, as
    the commit the test never makes would (Django's ``captureOnCommitCallbacks(execute=True)``).
    Outside one, Django runs them at once anyway.
    """
    captured = EnqueuedTasks()

    def on_task(sender: Any, task: Task, **kwargs: Any) -> None:
        captured._add(EnqueuedTask.from_task(task))

    def on_rows(sender: Any, rows: list[dict[str, Any]], **kwargs: Any) -> None:
        for row in rows:
            captured._add(EnqueuedTask.from_row(row))

    uid = f"bgtask.testing.capture.{id(captured)}"
    task_enqueued.connect(on_task, dispatch_uid=uid, weak=False)
    tasks_bulk_enqueued.connect(on_rows, dispatch_uid=uid, weak=False)
    try:
        with ExitStack() as stack:
            if run_on_commit and connections[using].in_atomic_block:
                stack.enter_context(TestCase.captureOnCommitCallbacks(using=using, execute=True))
            yield captured
    finally:
        task_enqueued.disconnect(dispatch_uid=uid)
        tasks_bulk_enqueued.disconnect(dispatch_uid=uid)
