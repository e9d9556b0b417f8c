"""The housekeeping ``run_batch`` does around draining: signal the tasks rescued from dead
workers and enqueue due periodic occurrences before, prune one chunk of history after. None of it
may take the batch down: errors are logged."""

from __future__ import annotations

import logging

from django.db import DatabaseError

logger = logging.getLogger("bgtask.maintenance")


def before_batch() -> int:
    """Enqueue due periodic occurrences and the repetitions of repeating tasks that failed by
    losing their lease (so this batch runs them); return how many rows were enqueued."""
    from bgtask import periodic, repeating
    from bgtask.outages import log_housekeeping_failure

    enqueued = 0
    try:
        enqueued += repeating.continue_abandoned_chains()
    except DatabaseError as exc:
        log_housekeeping_failure(logger, "Continuing abandoned repeating tasks", exc)
    try:
        enqueued += periodic.enqueue_due()
    except DatabaseError as exc:
        log_housekeeping_failure(logger, "Enqueueing periodic tasks", exc)
    return enqueued


def after_batch() -> int:
    """Prune at most one chunk of expired history; return how many rows went."""
    from bgtask.pruning import prune_quietly

    return prune_quietly(max_chunks=1)


def signal_rescued(task_id: int) -> None:
    """Send ``task_retried`` or ``task_failed`` for a task requeued or failed because its worker
    held it past its lease; ``error`` is a ``TaskAbandoned`` carrying the recorded message."""
    from bgtask.exceptions import TaskAbandoned
    from bgtask.models import Task
    from bgtask.signals import task_failed, task_retried

    task = Task.objects.filter(pk=task_id).first()
    if task is None:
        return
    error = TaskAbandoned(task.last_error)
    signal = task_failed if task.status == Task.FAILED else task_retried
    signal.send(sender=Task, task=task, error=error)
