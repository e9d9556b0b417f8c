"""``BGTASK_IMMEDIATE = True``: each enqueued task runs when the transaction that wrote it commits.

It runs through ``run_batch`` (``run_until_empty``), so the task is claimed, leased, timed out,
retried and signalled exactly as a worker would do it; only the wait for the next cron run is
gone. "Commits" means: at once when the write was autocommitted, or when only a ``TestCase``'s
own atomic blocks are open (the test never commits them); otherwise on ``transaction.on_commit``
of the caller's transaction. A task scheduled for later is not due yet and does not run, and a
retry waits for its backoff, as in production.

A task that enqueues another while a drain is running does not start a second drain: the running
one loops until nothing is due, so it runs the new task too.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections, transaction

from bgtask import conf
from bgtask.models import Task
from bgtask.signals import task_enqueued, tasks_bulk_enqueued
from bgtask.testing.draining import run_until_empty

# Process-wide, not per thread: with a concurrent worker, a task enqueueing from a worker thread
# must see the drain that runs it.
_draining = threading.Lock()


def _drain(using: str) -> None:
    if not _draining.acquire(blocking=False):
        return  # the running drain picks the task up
    try:
        run_until_empty()
    finally:
        _draining.release()


def _only_test_blocks_open(using: str) -> bool:
    # TestCase marks the atomic blocks it wraps every test in; leaving them is never a commit.
    return all(
        getattr(block, "_from_testcase", False) for block in connections[using].atomic_blocks
    )


def on_enqueued(
    sender: Any, task: Task | None = None, using: str | None = None, **kwargs: Any
) -> None:
    """Receiver of ``task_enqueued`` and ``tasks_bulk_enqueued``; does nothing while it is off."""
    if not conf.immediate():
        return
    alias = using or (task._state.db if task is not None else None) or DEFAULT_DB_ALIAS
    if _only_test_blocks_open(alias):
        _drain(alias)
    else:
        transaction.on_commit(functools.partial(_drain, alias), using=alias)


def connect() -> None:
    """Called once by ``BgtaskConfig.ready``: the receiver reads the setting on every enqueue, so
    ``override_settings(BGTASK_IMMEDIATE=True)`` works."""
    task_enqueued.connect(on_enqueued, dispatch_uid="bgtask.testing.immediate")
    tasks_bulk_enqueued.connect(on_enqueued, dispatch_uid="bgtask.testing.immediate.bulk")
