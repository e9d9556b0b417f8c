"""Cancelling queued tasks from code.

A cancelled task is one that was still ``queued``: it is marked ``failed`` with ``last_error``
starting ``Cancelled``, keeps its attempts, and frees its unique key; it will not run, a repeating
task's chain ends with it, and the admin's "retry" can bring it back. A task already ``running``
is left alone: it finishes, and ``cancel`` says so by returning ``False``. The status check and the
write are one conditional UPDATE, so a worker claiming the task at the same instant either claims
it first (cancel returns ``False``) or never sees it.

>>> task = send_newsletter(7, schedule=3600)
>>> cancel(task)
True
"""

from __future__ import annotations

from django.db.models import QuerySet
from django.utils import timezone

from bgtask.models import Task

CANCELLED_PREFIX = "Cancelled"


def _message(reason: str) -> str:
    return f"{CANCELLED_PREFIX}: {reason}" if reason else f"{CANCELLED_PREFIX} before it ran."


def cancel_queued(tasks: QuerySet[Task], reason: str = "") -> int:
    """Cancel every still-queued task of ``tasks``; return how many were cancelled.

    Tasks of ``tasks`` that are running or finished are left as they are.

    >>> cancel_queued(Task.objects.filter(task_name="shop.tasks.send_newsletter"), "campaign over")
    3
    """
    now = timezone.now()
    return tasks.filter(status=Task.QUEUED).update(
        status=Task.FAILED,
        last_error=_message(reason),
        failed_at=now,
        finished_at=now,
        unique_key=None,
        locked_by=None,
        locked_until=None,
    )


def cancel(task: Task | int, reason: str = "") -> bool:
    """Cancel one task (a ``Task`` or its id) if it is still queued; ``False`` if it is running
    or already finished. ``reason`` is kept in ``last_error`` after ``Cancelled:``.

    >>> cancel(task, reason="unsubscribed")
    True
    """
    task_id = task.pk if isinstance(task, Task) else task
    if isinstance(task_id, bool) or not isinstance(task_id, int):
        raise TypeError(f"cancel() takes a Task or a task id, got {task!r}.")
    cancelled = cancel_queued(Task.objects.filter(pk=task_id), reason) == 1
    if cancelled and isinstance(task, Task):
        task.refresh_from_db()
    return cancelled
