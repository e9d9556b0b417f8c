"""The limits a task sets with ``@background(max_running=, max_running_key=, rate=)``, and the
limits of this process (``current_limits()``: those and ``BGTASK_QUEUE_LIMITS``).

What a limit is, and how the claim enforces it across every worker, is in ``bgtask.limits``.

>>> @background(max_running=1, max_running_key=lambda account_id, **kw: account_id)
... def charge(account_id, amount): ...
>>> current_limits().tasks["shop.tasks.charge"].describe()
'at most 1 running per key'
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bgtask import registry
from bgtask.limits import (
    MAX_KEY_LENGTH,
    TASK_LIMIT_OPTIONS,
    Limit,
    LimitSet,
    Rate,
    check_max_running,
    queue_limits,
)

__all__ = ["LimitSet", "Rate", "TaskLimit", "current_limits", "queue_limits", "task_limits"]


@dataclass(frozen=True)
class TaskLimit:
    """What ``@background(max_running=, max_running_key=, rate=)`` asked, checked."""

    max_running: int | None = None
    key: Callable[..., Any] | None = None
    rate: Rate | None = None

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> TaskLimit | None:
        """Pop the limit options from the decorator's ``options``; None when none was given."""
        given = {name: options.pop(name) for name in TASK_LIMIT_OPTIONS if name in options}
        max_running = given.get("max_running")
        key = given.get("max_running_key")
        rate = given.get("rate")
        if max_running is None and key is None and rate is None:
            return None
        if max_running is not None:
            max_running = check_max_running(max_running)
        if key is not None:
            if not callable(key):
                raise TypeError(
                    "max_running_key must be a function of the task's arguments (lambda "
                    f"account_id, **kw: account_id), got {key!r}."
                )
            if max_running is None:
                raise TypeError(
                    "max_running_key needs max_running: it says how many may run at once per key."
                )
        return cls(max_running, key, None if rate is None else Rate.parse(rate))

    def as_limit(self, task_name: str) -> Limit:
        return Limit("task", task_name, self.max_running, self.key is not None, self.rate)

    def key_for(self, task_name: str, args: Any, kwargs: dict[str, Any]) -> str | None:
        """The row's ``limit_key``: the key function called with the call's arguments.

        It must return a string or an int (an int is stored as its text); anything else, or an
        exception from the function, is refused here, at enqueue, with the task's name."""
        if self.key is None:
            return None
        try:
            value = self.key(*args, **kwargs)
        except Exception as exc:
            raise TypeError(
                f"max_running_key of {task_name} failed for this call: "
                f"{type(exc).__name__}: {exc}. It is called with the task's own arguments."
            ) from exc
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise TypeError(
                f"max_running_key of {task_name} must return a string or an int, got {value!r}."
            )
        text = str(value)
        if len(text) > MAX_KEY_LENGTH:
            raise ValueError(
                f"max_running_key of {task_name} returned a key of {len(text)} characters; at "
                f"most {MAX_KEY_LENGTH} are stored: {text[:40]!r}..."
            )
        return text


def task_limits() -> dict[str, Limit]:
    """Task name -> Limit, for every registered task that sets one."""
    limits = {}
    for name in registry.names():
        task_limit = getattr(registry.get(name), "limit", None)
        if isinstance(task_limit, TaskLimit):
            limits[name] = task_limit.as_limit(name)
    return limits


def current_limits() -> LimitSet:
    """The limits of this process: ``BGTASK_QUEUE_LIMITS`` and the registered tasks'."""
    return LimitSet(queue_limits(), task_limits())
