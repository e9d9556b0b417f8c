"""Sending tasks round again by hand: the admin's "Run now" and "Retry", and ``manage.py bgtask
retry``. Each is one conditional UPDATE, so a task a worker changed meanwhile is left alone.

>>> retry_failed(Task.objects.filter(task_name="reports.build", status=Task.FAILED))
4
"""

from __future__ import annotations

from django.db.models import QuerySet

from bgtask import clock
from bgtask.models import Task

#: The statuses ``retry_failed`` takes back.
RETRYABLE = (Task.FAILED, Task.CANCELLED)


def run_now(tasks: QuerySet) -> int:
    """Make queued tasks due at once (a scheduled or backing-off task jumps its wait)."""
    return tasks.filter(status=Task.QUEUED).update(run_at=clock.now(tasks.db))


def retry_failed(tasks: QuerySet) -> int:
    """Put failed and cancelled tasks back in the queue, due now, with their attempts reset.
    ``last_error`` is kept until the next run overwrites it; a unique task comes back without its
    key."""
    return tasks.filter(status__in=RETRYABLE).update(
        status=Task.QUEUED,
        attempts=0,
        run_at=clock.now(tasks.db),
        failed_at=None,
        finished_at=None,
        started_at=None,
        progress=None,
        progress_note=None,
    )
