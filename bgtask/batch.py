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
from datetime import datetime, timedelta

from django.db import DatabaseError
from django.utils import timezone

logger = logging.getLogger("bgtask.batch")

# The claim size grows while claimed batches finish quickly and shrinks when they are slow, so a
# worker with slow tasks does not sit on work that an idle worker could be running.
FAST_BATCH_SECONDS = 0.25
SLOW_BATCH_SECONDS = 1.0


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
    ``BGTASK_LEASE_SECONDS`` renewed by a heartbeat, so a killed invocation's task is claimable
    soon after. ``stop``: an event that, once set, ends the batch after the running task.

    Raises ``bgtask.exceptions.DatabaseUnavailable`` (one line) when the database goes away and a
    reconnect does not help; what the batch still owed it (claimed tasks to release, successes to
    write) is settled by the next ``run_batch`` of the process (see ``bgtask.carryover``).

    >>> result = run_batch(55)
    >>> result.succeeded, result.failed, result.retried
    (12, 0, 1)
    """
    from bgtask import carryover, clock, conf, maintenance
    from bgtask.decorators import check_queue
    from bgtask.execution import FAILED, RETRIED, SUCCEEDED, execute
    from bgtask.heartbeat import Heartbeat
    from bgtask.outcomes import SuccessBuffer
    from bgtask.store import TaskStore

    budget = check_duration(duration)
    if queue is not None:
        check_queue(queue)
    if lease_expires_at is not None and timezone.is_naive(lease_expires_at):
        raise ValueError("lease_expires_at must be an aware datetime.")
    started = time.monotonic()
    deadline = started + budget
    claim_limit = conf.claim_limit()
    lease_seconds = conf.lease_seconds()
    store = TaskStore()
    result = BatchResult(worker_id=new_worker_id())
    carryover.settle(store)
    result.rescued = store.rescue_abandoned(on_rescued=maintenance.signal_rescued)
    maintenance.before_batch()
    successes = SuccessBuffer(store, conf.outcome_batch(), conf.outcome_max_delay())
    # A Lambda invocation's lease is its deadline; anyone else holds short leases, renewed.
    heartbeat = (
        None
        if lease_expires_at is not None
        else Heartbeat(store.alias, result.worker_id, lease_seconds, conf.max_run_time())
    )

    limit = 1
    failing: BaseException | None = None
    try:
        while not (stop and stop.is_set()):
            if time.monotonic() >= deadline:
                result.budget_spent = True
                break
            successes.flush()  # a claim sees the table as this worker left it
            lease = lease_expires_at or clock.now(store.alias) + timedelta(seconds=lease_seconds)
            claimed = store.claim_due(result.worker_id, limit, lease, queue)
            if not claimed:
                break
            claimed_at = time.monotonic()
            if heartbeat is not None:
                heartbeat.claimed()
            begun = 0
            try:
                for task in claimed:
                    now = time.monotonic()
                    if now >= deadline:
                        result.budget_spent = True
                        break
                    if stop and stop.is_set():
                        break
                    if heartbeat is not None and heartbeat.lease_left() < lease_seconds / 2:
                        break  # start nothing on a fading lease: release the rest, claim afresh
                    begun += 1  # counted before it runs: a started task is never released
                    successes.before_task()
                    if heartbeat is not None:
                        heartbeat.task_started()
                    outcome = execute(task, store, successes)
                    if heartbeat is not None:
                        heartbeat.task_finished()
                    successes.task_ran(time.monotonic() - now)
                    if outcome.kind == SUCCEEDED:
                        result.succeeded += 1
                    elif outcome.kind == RETRIED:
                        result.retried += 1
                    elif outcome.kind == FAILED:
                        result.failed += 1
            except BaseException:
                # Whatever stops the batch, the claimed rest goes back (or is owed, if the
                # database is away); the error on its way out is the one to report.
                _release(store, claimed[begun:], result, quiet=True)
                raise
            _release(store, claimed[begun:], result, quiet=False)
            if result.budget_spent:
                break
            batch_seconds = time.monotonic() - claimed_at
            if begun == len(claimed) and batch_seconds < FAST_BATCH_SECONDS:
                limit = min(limit * 2, claim_limit)
            elif batch_seconds > SLOW_BATCH_SECONDS:
                limit = max(1, limit // 2)
    except BaseException as exc:
        failing = exc
        raise
    finally:
        if heartbeat is not None:
            heartbeat.stop()
        try:
            successes.flush()  # on budget end, on stop, and on the way out of an error
        except DatabaseError:
            # The group waits in bgtask.carryover; an error already on its way out says enough.
            if failing is None:
                raise

    maintenance.after_batch()
    result.elapsed = time.monotonic() - started
    # An empty poll is routine in a polling loop; only batches that did something are news.
    level = logging.INFO if (result.ran or result.released or result.rescued) else logging.DEBUG
    logger.log(level, "Batch %s: %s", result.worker_id, result.as_dict())
    return result


def _release(store, unstarted: list, result: BatchResult, *, quiet: bool) -> None:
    """Release claimed but unstarted tasks; if the database is away, owe them to it
    (``bgtask.carryover``) and raise, unless ``quiet`` (another error is already on its way)."""
    from bgtask import carryover

    if not unstarted:
        return
    task_ids = [task.id for task in unstarted]
    try:
        result.released += store.release(task_ids, result.worker_id)
    except DatabaseError:
        carryover.owe_release(store.alias, result.worker_id, task_ids)
        if not quiet:
            raise
