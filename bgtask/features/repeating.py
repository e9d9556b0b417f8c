"""Repeating tasks: ``repeat=`` seconds and ``repeat_until=`` given when a task is enqueued.

A repeating row, once it has finished for good (succeeded, or failed after its last attempt), is
followed by a new row for the next repetition, written in the same transaction as the outcome so
that a worker dying in between can neither lose the chain nor fork it. Retries do not advance the
chain: the same row is retried, and the next repetition follows whatever its final outcome is.

>>> send_report(7, repeat=Task.DAILY, repeat_until=datetime(2027, 1, 1, tzinfo=UTC))
"""

from __future__ import annotations

import logging
import math
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, router, transaction
from django.utils import timezone

from bgtask import clock
from bgtask.models import Task
from bgtask.signals import task_enqueued
from bgtask.store import TaskStore

logger = logging.getLogger("bgtask.repeating")

# A repetition copies these from the row that finished; everything else starts afresh.
CARRIED_FIELDS = (
    "task_name",
    "queue",
    "priority",
    "arguments",
    "repeat",
    "repeat_until",
    "timeout",
    "verbose_name",
    "max_attempts",
)


def check_repeat(repeat: Any) -> int:
    """``repeat`` as whole seconds (0: no repetition); accepts an int or a ``timedelta``."""
    if isinstance(repeat, timedelta):
        seconds = repeat.total_seconds()
        if seconds != int(seconds):
            raise ValueError(f"repeat must be whole seconds, got {repeat!r}.")
        repeat = int(seconds)
    if isinstance(repeat, bool) or not isinstance(repeat, int):
        raise TypeError(
            f"repeat must be whole seconds (an int such as Task.DAILY) or a timedelta, "
            f"got {repeat!r}."
        )
    if repeat < 0 or repeat > 2**31 - 1:
        raise ValueError(f"repeat must be between 0 and {2**31 - 1} seconds, got {repeat}.")
    return repeat


def check_repeat_until(repeat_until: Any, repeat: int, run_at: datetime) -> datetime | None:
    """An aware ``repeat_until`` (naive: read in the current time zone), or ``None``."""
    if repeat_until is None:
        return None
    if not isinstance(repeat_until, datetime):
        raise TypeError(f"repeat_until must be a datetime, got {repeat_until!r}.")
    if not repeat:
        raise ValueError("repeat_until needs repeat= too (seconds between repetitions).")
    if timezone.is_naive(repeat_until):
        repeat_until = timezone.make_aware(repeat_until, timezone.get_current_timezone())
    if repeat_until < run_at:
        raise ValueError(
            f"repeat_until ({repeat_until.isoformat()}) is before the first run "
            f"({run_at.isoformat()}); the task would never run."
        )
    return repeat_until  # type: ignore[no-any-return]


def next_run_at(task: Task, now: datetime) -> datetime | None:
    """When the repetition after ``task`` is due, or ``None`` when the chain has ended.

    Counted from ``task.run_at`` (when the run that just finished was due; a retry moves it
    later), in whole steps of ``repeat``; steps already in the past are skipped, not piled up.
    """
    if not task.repeat:
        return None
    step = timedelta(seconds=task.repeat)
    due = task.run_at + step
    if due <= now:
        missed = math.floor((now - task.run_at) / step)
        due = task.run_at + step * (missed + 1)
    if task.repeat_until is not None and due > task.repeat_until:
        return None
    return due


def outcome_transaction(task: Task, using: str) -> AbstractContextManager[Any]:
    """The transaction around a final outcome: one for a repeating task (outcome and next
    repetition commit together), none otherwise, so that the store's reconnect-once on a
    dropped connection keeps working for every other task."""
    return transaction.atomic(using=using) if task.repeat else nullcontext()


def enqueue_next(task: Task, using: str, now: datetime | None = None) -> Task | None:
    """Write the next repetition of ``task`` (which has just finished for good); return it.

    Call inside the transaction that records the outcome. A repetition keeps the unique key of
    the chain; if another pending task holds that key by now, it is written without one.
    """
    if not task.repeat:
        return None
    due = next_run_at(task, now or clock.now(using))
    if due is None:
        return None
    fields = {name: getattr(task, name) for name in CARRIED_FIELDS}
    repetition = Task(**fields, run_at=due, unique_key=task.unique_key)
    store = TaskStore(using)
    try:
        with transaction.atomic(using=using):
            store.insert(repetition)
    except IntegrityError:
        if repetition.unique_key is None:
            raise
        repetition = store.insert(Task(**fields, run_at=due))
    task_enqueued.send(sender=Task, task=repetition)
    logger.debug("Task %s #%s repeats as #%s at %s", task.task_name, task.id, repetition.id, due)
    return repetition


# Rows failed by ``TaskStore.rescue_abandoned`` (the lease of their last attempt expired) start so.
_ABANDONED_PREFIX = "Abandoned:"
# How far back the sweep looks: rescue runs at the start of every batch, so a day is ample.
ABANDONED_SWEEP_WINDOW = timedelta(days=1)


def continue_abandoned_chains(now: datetime | None = None, using: str | None = None) -> int:
    """Enqueue the next repetition of repeating tasks that failed by losing their lease.

    Those rows are failed by the rescue of abandoned tasks, which never reaches
    ``enqueue_next``. Exactly once: the failed row's ``repeat`` is moved to its successor by a
    conditional UPDATE in the transaction that inserts the successor.
    """
    using = using or router.db_for_write(Task)
    now = now or clock.now(using)
    rows = Task.objects.using(using)
    candidates = rows.filter(
        status=Task.FAILED,
        finished_at__gte=now - ABANDONED_SWEEP_WINDOW,
        repeat__gt=0,
        last_error__startswith=_ABANDONED_PREFIX,
    )
    continued = 0
    for task in candidates:
        with transaction.atomic(using=using):
            if not TaskStore(using).end_repeat_chain(task.pk, task.repeat):
                continue  # another batch continued it
            if enqueue_next(task, using, now) is not None:
                continued += 1
    return continued
