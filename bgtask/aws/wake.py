"""Wake on enqueue: a task that is due now starts within seconds, not at the next schedule tick.

When ``BGTASK_WAKE_FUNCTION`` names the worker function, enqueueing a due task invokes it
asynchronously once the enqueuing transaction commits (a rolled-back enqueue wakes nobody). Each
process sends at most one wake-up per ``BGTASK_WAKE_INTERVAL`` seconds; a burst of enqueues is
drained by the one worker it woke, and by fan-out when the burst is large.

>>> # settings.py
>>> BGTASK_WAKE_FUNCTION = "bgtask-worker"
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from bgtask import conf
from bgtask.aws import WAKE_SOURCE
from bgtask.aws.client import invoke_async
from bgtask.aws.throttle import Throttle

_throttle = Throttle()


def reset_throttle() -> None:
    """Forget the last wake-up, so the next due enqueue wakes the worker (for tests)."""
    _throttle.reset()


def wake_worker(function_name: str) -> bool:
    """Invoke the worker unless this process already did within the interval; True if sent."""
    if not _throttle.take(conf.wake_interval()):
        return False
    return invoke_async(function_name, {"source": WAKE_SOURCE})


def on_task_enqueued(sender: Any, task: Any, **kwargs: Any) -> None:
    """``task_enqueued`` receiver; does nothing unless ``BGTASK_WAKE_FUNCTION`` is set."""
    function_name = conf.wake_function()
    if function_name is None or task.run_at > timezone.now():
        return
    transaction.on_commit(lambda: wake_worker(function_name), using=task._state.db)


def on_tasks_bulk_enqueued(
    sender: Any, rows: list[dict[str, Any]], using: str, **kwargs: Any
) -> None:
    """``tasks_bulk_enqueued`` receiver: one wake-up when any of the rows is due now."""
    function_name = conf.wake_function()
    if function_name is None:
        return
    now = timezone.now()
    if any(row["run_at"] <= now for row in rows):
        transaction.on_commit(lambda: wake_worker(function_name), using=using)
