"""``@background``: turn a function into a task that calling enqueues.

>>> @background(schedule=60)
... def notify_user(user_id):
...     ...
>>> task = notify_user(42)            # a bgtask.models.Task row, due in 60 s
>>> notify_user(42, schedule=0)       # due now
>>> notify_user.now(42)               # runs here and now, writes nothing
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any, overload

from bgtask import clock, conf, registry
from bgtask.call_options import check_feature_defaults, feature_fields
from bgtask.scheduling import Schedule, resolve_schedule
from bgtask.serialization import encode_arguments

if TYPE_CHECKING:
    from bgtask.bulk import Call
    from bgtask.models import Task

MAX_NAME_LENGTH = 255
MAX_QUEUE_LENGTH = 100
PRIORITY_RANGE = (-(2**31), 2**31 - 1)

# Options of the features modules (repeating, timeouts, uniqueness), at decoration or call time.
FEATURE_OPTIONS = ("repeat", "repeat_until", "timeout", "unique")
# Keyword arguments a call takes for itself; the rest go to the task function.
ENQUEUE_OPTIONS = ("schedule", "queue", "priority", *FEATURE_OPTIONS)


def check_queue(queue: Any) -> str:
    if not isinstance(queue, str) or not queue.strip():
        raise TypeError(f"queue must be a non-empty string, got {queue!r}.")
    if len(queue) > MAX_QUEUE_LENGTH:
        raise ValueError(
            f"queue names are at most {MAX_QUEUE_LENGTH} characters: {queue[:40]!r}..."
        )
    return queue


def check_priority(priority: Any) -> int:
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise TypeError(f"priority must be an int (higher runs first), got {priority!r}.")
    low, high = PRIORITY_RANGE
    if not low <= priority <= high:
        raise ValueError(f"priority must be between {low} and {high}, got {priority}.")
    return priority


def _parameter_names(func: Callable[..., Any]) -> set[str]:
    try:
        parameters = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return set()
    return {p.name for p in parameters if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}


class TaskFunction:
    """A registered task. Calling it enqueues; ``.now()`` runs it in place."""

    def __init__(
        self,
        func: Callable[..., Any],
        *,
        name: str | None = None,
        schedule: Schedule | None = None,
        queue: str | None = None,
        priority: int = 0,
        **defaults: Any,
    ) -> None:
        if not callable(func):
            raise TypeError(f"@background needs a function, got {func!r}.")
        self.func = func
        self.origin = f"{func.__module__}.{func.__qualname__}"
        self.name = name if name is not None else self.origin
        if not isinstance(self.name, str) or not self.name or len(self.name) > MAX_NAME_LENGTH:
            raise ValueError(f"Task name must be 1 to {MAX_NAME_LENGTH} characters: {name!r}.")
        if schedule is not None:
            resolve_schedule(schedule)  # refuse a bad default at decoration, not at first call
        self.schedule = schedule
        self.queue = check_queue(queue) if queue is not None else None
        self.priority = check_priority(priority)
        self.defaults = check_feature_defaults(defaults)
        # A function with its own parameter named like a feature option (``fetch(url,
        # timeout=10)``) keeps receiving it; such a task sets that option with ``.enqueue()``.
        self.call_options = tuple(
            key
            for key in ENQUEUE_OPTIONS
            if key not in FEATURE_OPTIONS or key not in _parameter_names(func)
        )
        functools.update_wrapper(self, func)
        registry.register(self)

    def __repr__(self) -> str:
        return f"<TaskFunction {self.name}>"

    def __call__(self, *args: Any, **kwargs: Any) -> Task:
        """Store a Task that will call this function with these arguments, and return it."""
        options = {key: kwargs.pop(key) for key in self.call_options if key in kwargs}
        return self.enqueue(args, kwargs, **options)

    def enqueue(
        self,
        args: tuple[Any, ...] | list[Any] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        schedule: Schedule | None = None,
        queue: str | None = None,
        priority: int | None = None,
        **options: Any,
    ) -> Task:
        """Enqueue with explicit arguments, for functions whose own parameters are named like the
        call options (``schedule``, ``queue``, ``priority``, ``repeat``, ``timeout``, ...)."""
        from bgtask.models import Task
        from bgtask.signals import task_enqueued
        from bgtask.uniqueness import insert_unique

        row = self.build_row(args, kwargs or {}, schedule, queue, priority, **options)
        unique = row.pop("unique_mode", None)
        task = Task(**row)
        if unique:
            insert_unique(task, unique)
        else:
            task.save(force_insert=True)
        task_enqueued.send(sender=Task, task=task)
        return task

    def call(self, *args: Any, **kwargs: Any) -> Call:
        """A call to enqueue later with others: ``fn.bulk([...])`` or ``enqueue_many([...])``.

        >>> send_email.bulk([send_email.call(1, subject="hi"), send_email.call(2, schedule=60)])
        """
        from bgtask.bulk import Call

        options = {key: kwargs.pop(key) for key in self.call_options if key in kwargs}
        return Call(self, args, kwargs, options)

    def bulk(
        self,
        calls: Iterable[Call | tuple[Any, ...] | list[Any]],
        *,
        return_tasks: bool = True,
        **options: Any,
    ) -> list[Task] | int:
        """Enqueue many calls of this task in one INSERT; each item is a tuple of positional
        arguments or a ``fn.call(...)``. ``options`` (``schedule=``, ``queue=``, ...) apply to
        every tuple item. Returns the Task rows in order, or with ``return_tasks=False`` (the
        fast path for large batches) their number.

        >>> send_email.bulk([(1,), (2,), (3,)], schedule=60)
        >>> send_email.bulk(((i,) for i in range(100_000)), return_tasks=False)
        100000
        """
        from bgtask.bulk import Call, enqueue_many

        return enqueue_many(
            (
                item if isinstance(item, Call) else Call(self, tuple(item), {}, dict(options))
                for item in calls
            ),
            return_tasks=return_tasks,
        )

    def build_row(
        self,
        args: tuple[Any, ...] | list[Any],
        kwargs: dict[str, Any],
        schedule: Schedule | None = None,
        queue: str | None = None,
        priority: int | None = None,
        **options: Any,
    ) -> dict[str, Any]:
        """Validate one call and return the field values of its row; raises before any write."""
        run_at: datetime = resolve_schedule(
            schedule if schedule is not None else self.schedule, clock.now()
        )
        row = {
            "task_name": self.name,
            "arguments": encode_arguments(args, kwargs),
            "queue": check_queue(queue)
            if queue is not None
            else self.queue or conf.default_queue(),
            "priority": check_priority(priority) if priority is not None else self.priority,
            "run_at": run_at,
        }
        row.update(feature_fields(self, row, {**self.defaults, **options}))
        return row

    def now(self, *args: Any, **kwargs: Any) -> Any:
        """Run the function here and now and return its value; nothing is stored."""
        return self.func(*args, **kwargs)

    def run(self, args: list[Any], kwargs: dict[str, Any]) -> Any:
        """Called by the worker with a row's decoded arguments."""
        return self.func(*args, **kwargs)


@overload
def background(func: Callable[..., Any], /) -> TaskFunction: ...
@overload
def background(
    *,
    schedule: Schedule | None = None,
    name: str | None = None,
    queue: str | None = None,
    priority: int = 0,
    timeout: float | None = None,
    unique: bool | str | None = None,
) -> Callable[[Callable[..., Any]], TaskFunction]: ...


def background(func=None, /, *, schedule=None, name=None, queue=None, priority=0, **defaults):
    """Register a function as a background task; bare ``@background`` or with options.

    ``schedule``: default delay (seconds, ``timedelta``) or time (``datetime``) for each call;
    ``name``: the stored task name (default ``module.qualname``); ``queue``; ``priority`` (higher
    runs first); ``timeout`` (seconds) and ``unique`` (``"refuse"``/``"replace"``). All of these,
    and ``repeat=``/``repeat_until=``, may also be given at call time.
    """
    if func is not None:
        return TaskFunction(
            func, schedule=schedule, name=name, queue=queue, priority=priority, **defaults
        )

    def decorate(f: Callable[..., Any]) -> TaskFunction:
        return TaskFunction(
            f, schedule=schedule, name=name, queue=queue, priority=priority, **defaults
        )

    return decorate
