"""``TaskFunction``: what a registered task is, and how one call of it becomes a validated row.

``@background`` (``bgtask.decorators``) and ``@periodic`` make these and register them
(``bgtask.registry``); ``bgtask.bulk`` enqueues many calls of them (``Call``). This module uses none
of those, so imports run one way: decorators, bulk and registry depend on it, and it depends only on
the checks (``bgtask.validation``), the codecs and the row writers (``bgtask.enqueueing``).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, overload

from asgiref.sync import async_to_sync, sync_to_async

from bgtask import clock, conf
from bgtask.enqueue import trace_context
from bgtask.enqueue.enqueueing import enqueue_row, enqueue_rows
from bgtask.enqueue.scheduling import Schedule, resolve_schedule
from bgtask.enqueue.validation import (
    CALL_OPTIONS,
    DECORATOR_ONLY,
    check_feature_defaults,
    check_priority,
    check_queue,
    check_task_name,
    feature_fields,
)
from bgtask.features.limits import TaskLimit
from bgtask.models import Task
from bgtask.retry_policy import RetryPolicy
from bgtask.serialization import encode_arguments

# Options of the features modules (repeating, timeouts, uniqueness, verbose_name, retry policy),
# at decoration or call time.
FEATURE_OPTIONS = CALL_OPTIONS
# Keyword arguments a call takes for itself; the rest go to the task function.
ENQUEUE_OPTIONS = ("schedule", "queue", "priority", *FEATURE_OPTIONS)


def _parameter_names(func: Callable[..., Any]) -> set[str]:
    try:
        parameters = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return set()
    return {p.name for p in parameters if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}


class TaskFunction[**P, R]:
    """A registered task, made by ``@background``. Calling it enqueues; ``.now()`` runs it in place.

    It is generic in the decorated function's parameters ``P`` and return type ``R``, so a type
    checker sees ``send_email(7)`` checked against ``send_email``'s own parameters and
    ``send_email.now(7)`` returning what the function returns. A call that also passes a call
    option (``schedule=``, ``queue=``, ...) is checked for the option only: PEP 612 allows no
    keyword parameters beside a ``ParamSpec``. ``fn.using(schedule=60)(7)`` checks both.

    ``name`` is the task name stored in each row (the worker looks the function up by it);
    ``func`` is the decorated function. Keyword arguments named ``schedule``, ``queue``,
    ``priority``, ``repeat``, ``repeat_until``, ``timeout`` or ``unique`` are options of the call,
    unless the function has a parameter of that name; every other argument goes to the function.

    >>> task = send_email(7, subject="hi", schedule=60)   # a Task row, due in 60 s
    >>> send_email.enqueue([7], {"subject": "hi"}, queue="mail")
    >>> send_email.now(7, subject="hi")                     # runs here, stores nothing

    Making one does not register it (the worker could not find it): ``@background`` and
    ``@periodic`` make and register them.
    """

    func: Callable[P, R]

    def __init__(
        self,
        func: Callable[P, R],
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
        # An async def task: the worker awaits it on an event loop (asked once per task run).
        self.is_async = inspect.iscoroutinefunction(func)
        self.origin = f"{func.__module__}.{func.__qualname__}"
        self.name = check_task_name(name if name is not None else self.origin)
        if schedule is not None:
            resolve_schedule(schedule)  # refuse a bad default at decoration, not at first call
        self.schedule = schedule
        self.queue = check_queue(queue) if queue is not None else None
        self.priority = check_priority(priority)
        # max_running=, max_running_key=, rate= (bgtask.features.limits): decoration only, as a
        # limit belongs to the task name, which every worker looks up in its registry.
        self.limit = TaskLimit.from_options(defaults)
        self.defaults = check_feature_defaults(defaults)
        self.retry_policy = RetryPolicy.from_options(defaults)
        # A function with its own parameter named like a feature option (``fetch(url,
        # timeout=10)``, ``greet(verbose_name)``) keeps receiving it; such a task sets that
        # option with ``.enqueue()``.
        own = _parameter_names(func)
        self.call_options = tuple(
            key for key in ENQUEUE_OPTIONS if key not in FEATURE_OPTIONS or key not in own
        )
        # retry_on=/backoff= in a call are a mistake (they belong to the decorator), unless the
        # function has such a parameter: refused at the call rather than failing at every run.
        self.refused_call_options = tuple(key for key in DECORATOR_ONLY if key not in own)
        functools.update_wrapper(self, func)

    def __repr__(self) -> str:
        return f"<TaskFunction {self.name}>"

    # The first overload checks a call against the function's parameters. The others (one per
    # call option, each required there) let a call that passes that option through, with the
    # option's type checked and the function's arguments not: a ParamSpec takes no extra keyword.
    @overload
    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Task: ...
    @overload
    def __call__(self, *args: Any, schedule: Schedule | None, **kwargs: Any) -> Task: ...
    @overload
    def __call__(self, *args: Any, queue: str | None, **kwargs: Any) -> Task: ...
    @overload
    def __call__(self, *args: Any, priority: int | None, **kwargs: Any) -> Task: ...
    @overload
    def __call__(self, *args: Any, repeat: Schedule | None, **kwargs: Any) -> Task: ...
    @overload
    def __call__(self, *args: Any, repeat_until: datetime | None, **kwargs: Any) -> Task: ...
    @overload
    def __call__(self, *args: Any, timeout: float | None, **kwargs: Any) -> Task: ...
    @overload
    def __call__(self, *args: Any, unique: bool | str | None, **kwargs: Any) -> Task: ...
    @overload
    def __call__(self, *args: Any, verbose_name: str | None, **kwargs: Any) -> Task: ...
    @overload
    def __call__(self, *args: Any, max_attempts: int | None, **kwargs: Any) -> Task: ...
    def __call__(self, *args: Any, **kwargs: Any) -> Task:
        """Store a Task that will call this function with these arguments, and return it."""
        return self.enqueue(args, kwargs, **self._pop_options(kwargs))

    def using(
        self,
        *,
        schedule: Schedule | None = None,
        queue: str | None = None,
        priority: int | None = None,
        **options: Any,
    ) -> BoundOptions[P]:
        """These call options, then a call checked against the function's parameters.

        >>> send_email.using(schedule=60, queue="mail")(7, subject="hi")   # a Task row
        """
        chosen = {"schedule": schedule, "queue": queue, "priority": priority, **options}
        return BoundOptions(
            self, {key: value for key, value in chosen.items() if value is not None}
        )

    def _pop_options(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        options = {key: kwargs.pop(key) for key in self.call_options if key in kwargs}
        options.update((key, kwargs.pop(key)) for key in self.refused_call_options if key in kwargs)
        return options

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
        return enqueue_row(self.build_row(args, kwargs or {}, schedule, queue, priority, **options))

    def call(self, *args: Any, **kwargs: Any) -> Call:
        """A call to enqueue later with others: ``fn.bulk([...])`` or ``enqueue_many([...])``.

        >>> send_email.bulk([send_email.call(1, subject="hi"), send_email.call(2, schedule=60)])
        """
        return Call(self, args, kwargs, self._pop_options(kwargs))

    @overload
    def bulk(
        self,
        calls: Iterable[Call | tuple[Any, ...] | list[Any]],
        *,
        return_tasks: Literal[True] = True,
        **options: Any,
    ) -> list[Task]: ...
    @overload
    def bulk(
        self,
        calls: Iterable[Call | tuple[Any, ...] | list[Any]],
        *,
        return_tasks: Literal[False],
        **options: Any,
    ) -> int: ...
    @overload
    def bulk(
        self,
        calls: Iterable[Call | tuple[Any, ...] | list[Any]],
        *,
        return_tasks: bool,
        **options: Any,
    ) -> list[Task] | int: ...
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
        rows = rows_for_calls(
            item if isinstance(item, Call) else Call(self, tuple(item), {}, dict(options))
            for item in calls
        )
        return enqueue_rows(rows, return_tasks=return_tasks)

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
            "trace_context": trace_context.current(),
        }
        row.update(feature_fields(row, {**self.defaults, **options}))
        # Always present (None when unkeyed), so the rows of a bulk enqueue name the same fields.
        row["limit_key"] = (
            None if self.limit is None else self.limit.key_for(self.name, args, kwargs)
        )
        return row

    def now(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run the function here and now and return its value; nothing is stored.

        An ``async def`` task is run to completion on an event loop (from sync code; in async
        code, ``await fn.anow(...)``), so it returns the coroutine's result."""
        if self.is_async:
            # is_async: func is an async def, which Callable[P, R] cannot say (R is what it returns
            # once awaited).
            return async_to_sync(self.func)(*args, **kwargs)  # type: ignore[arg-type]
        return self.func(*args, **kwargs)

    async def anow(self, *args: Any, **kwargs: Any) -> Any:
        """``.now()`` for async code: await the function (a sync one runs in a thread)."""
        if self.is_async:
            return await self.func(*args, **kwargs)  # type: ignore[misc]  # is_async, as above
        return await sync_to_async(self.func)(*args, **kwargs)

    async def aenqueue(
        self,
        args: tuple[Any, ...] | list[Any] = (),
        kwargs: dict[str, Any] | None = None,
        **options: Any,
    ) -> Task:
        """``.enqueue()`` for async code (an async view): the row is written from a thread, as
        Django's async ORM does, instead of raising ``SynchronousOnlyOperation``.

        >>> task = await send_email.aenqueue([7], {"subject": "hi"}, schedule=60)
        """
        return await sync_to_async(self.enqueue)(args, kwargs, **options)

    async def adelay(self, *args: Any, **kwargs: Any) -> Task:
        """Calling the task (``fn(7, subject="hi", schedule=60)``) for async code.

        >>> task = await send_email.adelay(7, subject="hi", schedule=60)
        """
        options = self._pop_options(kwargs)
        return await sync_to_async(self.enqueue)(args, kwargs, **options)

    def run(self, args: list[Any], kwargs: dict[str, Any]) -> Any:
        """Called by the worker with a row's decoded arguments."""
        return self.func(*args, **kwargs)

    def arun(self, args: list[Any], kwargs: dict[str, Any]) -> Any:
        """Called by the worker for an ``async def`` task: the coroutine it awaits."""
        return self.func(*args, **kwargs)


class BoundOptions[**P]:
    """Call options chosen by ``fn.using(...)``; calling it enqueues with them."""

    def __init__(self, function: TaskFunction[P, Any], options: dict[str, Any]) -> None:
        self.function = function
        self.options = options

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Task:
        return self.function.enqueue(args, kwargs, **self.options)

    def call(self, *args: P.args, **kwargs: P.kwargs) -> Call:
        """A call with these options, to enqueue with others (``enqueue_many``)."""
        return Call(self.function, args, kwargs, dict(self.options))


@dataclass(frozen=True)
class Call:
    """One call of a task, not yet enqueued: ``fn.call(*args, **kwargs)`` builds one.

    Call options (``schedule=``, ``queue=``, ``priority=``, ``repeat=``, ...) go in ``options``.
    """

    function: TaskFunction[Any, Any]
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)


def rows_for_calls(calls: Iterable[Call]) -> list[dict[str, Any]]:
    """Validate every call (all before any write) and return their rows, in order.

    One bad call refuses them all with an error naming its position. Unique calls are refused:
    in a multi-row INSERT a duplicate would abort the whole statement.
    """
    rows = []
    for position, call in enumerate(calls):
        if not isinstance(call, Call):
            raise TypeError(
                f"enqueue_many() takes Call objects (fn.call(...)); item {position} is {call!r}."
            )
        try:
            fields = call.function.build_row(call.args, call.kwargs, **call.options)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"Call {position} ({call.function.name}): {exc}") from exc
        if fields.pop("unique_mode", None):
            raise ValueError(
                f"Call {position} ({call.function.name}) is unique (unique= or its decorator); "
                "bulk enqueue cannot honour that. Enqueue unique tasks one by one."
            )
        rows.append(fields)
    return rows
