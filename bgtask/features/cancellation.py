"""Cancelling queued tasks from code.

A cancelled task is one that was still ``queued``: its status becomes ``cancelled``, its
``last_error`` says ``Cancelled`` and why, it keeps its attempts, and it frees its unique key; it
will not run, a repeating task's chain ends with it, it is not counted as a failure, and the
admin's "retry" can bring it back. The status check and the write are one conditional UPDATE, so a
worker claiming the task at the same instant either claims it first or never sees it.

A task already ``running`` is asked to stop: ``cancel`` records the request on the row, the
worker running it sees it within ``BGTASK_CANCEL_CHECK_SECONDS`` (1 s by default) and stops it
(``TaskCancelled`` raised at the task's next Python instruction, or an async task cancelled at its
next ``await``); the row then ends ``cancelled``, with the attempt counted, and is never retried.
A task that finishes before its worker sees the request keeps its outcome.

>>> task = send_newsletter(7, schedule=3600)
>>> cancel(task)
True
"""

from __future__ import annotations

from django.db.models import QuerySet
from django.utils import timezone

from bgtask.models import Task
from bgtask.store import TaskStore

CANCELLED_PREFIX = "Cancelled"


def _message(reason: str) -> str:
    return f"{CANCELLED_PREFIX}: {reason}" if reason else f"{CANCELLED_PREFIX} before it ran."


def cancel_queued(tasks: QuerySet[Task], reason: str = "") -> int:
    """Cancel every still-queued task of ``tasks``; return how many were cancelled.

    Tasks of ``tasks`` that are running or finished are left as they are.

    >>> cancel_queued(Task.objects.filter(task_name="shop.tasks.send_newsletter"), "campaign over")
    3
    """
    return TaskStore(tasks.db).cancel_queued(tasks, _message(reason), timezone.now())


def cancel(task: Task | int, reason: str = "") -> bool:
    """Cancel one task (a ``Task`` or its id): a queued one at once, a running one by asking its
    worker to stop it (``True`` in both cases); ``False`` if it has already finished. ``reason``
    is kept in ``last_error`` after ``Cancelled:``.

    >>> cancel(task, reason="unsubscribed")
    True
    """
    task_id = task.pk if isinstance(task, Task) else task
    if isinstance(task_id, bool) or not isinstance(task_id, int):
        raise TypeError(f"cancel() takes a Task or a task id, got {task!r}.")
    cancelled = cancel_queued(Task.objects.filter(pk=task_id), reason) == 1
    if not cancelled:
        cancelled = TaskStore().request_cancel(task_id, timezone.now())
    if cancelled and isinstance(task, Task):
        task.refresh_from_db()
    return cancelled
