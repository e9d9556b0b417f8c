"""Sending tasks round again by hand: the admin's "Run now" and "Retry", and ``manage.py bgtask
retry``. Each is one conditional UPDATE, so a task a worker changed meanwhile is left alone.

>>> retry_failed(Task.objects.filter(task_name="reports.build", status=Task.FAILED))
4
"""

from __future__ import annotations

from django.db.models import QuerySet

from bgtask.models import Task
from bgtask.store import TaskStore

#: The statuses ``retry_failed`` takes back.
RETRYABLE = (Task.FAILED, Task.CANCELLED)


def run_now(tasks: QuerySet[Task]) -> int:
    """Make queued tasks due at once (a scheduled or backing-off task jumps its wait)."""
    return TaskStore(tasks.db).make_due_now(tasks)


def retry_failed(tasks: QuerySet[Task]) -> int:
    """Put failed and cancelled tasks back in the queue, due now, with their attempts reset.
    ``last_error`` is kept until the next run overwrites it; a unique task comes back without its
    key."""
    return TaskStore(tasks.db).requeue(tasks, RETRYABLE)
