"""The housekeeping ``run_batch`` does around draining: enqueue due periodic occurrences before,
prune one chunk of history after. Neither may take the batch down: errors are logged."""

from __future__ import annotations

import logging

from django.db import DatabaseError

logger = logging.getLogger("bgtask.maintenance")


def before_batch() -> int:
    """Enqueue due periodic occurrences and the repetitions of repeating tasks that failed by
    losing their lease (so this batch runs them); return how many rows were enqueued."""
    from bgtask import periodic, repeating

    enqueued = 0
    try:
        enqueued += repeating.continue_abandoned_chains()
    except DatabaseError:
        logger.exception("Continuing abandoned repeating tasks failed; the next batch retries.")
    try:
        enqueued += periodic.enqueue_due()
    except DatabaseError:
        logger.exception("Enqueueing periodic tasks failed; the next batch will try again.")
    return enqueued


def after_batch() -> int:
    """Prune at most one chunk of expired history; return how many rows went."""
    from bgtask.pruning import prune_quietly

    return prune_quietly(max_chunks=1)
