"""The registered tasks of this process: the only code ``run_batch`` will ever call.

A row names its task by a string; that string is looked up here and nowhere else. Nothing is ever
imported from a dotted path stored in the database.

What is registered is anything shaped like ``RegisteredTask``: a ``TaskFunction`` made by
``@background`` or ``@periodic``, or the runner of a Django ``@task`` (``bgtask.backends``).
"""

from __future__ import annotations

from typing import Any, Protocol

from bgtask import retry_policy
from bgtask.exceptions import TaskNameConflict, UnknownTask


class RegisteredTask(Protocol):
    name: str
    origin: str  # where it was defined, to tell a re-registration from a name conflict

    def run(self, args: list[Any], kwargs: dict[str, Any]) -> Any: ...


_tasks: dict[str, RegisteredTask] = {}


def register(task: RegisteredTask) -> None:
    existing = _tasks.get(task.name)
    if existing is not None and existing.origin != task.origin:
        raise TaskNameConflict(
            f"Task name {task.name!r} is already used by {existing.origin}; "
            f"{task.origin} cannot take it too. Pass a different name= to @background."
        )
    # The same function registering again (a module imported twice, a reload) replaces itself.
    _tasks[task.name] = task


def get(name: str) -> RegisteredTask:
    try:
        return _tasks[name]
    except KeyError:
        raise UnknownTask(
            f"No task named {name!r} is registered in this process. Is its module a 'tasks' "
            "module of an installed app (or imported at start-up), and is this worker running "
            "the same code as the process that enqueued it?"
        ) from None


def retry_policy_for(name: str) -> retry_policy.RetryPolicy:
    """The retry policy of the task registered as ``name`` (the default if none is)."""
    task = _tasks.get(name)
    return retry_policy.DEFAULT if task is None else retry_policy.policy_for(task)


def names() -> list[str]:
    return sorted(_tasks)


def unregister(name: str) -> None:
    """Forget a task (for tests that register throwaway tasks)."""
    _tasks.pop(name, None)
