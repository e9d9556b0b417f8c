"""History and pruning: succeeded and failed tasks are kept for ``BGTASK_RETENTION`` (default 7
days, counted from ``finished_at``), then deleted in small chunks so that no DELETE holds many row
locks or a long transaction. ``run_batch`` prunes a little on every call; ``manage.py prune_tasks``
prunes everything that is due (``--dry-run`` only counts).

Queued and running tasks are never pruned, and the claim query's partial index (PostgreSQL,
SQLite) only covers queued rows, so history does not slow claiming down while it waits.

>>> prune(max_chunks=1)      # what run_batch does: at most one chunk
37
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db import DatabaseError, router
from django.utils import timezone

from bgtask import conf
from bgtask.models import Task

logger = logging.getLogger("bgtask.pruning")


def prunable(now: datetime | None = None, retention: timedelta | None = None, using=None):
    """The finished tasks older than the retention (an empty queryset when pruning is off)."""
    using = using or router.db_for_write(Task)
    retention = retention if retention is not None else conf.retention()
    tasks = Task.objects.using(using)
    if retention is None:
        return tasks.none()
    cutoff = (now or timezone.now()) - retention
    return tasks.filter(status__in=(Task.SUCCEEDED, Task.FAILED), finished_at__lt=cutoff)


def prune(
    *,
    now: datetime | None = None,
    retention: timedelta | None = None,
    chunk_size: int | None = None,
    max_chunks: int | None = None,
    using: str | None = None,
) -> int:
    """Delete prunable tasks, ``chunk_size`` at a time (each its own short statement), until none
    is left or ``max_chunks`` chunks were deleted; return how many rows were deleted."""
    chunk_size = chunk_size or conf.prune_chunk_size()
    now = now or timezone.now()
    deleted = chunks = 0
    while max_chunks is None or chunks < max_chunks:
        candidates = prunable(now, retention, using)
        ids = list(candidates.order_by("finished_at").values_list("id", flat=True)[:chunk_size])
        if not ids:
            break
        # Re-check the state in the DELETE: a row "retried" from the admin meanwhile is kept.
        count, _ = candidates.filter(id__in=ids).delete()
        deleted += count
        chunks += 1
        if len(ids) < chunk_size:
            break
    if deleted:
        logger.info("Pruned %d finished task(s) older than the retention.", deleted)
    return deleted


def prune_quietly(**kwargs) -> int:
    """``prune`` for run_batch: an error is logged, never raised (pruning is housekeeping)."""
    try:
        return prune(**kwargs)
    except DatabaseError as exc:
        from bgtask.outages import log_housekeeping_failure

        log_housekeeping_failure(logger, "Pruning", exc)
        return 0
