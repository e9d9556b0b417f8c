"""Queue health in numbers: what the status endpoint answers and the metrics report.

>>> queue_stats()
{'default': {'due': 3, 'scheduled': 1, 'running': 0, 'failed': 0, 'oldest_due_age': 12.5}}
"""

from __future__ import annotations

from datetime import datetime
from typing import TypedDict

from django.db.models import Count, Min, Q
from django.utils import timezone

from bgtask.models import Task


class QueueStats(TypedDict):
    """The figures of one queue: tasks ``due`` now, ``scheduled`` for later, ``running``,
    ``failed`` for good (history until pruned), and ``oldest_due_age``, the seconds since the
    oldest due task became due (``0.0`` when none is due): alert when it grows."""

    due: int  # queued and due now
    scheduled: int  # queued for later
    running: int
    failed: int  # failed for good (history until pruned)
    oldest_due_age: float  # seconds since the oldest due task became due; 0.0 when none is due


def queue_stats(now: datetime | None = None, using: str | None = None) -> dict[str, QueueStats]:
    """Per queue counts in one aggregate query; queues with only succeeded tasks are left out.

    The same figures as the JSON status endpoint (``GET /bgtask/status/``).

    >>> queue_stats()
    {'default': {'due': 3, 'scheduled': 1, 'running': 1, 'failed': 0, 'oldest_due_age': 4.2}}
    """
    now = now or timezone.now()
    due = Q(status=Task.QUEUED, run_at__lte=now)
    rows = (
        Task.objects.using(using)
        .filter(status__in=(Task.QUEUED, Task.RUNNING, Task.FAILED))
        .values("queue")
        .annotate(
            due=Count("id", filter=due),
            scheduled=Count("id", filter=Q(status=Task.QUEUED, run_at__gt=now)),
            running=Count("id", filter=Q(status=Task.RUNNING)),
            failed=Count("id", filter=Q(status=Task.FAILED)),
            oldest_due=Min("run_at", filter=due),
        )
        .order_by("queue")
    )
    return {
        row["queue"]: QueueStats(
            due=row["due"],
            scheduled=row["scheduled"],
            running=row["running"],
            failed=row["failed"],
            oldest_due_age=round(max(0.0, (now - row["oldest_due"]).total_seconds()), 3)
            if row["oldest_due"]
            else 0.0,
        )
        for row in rows
    }


def due_count(queue: str | None = None, using: str | None = None) -> int:
    """How many tasks are due now (in ``queue``, or in all queues)."""
    tasks = Task.objects.using(using).due()
    return (tasks.filter(queue=queue) if queue else tasks).count()
