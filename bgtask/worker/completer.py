"""Successes written in groups: one guarded statement for many finished tasks.

Writing each success as it happens costs a round trip (and, with a durable commit, a disk flush)
per task, which is most of a short task's cost. So ``run_batch`` buffers successes and writes them
as one statement per group, when the group is full (``BGTASK_OUTCOME_BATCH``), when its oldest
member is ``BGTASK_OUTCOME_MAX_DELAY`` old, before each claim, before a task that is not known to
finish within that delay (the process learns each task name's typical duration; a name it has not
seen yet counts as slow), before a retry or failure is written (so outcomes reach the table in the
order they happened), and when the batch ends, however it ends. Successes that must be immediate
are written alone: a repeating task (its next repetition is enqueued in the same transaction) and
a unique task (its key is freed by the write).

Each row is guarded by the lease it was claimed under; the statement returns the ids it updated,
so a lease lost meanwhile is still detected per task and its outcome discarded, as before.
``task_succeeded`` is sent after the row is written. If the write fails because the database went
away, the group is not dropped: it is *owed* (kept in this process's memory, see ``owe``) and the
next ``run_batch`` of the process (``process_tasks`` calls it again as soon as the database answers)
writes it before doing anything else. Each row keeps the guard it was claimed under, so writing
late is safe: a row another worker rescued meanwhile is not touched and is reported as a lost
lease. A crash loses at most the unwritten group: those tasks are rescued when their leases expire
and run again. (Claims a batch could not release are owed likewise, in ``bgtask.outages``.)
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import DatabaseError

from bgtask import signals
from bgtask.models import Task
from bgtask.store import TaskStore

logger = logging.getLogger("bgtask.outcomes")

#: Weight of the newest run in the running average of a task name's duration.
DURATION_SMOOTHING = 0.2
#: Task names whose typical duration a process remembers.
MAX_TASK_NAMES_TRACKED = 1000

# task name -> typical seconds per run, learned by this process
_typical_seconds: dict[str, float] = {}


@dataclass(slots=True)
class Success:
    """A task that returned normally, and what to write for it."""

    task: Task
    value: Any  # what the function returned, for the task_succeeded signal
    result: str | None  # the JSON stored in the row (None when not stored)
    started_at: datetime
    finished_at: datetime


def write_successes(store: TaskStore, group: list[Success]) -> set[int]:
    """Write ``group`` in one guarded statement, then announce it (see ``announce``).

    Returns the ids written; raises the store's error if the database is away."""
    written = store.mark_succeeded_many([row_of(s) for s in group]) if group else set()
    announce(store, group, written)
    return written


def announce(store: TaskStore, group: list[Success], written: set[int]) -> None:
    """Update the in-memory tasks that were written and send ``task_succeeded`` for them; log
    each task whose lease was lost (its outcome was discarded)."""
    # .receivers first: has_listeners() resolves the live receivers even when there are none.
    send = bool(signals.task_succeeded.receivers) and signals.task_succeeded.has_listeners(Task)
    for success in group:
        task = success.task
        if task.id not in written:
            store.log_lost_lease(task)
            continue
        task.status, task.result = Task.SUCCEEDED, success.result
        task.started_at, task.finished_at = success.started_at, success.finished_at
        task.locked_by = task.locked_until = task.unique_key = None
        if send:
            signals.task_succeeded.send(sender=Task, task=task, result=success.value)


def row_of(success: Success) -> tuple:
    """The values a group write needs: (id, locked_by, result, started_at, finished_at)."""
    task = success.task
    return (task.id, task.locked_by, success.result, success.started_at, success.finished_at)


class SuccessBuffer:
    """The group of successes of one batch that are not written yet.

    >>> buffer = SuccessBuffer(store, size=50, max_delay=0.02)
    >>> if buffer.accepts(task): buffer.add(Success(task, value, result, started, finished))
    >>> buffer.flush()
    """

    def __init__(self, store: TaskStore, size: int, max_delay: float) -> None:
        self.store = store
        self.size = size
        self.max_delay = max_delay
        self.pending: list[Success] = []
        self.oldest = 0.0  # time.monotonic() when the oldest pending success was added

    def accepts(self, task: Task) -> bool:
        """False for a success that must be written at once (see the module's docstring)."""
        return self.size > 1 and not task.repeat and not task.unique_key

    def add(self, success: Success) -> None:
        if not self.pending:
            self.oldest = time.monotonic()
        self.pending.append(success)
        if len(self.pending) >= self.size:
            self.flush()

    def task_ran(self, task: Task, seconds: float) -> None:
        """Learn how long tasks of this name take (a running average, per process)."""
        typical = _typical_seconds.get(task.task_name)
        if typical is None:
            if len(_typical_seconds) >= MAX_TASK_NAMES_TRACKED:
                _typical_seconds.clear()  # a bound, not an LRU: relearning costs one flush each
            _typical_seconds[task.task_name] = seconds
        else:
            _typical_seconds[task.task_name] = typical + DURATION_SMOOTHING * (seconds - typical)

    def before_task(self, task: Task) -> None:
        """Flush when the group is old, or when ``task`` is not known to be quick: a slow task
        would hold the group unwritten while it runs, and a crash meanwhile would run it again."""
        if self.pending and (
            time.monotonic() - self.oldest >= self.max_delay
            or _typical_seconds.get(task.task_name, self.max_delay) >= self.max_delay
        ):
            self.flush()

    def flush(self) -> int:
        """Write the pending group; return how many rows were written.

        On a database error the group is owed (``owe``: written by the process's next batch) and
        the error is raised."""
        if not self.pending:
            return 0
        group, self.pending = self.pending, []
        try:
            written = self.store.mark_succeeded_many([row_of(s) for s in group])
        except DatabaseError:
            owe(self.store.alias, group)
            raise
        announce(self.store, group, written)
        return len(written)


# Successes owed to a database that went away mid-batch: alias -> run but not yet written.
_owed_lock = threading.Lock()
_owed: dict[str, list[Success]] = defaultdict(list)


def owe(alias: str, group: list[Success]) -> None:
    """Keep a group that could not be written, for the process's next batch (``settle_owed``)."""
    with _owed_lock:
        _owed[alias].extend(group)


def settle_owed(store: TaskStore) -> int:
    """Write the successes owed to ``store``'s database; return how many rows were written.

    Raises the store's error if the database is still away; what was not written stays owed.
    """
    with _owed_lock:
        group = list(_owed[store.alias])
    if not group:
        return 0
    written = len(write_successes(store, group))
    with _owed_lock:
        del _owed[store.alias][: len(group)]
    logger.info(
        "Wrote %d of %d success(es) a batch could not write while the database was away (the "
        "rest lost their lease meanwhile).",
        written,
        len(group),
    )
    return written
