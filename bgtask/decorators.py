"""``@background``: turn a function into a task that calling enqueues.

>>> @background(schedule=60)
... def notify_user(user_id):
...     ...
>>> task = notify_user(42)            # a bgtask.models.Task row, due in 60 s
>>> notify_user(42, schedule=0)       # due now
>>> notify_user.now(42)               # runs here and now, writes nothing
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, overload

from bgtask import registry
from bgtask.enqueue.scheduling import Schedule
from bgtask.enqueue.task_function import TaskFunction
from bgtask.retry_policy import Backoff

__all__ = ["TaskFunction", "background"]


@overload
def background[**P, R](func: Callable[P, R], /) -> TaskFunction[P, R]: ...
@overload
def background[**P, R](
    *,
    schedule: Schedule | None = None,
    name: str | None = None,
    queue: str | None = None,
    priority: int = 0,
    timeout: float | None = None,
    unique: bool | str | None = None,
    verbose_name: str | None = None,
    max_attempts: int | None = None,
    retry_on: type[BaseException] | tuple[type[BaseException], ...] | None = None,
    backoff: Backoff | None = None,
    max_running: int | None = None,
    max_running_key: Callable[..., Any] | None = None,
    rate: str | None = None,
) -> Callable[[Callable[P, R]], TaskFunction[P, R]]: ...


def background(
    func: Callable[..., Any] | None = None,
    /,
    *,
    schedule: Schedule | None = None,
    name: str | None = None,
    queue: str | None = None,
    priority: int = 0,
    **defaults: Any,
) -> TaskFunction[..., Any] | Callable[[Callable[..., Any]], TaskFunction[..., Any]]:
    """Register a function as a background task; bare ``@background`` or with options.

    ``schedule``: default delay (seconds, ``timedelta``) or time (``datetime``) for each call;
    ``name``: the stored task name (default ``module.qualname``); ``queue``; ``priority`` (higher
    runs first); ``timeout`` (seconds) and ``unique`` (``"refuse"``/``"replace"``);
    ``verbose_name`` (a label shown in the admin); the retry policy ``max_attempts``,
    ``retry_on`` and ``backoff`` (``bgtask.retry_policy``). All of these but ``name``,
    ``retry_on`` and ``backoff``, and also ``repeat=``/``repeat_until=``, may be given at call
    time. Limits that hold across every worker (``bgtask.features.limits``), decoration only:
    ``max_running`` (at most this many of this task name running at once), ``max_running_key``
    (a function of the call's arguments: ``max_running`` then counts per key) and ``rate``
    (``"100/m"``: starts per second, minute or hour).

    Arguments of a call must survive a JSON round trip unchanged; anything else raises
    ``TypeError`` at call time and writes nothing.

    >>> @background(schedule=60, queue="emails", priority=5)
    ... def send_welcome(user_id): ...
    >>> send_welcome(7)                      # a Task row, due in 60 s
    >>> send_welcome(7, schedule=0)          # due now
    """

    def decorate(f: Callable[..., Any]) -> TaskFunction[..., Any]:
        task = TaskFunction(
            f, schedule=schedule, name=name, queue=queue, priority=priority, **defaults
        )
        registry.register(task)
        return task

    return decorate(func) if func is not None else decorate
