"""``run_batch``: drain the due tasks within a time budget, then return.

Cron, Lambda and tests all call this one function. It keeps no state between calls: everything it
needs is in the database, so calls may overlap or die at any instruction without losing a task.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from django.db import InterfaceError, OperationalError, router
from django.utils import timezone

logger = logging.getLogger("bgtask.batch")

# The claim size grows while claimed batches finish quickly and shrinks when they are slow, so a
# worker with slow tasks does not sit on work that an idle worker could be running.
FAST_BATCH_SECONDS = 0.25
SLOW_BATCH_SECONDS = 1.0
# A claimed task is only started while most of its lease (as last set or renewed by the
# heartbeat) is left; otherwise the rest is released and claimed afresh with a new lease.
MIN_LEASE_LEFT_FRACTION = 0.5


@dataclass
class BatchResult:
    """What one ``run_batch`` call did."""

    succeeded: int = 0
    failed: int = 0  # permanently: out of attempts, or arguments that can never decode
    retried: int = 0
    released: int = 0  # claimed but not started; queued again for anyone
    rescued: int = 0  # abandoned by a dead worker, requeued (or failed) at the start
    elapsed: float = 0.0
    budget_spent: bool = False  # True when it stopped on the budget rather than running dry
    worker_id: str = field(default="", repr=False)
    lease_renewals: int = field(default=0, repr=False)  # heartbeat statements issued

    @property
    def ran(self) -> int:
        return self.succeeded + self.failed + self.retried

    def as_dict(self) -> dict[str, object]:
        return {
            "succeeded": self.succeeded,
            "failed": self.failed,
            "retried": self.retried,
            "released": self.released,
            "rescued": self.rescued,
            "elapsed": round(self.elapsed, 3),
            "budget_spent": self.budget_spent,
        }


def new_worker_id() -> str:
    """Unique per run_batch call; stored in ``locked_by`` as the lease holder."""
    return f"{socket.gethostname()[:32]}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def check_duration(duration: object) -> float:
    if isinstance(duration, bool) or not isinstance(duration, (int, float)):
        raise TypeError(f"duration must be a number of seconds, got {duration!r}.")
    if not math.isfinite(duration) or duration <= 0:
        raise ValueError(f"duration must be a finite number of seconds above 0, got {duration!r}.")
    return float(duration)


def run_batch(
    duration: float,
    *,
    queue: str | None = None,
    lease_expires_at: datetime | None = None,
    stop: threading.Event | None = None,
) -> BatchResult:
    """Run due tasks until none is due or ``duration`` seconds have passed; return the counts.

    ``queue``: only this queue (default: all). ``lease_expires_at``: when a caller has a hard
    deadline (a Lambda invocation), the lock of every claimed task expires then instead of after
    ``MAX_RUN_TIME``, so a killed invocation's task is claimable soon after. ``stop``: an event
    that, once set, ends the batch after the running task.

    Raises ``bgtask.exceptions.DatabaseUnavailable`` (an ``OperationalError``, one line, no
    chained driver traceback) when the database is lost and one reconnect does not bring it back.
    Tasks claimed but not started are then released by the next ``run_batch`` in this process.

    >>> result = run_batch(55)
    >>> result.succeeded, result.failed, result.retried
    (12, 0, 1)
    """
    from bgtask import outages

    try:
        return _run_batch(duration, queue=queue, lease_expires_at=lease_expires_at, stop=stop)
    except (OperationalError, InterfaceError) as exc:
        if not outages.is_outage(exc):
            raise
        from bgtask.models import Task

        alias = router.db_for_write(Task)
        outages.close_quietly(alias)
        raise outages.unavailable(alias, exc) from None


def _run_batch(
    duration: float,
    *,
    queue: str | None,
    lease_expires_at: datetime | None,
    stop: threading.Event | None,
) -> BatchResult:
    from bgtask import clock, conf, maintenance, outages
    from bgtask.decorators import check_queue
    from bgtask.heartbeat import Heartbeat
    from bgtask.store import TaskStore

    budget = check_duration(duration)
    if queue is not None:
        check_queue(queue)
    if lease_expires_at is not None and timezone.is_naive(lease_expires_at):
        raise ValueError("lease_expires_at must be an aware datetime.")
    started = time.monotonic()
    deadline = started + budget
    max_run_time = conf.max_run_time()
    claim_limit = conf.claim_limit()
    store = TaskStore()
    result = BatchResult(worker_id=new_worker_id())
    result.released += outages.release_unreleased(store)
    result.rescued = store.rescue_abandoned(
        clock.now(store.alias), on_rescued=maintenance.signal_rescued
    )
    maintenance.before_batch()
    # Lambda has its deadline lease; a cron/CLI worker a short lease its heartbeat renews.
    heartbeat = None
    if lease_expires_at is None:
        heartbeat = Heartbeat(
            store.alias,
            result.worker_id,
            lease_seconds=conf.lease_seconds(),
            max_run_time=max_run_time,
        )
    try:
        _drain(store, result, deadline, claim_limit, queue, lease_expires_at, heartbeat, stop)
    finally:
        if heartbeat is not None:
            heartbeat.stop()
            result.lease_renewals = heartbeat.renewals

    maintenance.after_batch()
    result.elapsed = time.monotonic() - started
    # An empty poll is routine in a polling loop; only batches that did something are news.
    level = logging.INFO if (result.ran or result.released or result.rescued) else logging.DEBUG
    logger.log(level, "Batch %s: %s", result.worker_id, result.as_dict())
    return result


def _drain(store, result, deadline, claim_limit, queue, lease_expires_at, heartbeat, stop) -> None:
    from bgtask.execution import FAILED, RETRIED, SUCCEEDED, execute

    limit = 1
    while not (stop and stop.is_set()):
        if time.monotonic() >= deadline:
            result.budget_spent = True
            break
        lease = lease_expires_at or heartbeat.lease_until()
        claimed = store.claim_due(result.worker_id, limit, lease, queue)
        if not claimed:
            break
        claimed_at = time.monotonic()
        begun = 0
        try:
            for task in claimed:
                now = time.monotonic()
                if now >= deadline:
                    result.budget_spent = True
                    break
                if stop and stop.is_set():
                    break
                if (
                    heartbeat is not None
                    and heartbeat.lease_left() < MIN_LEASE_LEFT_FRACTION * heartbeat.full_lease
                ):
                    break
                begun += 1  # counted before it runs: a started task is never released
                if heartbeat is not None:
                    heartbeat.task_started()
                try:
                    outcome = execute(task, store)
                finally:
                    if heartbeat is not None:
                        heartbeat.task_finished()
                if outcome.kind == SUCCEEDED:
                    result.succeeded += 1
                elif outcome.kind == RETRIED:
                    result.retried += 1
                elif outcome.kind == FAILED:
                    result.failed += 1
        finally:
            unstarted = [task.id for task in claimed[begun:]]
            if unstarted:
                result.released += _release_or_remember(store, unstarted, result.worker_id)
        if result.budget_spent:
            break
        batch_seconds = time.monotonic() - claimed_at
        if begun == len(claimed) and batch_seconds < FAST_BATCH_SECONDS:
            limit = min(limit * 2, claim_limit)
        elif batch_seconds > SLOW_BATCH_SECONDS:
            limit = max(1, limit // 2)


def _release_or_remember(store, task_ids: list[int], worker_id: str) -> int:
    """Release unstarted claims; if the database is gone, remember them for the next batch."""
    from bgtask import outages

    try:
        return store.release(task_ids, worker_id)
    except (OperationalError, InterfaceError) as exc:
        if outages.is_outage(exc):
            outages.remember_unreleased(store.alias, worker_id, task_ids)
        raise
