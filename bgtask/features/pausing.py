"""Pausing and resuming a queue.

A pause is a row in ``bgtask_queue_state``, and the claim statement itself leaves out the queues
paused there (bgtask.store.dialects), so every worker on every machine stops taking that queue's
tasks at its next claim; there is no check in one process that another could miss. Tasks already
running finish. Enqueueing into a paused queue still works: the tasks wait, due, until the queue
is resumed.

>>> pause_queue("reports")     # the warehouse is down
True
>>> resume_queue("reports")
True
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import IntegrityError, router, transaction
from django.utils import timezone

from bgtask.enqueue.validation import check_queue
from bgtask.models import QueueState

logger = logging.getLogger("bgtask.pausing")


def _alias(using: str | None) -> str:
    return using or router.db_for_write(QueueState)


def pause_queue(name: str, *, using: str | None = None) -> bool:
    """Stop every worker from claiming tasks of queue ``name`` from its next claim on; ``True``
    if this call paused it, ``False`` if it was paused already. Running tasks finish.

    >>> pause_queue("reports")
    True
    """
    check_queue(name)
    alias = _alias(using)
    states = QueueState.objects.using(alias)
    now = timezone.now()
    # An UPDATE of an existing row, else an INSERT; two pausers racing on a new queue collide on
    # the primary key, and the loser finds the queue paused, which is what it asked for.
    if states.filter(name=name, paused=False).update(paused=True, paused_at=now):
        paused = True
    elif states.filter(name=name).exists():
        paused = False
    else:
        try:
            with transaction.atomic(using=alias):
                states.create(name=name, paused=True, paused_at=now)
            paused = True
        except IntegrityError:
            paused = False
    if paused:
        logger.info("Queue %r paused: workers claim none of its tasks until it is resumed.", name)
    return paused


def resume_queue(name: str, *, using: str | None = None) -> bool:
    """Let workers claim tasks of queue ``name`` again; ``True`` if it was paused.

    >>> resume_queue("reports")
    True
    """
    check_queue(name)
    resumed = bool(
        QueueState.objects.using(_alias(using))
        .filter(name=name, paused=True)
        .update(paused=False, paused_at=None)
    )
    if resumed:
        logger.info("Queue %r resumed.", name)
    return resumed


def paused_queues(*, using: str | None = None) -> dict[str, datetime | None]:
    """The paused queues and since when: ``{"reports": datetime(...)}``."""
    rows = QueueState.objects.using(using or router.db_for_read(QueueState)).filter(paused=True)
    return dict(rows.values_list("name", "paused_at"))
