"""The housekeeping ``run_batch`` does around draining: enqueue due periodic occurrences before,
prune one chunk of history after. Neither may take the batch down: errors are logged."""

from __future__ import annotations

import logging

from django.db import DatabaseError

logger = logging.getLogger("bgtask.maintenance")


def before_batch() -> int:
    """Enqueue due periodic occurrences (so this batch runs them); return how many."""
    from bgtask import periodic

    try:
        return periodic.enqueue_due()
    except DatabaseError:
        logger.exception("Enqueueing periodic tasks failed; the next batch will try again.")
        return 0


def after_batch() -> int:
    """Prune at most one chunk of expired history; return how many rows went."""
    from bgtask.pruning import prune_quietly

    return prune_quietly(max_chunks=1)
