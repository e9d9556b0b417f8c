"""The registered tasks of this process: the only code ``run_batch`` will ever call.

A row names its task by a string; that string is looked up here and nowhere else. Nothing is ever
imported from a dotted path stored in the database.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bgtask.exceptions import TaskNameConflict, UnknownTask

if TYPE_CHECKING:
    from bgtask.decorators import TaskFunction

_tasks: dict[str, TaskFunction] = {}


def register(task: TaskFunction) -> None:
    existing = _tasks.get(task.name)
    if existing is not None and existing.origin != task.origin:
        raise TaskNameConflict(
            f"Task name {task.name!r} is already used by {existing.origin}; "
            f"{task.origin} cannot take it too. Pass a different name= to @background."
        )
    # The same function registering again (a module imported twice, a reload) replaces itself.
    _tasks[task.name] = task


def get(name: str) -> TaskFunction:
    try:
        return _tasks[name]
    except KeyError:
        raise UnknownTask(
            f"No task named {name!r} is registered in this process. Is its module a 'tasks' "
            "module of an installed app (or imported at start-up), and is this worker running "
            "the same code as the process that enqueued it?"
        ) from None


def names() -> list[str]:
    return sorted(_tasks)


def unregister(name: str) -> None:
    """Forget a task (for tests that register throwaway tasks)."""
    _tasks.pop(name, None)
