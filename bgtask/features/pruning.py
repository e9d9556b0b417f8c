"""History and pruning: succeeded, failed and cancelled tasks are kept for ``BGTASK_RETENTION``
(default 7 days, counted from ``finished_at``), then deleted in small chunks so that no DELETE holds
many row locks or a long transaction. ``run_batch`` prunes a little on every call; ``manage.py
prune_tasks`` prunes everything that is due (``--dry-run`` only counts).

Queued and running tasks are never pruned, and the claim query's partial index (PostgreSQL,
SQLite) only covers queued rows, so history does not slow claiming down while it waits.

>>> prune(max_chunks=1)      # what run_batch does: at most one chunk
37
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db import router
from django.db.models import QuerySet
from django.utils import timezone

from bgtask import conf
from bgtask.models import Task
from bgtask.store import TaskStore

logger = logging.getLogger("bgtask.pruning")


def _retention(retention: timedelta | None) -> timedelta | None:
    return retention if retention is not None else conf.retention()


def prunable(
    now: datetime | None = None, retention: timedelta | None = None, using: str | None = None
) -> QuerySet[Task]:
    """The finished tasks older than the retention (an empty queryset when pruning is off)."""
    using = using or router.db_for_write(Task)
    retention = _retention(retention)
    tasks = Task.objects.using(using)
    if retention is None:
        return tasks.none()
    cutoff = (now or timezone.now()) - retention
    return tasks.filter(status__in=Task.FINISHED_STATUSES, finished_at__lt=cutoff)


def prune(
    *,
    now: datetime | None = None,
    retention: timedelta | None = None,
    chunk_size: int | None = None,
    max_chunks: int | None = None,
    using: str | None = None,
) -> int:
    """Delete prunable tasks, ``chunk_size`` at a time (each its own short statement), until none
    is left or ``max_chunks`` chunks were deleted; return how many rows were deleted.

    Prunable means succeeded or failed, with ``finished_at`` older than ``retention`` (default
    ``BGTASK_RETENTION``); queued and running tasks are never deleted. ``run_batch`` calls this
    with ``max_chunks=1``; ``manage.py prune_tasks`` calls it for the whole backlog.

    >>> prune(retention=timedelta(days=1), chunk_size=1000)
    1520
    """
    chunk_size = chunk_size or conf.prune_chunk_size()
    now = now or timezone.now()
    deleted = chunks = 0
    while max_chunks is None or chunks < max_chunks:
        candidates = prunable(now, retention, using)
        ids = list(candidates.order_by("finished_at").values_list("id", flat=True)[:chunk_size])
        if not ids:
            break
        # Re-check the state in the DELETE: a row "retried" from the admin meanwhile is kept.
        # The retention is not None here: prunable() found rows, which it does only with one.
        count = TaskStore(using).delete_finished(
            ids,
            (Task.SUCCEEDED, Task.FAILED),
            (now or timezone.now()) - _retention(retention),  # type: ignore[operator]
        )
        deleted += count
        chunks += 1
        if len(ids) < chunk_size:
            break
    if deleted:
        logger.info("Pruned %d finished task(s) older than the retention.", deleted)
    return deleted
