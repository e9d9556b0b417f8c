"""Sending tasks round again by hand: the admin's "Run now" and "Retry", and ``manage.py bgtask
retry``. Each is one conditional UPDATE, so a task a worker changed meanwhile is left alone.

>>> retry_failed(Task.objects.filter(task_name="reports.build", status=Task.FAILED))
4
"""

from __future__ import annotations

from collections.abc import Callable

from django.db import transaction
from django.db.models import QuerySet

from bgtask.enqueue.announce import announce
from bgtask.models import Task
from bgtask.store import TaskStore

#: The statuses ``retry_failed`` takes back.
RETRYABLE = (Task.FAILED, Task.CANCELLED)


def run_now(tasks: QuerySet[Task]) -> int:
    """Make queued tasks due at once (a scheduled or backing-off task jumps its wait)."""
    return _announced(tasks, (Task.QUEUED,), TaskStore(tasks.db).make_due_now)


def retry_failed(tasks: QuerySet[Task]) -> int:
    """Put failed and cancelled tasks back in the queue, due now, with their attempts reset.
    ``last_error`` is kept until the next run overwrites it; a unique task comes back without its
    key."""
    store = TaskStore(tasks.db)
    return _announced(tasks, RETRYABLE, lambda chosen: store.requeue(chosen, RETRYABLE))


def _announced(
    tasks: QuerySet[Task], statuses: tuple[str, ...], change: Callable[[QuerySet[Task]], int]
) -> int:
    """Run ``change(tasks)`` (it makes some of ``tasks`` due now) and wake idle workers for their
    queues, in one transaction: they are woken only if the change commits."""
    with transaction.atomic(using=tasks.db):
        queues = set(tasks.filter(status__in=statuses).values_list("queue", flat=True).distinct())
        count: int = change(tasks)
        if count:
            announce(queues, tasks.db)
    return count
