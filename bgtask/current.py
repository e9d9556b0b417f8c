"""Inside a running task: which task this is, whether a cancel was asked, and its progress.

>>> from bgtask import current_task, set_progress
>>> @background
... def export(report_id):
...     task = current_task()          # None outside a task run by a worker
...     for page in range(10):
...         render(report_id, page)
...         set_progress((page + 1) / 10, f"page {page + 1} of 10")

``set_progress`` shows in the admin's list, on the task page and in the status JSON. The worker sets
the current task around the function's call, in the thread (or the asyncio task) that runs it.
"""

from __future__ import annotations

import threading
from contextvars import ContextVar, Token
from dataclasses import dataclass, field

from bgtask.models import Task
from bgtask.store import TaskStore


@dataclass(frozen=True)
class CurrentTask:
    """The task this code runs in: its row's ``id``, its task ``name``, and ``attempt`` (1 for
    the first run, 2 for the first retry, ...)."""

    id: int
    name: str
    attempt: int
    locked_by: str | None = field(repr=False)

    @property
    def cancel_requested(self) -> bool:
        """True once its worker has seen a ``bgtask.cancel()`` of this task (the task is then
        stopped with ``TaskCancelled`` at its next instruction, or cancelled at its next
        ``await``)."""
        with _lock:
            return self.id in _cancels_seen

    def set_progress(self, fraction: float, note: str = "") -> bool:
        """See ``bgtask.set_progress``."""
        return TaskStore().set_progress(self.id, self.locked_by or "", fraction, note)


# The running Task row itself: a CurrentTask is made only when the task asks (most never do).
_current: ContextVar[Task | None] = ContextVar("bgtask_current_task", default=None)
# Ids of running tasks whose cancel request this process's workers have seen.
_lock = threading.Lock()
_cancels_seen: set[int] = set()


def cancel_seen(task_id: int) -> None:
    """A worker saw a cancel request for ``task_id`` (the runner, before stopping it)."""
    with _lock:
        _cancels_seen.add(task_id)


def current_task() -> CurrentTask | None:
    """The task being run by a worker in this thread or asyncio task, or ``None`` (outside a task,
    and in ``.now()``, which runs the function as a plain call)."""
    task = _current.get()
    if task is None:
        return None
    return CurrentTask(task.id, task.task_name, task.attempts + 1, task.locked_by)


def set_progress(fraction: float, note: str = "") -> bool:
    """Record how far the running task is: ``fraction`` from 0 to 1 and a short ``note``.

    Returns ``False`` (and writes nothing) outside a task run by a worker, or when this worker no
    longer holds the task's lease. Raises ``ValueError``/``TypeError`` for a fraction that is not a
    number from 0 to 1.

    >>> set_progress(0.25, "1 of 4 files")
    True
    """
    task = current_task()
    if task is None:
        return False
    return task.set_progress(fraction, note)


# The worker makes ``task`` the current task around the function's call (a token for
# ``leave``): the ContextVar's own method, as no wrapper call is needed on every task's path.
enter = _current.set


def leave(token: Token[Task | None], task: Task) -> None:
    """Undo ``enter`` once ``task``'s function has returned (or raised)."""
    _current.reset(token)
    if _cancels_seen:
        with _lock:
            _cancels_seen.discard(task.id)
