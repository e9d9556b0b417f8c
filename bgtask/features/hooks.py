"""What ``run_batch`` does around draining, for the features: enqueue due periodic occurrences
and continue abandoned repeating chains before, prune one chunk of history after. None of it may
take the batch down: a database error is logged (``bgtask.outages``) and the batch goes on."""

from __future__ import annotations

import logging

from django.db import DatabaseError

from bgtask.features import periodic, pruning, repeating
from bgtask.worker.outages import log_housekeeping_failure

# The name these lines have always been logged under (LOGGING configurations refer to it).
logger = logging.getLogger("bgtask.maintenance")


def before_batch() -> int:
    """Enqueue due periodic occurrences and the repetitions of repeating tasks that failed by
    losing their lease (so this batch runs them); return how many rows were enqueued."""
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
    try:
        return pruning.prune(max_chunks=1)
    except DatabaseError as exc:
        log_housekeeping_failure(pruning.logger, "Pruning", exc)
        return 0
