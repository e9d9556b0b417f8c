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

from bgtask import clock, conf, timeouts
from bgtask.enqueue.validation import check_queue
from bgtask.exceptions import TaskAbandoned
from bgtask.features import hooks
from bgtask.models import Task
from bgtask.signals import task_failed, task_retried
from bgtask.store import TaskStore
from bgtask.worker import completer as outcomes
from bgtask.worker import outages
from bgtask.worker.completer import SuccessBuffer
from bgtask.worker.execution import FAILED, RETRIED, SUCCEEDED, execute
from bgtask.worker.heartbeat import Heartbeat

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
    """What one ``run_batch`` call did: counts of outcomes, and why it stopped.

    >>> result = run_batch(55)
    >>> result.succeeded, result.failed, result.retried, result.budget_spent
    (12, 0, 1, False)
    >>> result.ran
    13
    """

    succeeded: int = 0
    """Tasks whose function returned."""
    failed: int = 0  # permanently: out of attempts, or arguments that can never decode
    """Tasks that failed for good: out of attempts, timed out, or arguments that cannot decode."""
    retried: int = 0
    """Tasks that raised and were queued again for a later attempt."""
    released: int = 0  # claimed but not started; queued again for anyone
    """Tasks claimed but not started (the budget ran out, or a stop was asked); queued again."""
    rescued: int = 0  # abandoned by a dead worker, requeued (or failed) at the start
    """Tasks whose worker died (their lease had expired), requeued or failed at the start."""
    elapsed: float = 0.0
    """Seconds the call took."""
    budget_spent: bool = False  # True when it stopped on the budget rather than running dry
    """``True`` when it stopped because ``duration`` was spent, ``False`` when nothing was due."""
    worker_id: str = field(default="", repr=False)
    """The lease holder's name stored in ``locked_by``: ``host:pid:random``, unique per call."""
    lease_renewals: int = field(default=0, repr=False)
    """Heartbeat statements issued (each renews every lease the worker holds)."""

    @property
    def ran(self) -> int:
        """Tasks started by this call: ``succeeded + failed + retried``."""
        return self.succeeded + self.failed + self.retried

    def as_dict(self) -> dict[str, object]:
        """The counts as a JSON-ready dict (what the log line and the Lambda answer carry)."""
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
    hard_deadline: datetime | None = None,
) -> BatchResult:
    """Run due tasks until none is due or ``duration`` seconds have passed; return the counts.

    ``queue``: only this queue (default: all). ``lease_expires_at``: when a caller has a hard
    deadline (a Lambda invocation), the lock of every claimed task expires then instead of after
    ``MAX_RUN_TIME``, so a killed invocation's task is claimable soon after. ``stop``: an event
    that, once set, ends the batch after the running task. ``hard_deadline``: no task may still run
    then (a Lambda invocation's end less its safety margin): each task's time limit is cut to it
    (a task it stops is retried), and a task whose ``timeout`` cannot fit is left for a later run.

    Raises ``bgtask.exceptions.DatabaseUnavailable`` (an ``OperationalError``, one line, no
    chained driver traceback) when the database is lost and one reconnect does not bring it back.
    What the batch still owed the database (claimed tasks to release, successes to write) is
    settled by the next ``run_batch`` in this process.

    >>> result = run_batch(55)
    >>> result.succeeded, result.failed, result.retried
    (12, 0, 1)
    """
    try:
        return _run_batch(
            duration,
            queue=queue,
            lease_expires_at=lease_expires_at,
            stop=stop,
            hard_deadline=hard_deadline,
        )
    except (OperationalError, InterfaceError) as exc:
        if not outages.is_outage(exc):
            raise
        alias = router.db_for_write(Task)
        outages.close_quietly(alias)
        raise outages.unavailable(alias, exc) from None


@dataclass
class _Batch:
    """What one call of ``run_batch`` works with while it drains."""

    store: TaskStore
    result: BatchResult
    deadline: float  # time.monotonic() when the budget is spent
    tasks_deadline: float | None  # time.monotonic() when no task may still run (hard_deadline)
    claim_limit: int  # the most tasks one claim may take
    queue: str | None
    lease_expires_at: datetime | None  # a fixed lease (Lambda); None: the heartbeat's
    heartbeat: Heartbeat | None
    stop: threading.Event | None
    successes: SuccessBuffer

    def stopping(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    def lease_until(self) -> datetime:
        return self.lease_expires_at or self.heartbeat.lease_until()


def _run_batch(
    duration: float,
    *,
    queue: str | None,
    lease_expires_at: datetime | None,
    stop: threading.Event | None,
    hard_deadline: datetime | None,
) -> BatchResult:
    budget = check_duration(duration)
    if queue is not None:
        check_queue(queue)
    if lease_expires_at is not None and timezone.is_naive(lease_expires_at):
        raise ValueError("lease_expires_at must be an aware datetime.")
    if hard_deadline is not None and timezone.is_naive(hard_deadline):
        raise ValueError("hard_deadline must be an aware datetime.")
    started = time.monotonic()
    tasks_deadline = (
        None if hard_deadline is None else started + (hard_deadline - clock.now()).total_seconds()
    )
    max_run_time = conf.max_run_time()
    claim_limit = conf.claim_limit()
    store = TaskStore()
    result = BatchResult(worker_id=new_worker_id())
    # What an earlier batch of this process still owes the database, first.
    result.released += outages.release_unreleased(store)
    outcomes.settle_owed(store)
    result.rescued = store.rescue_abandoned(clock.now(store.alias), on_rescued=_signal_rescued)
    hooks.before_batch()
    # Lambda has its deadline lease; a cron/CLI worker a short lease its heartbeat renews.
    heartbeat = None
    if lease_expires_at is None:
        heartbeat = Heartbeat(
            store.alias,
            result.worker_id,
            lease_seconds=conf.lease_seconds(),
            max_run_time=max_run_time,
        )
    batch = _Batch(
        store=store,
        result=result,
        deadline=started + budget,
        tasks_deadline=tasks_deadline,
        claim_limit=claim_limit,
        queue=queue,
        lease_expires_at=lease_expires_at,
        heartbeat=heartbeat,
        stop=stop,
        successes=SuccessBuffer(store, conf.outcome_batch(), conf.outcome_max_delay()),
    )
    failing: BaseException | None = None
    try:
        _drain(batch)
    except BaseException as exc:
        failing = exc
        raise
    finally:
        try:
            batch.successes.flush()  # on budget end, on stop, and on the way out of an error
        except (OperationalError, InterfaceError):
            # The group is owed (bgtask.outcomes); an error already on its way out says enough.
            if failing is None:
                raise
        finally:
            if heartbeat is not None:
                heartbeat.stop()
                result.lease_renewals = heartbeat.renewals

    hooks.after_batch()
    result.elapsed = time.monotonic() - started
    store.record_batch(
        socket.gethostname(), result.worker_id, clock.now(store.alias), result.as_dict()
    )
    # An empty poll is routine in a polling loop; only batches that did something are news.
    level = logging.INFO if (result.ran or result.released or result.rescued) else logging.DEBUG
    logger.log(level, "Batch %s: %s", result.worker_id, result.as_dict())
    return result


def _drain(batch: _Batch) -> None:
    """Claim and run due tasks until none is due, the budget is spent or a stop is asked.

    The claim size doubles while claimed tasks finish quickly and halves when they are slow."""
    result = batch.result
    limit = 1
    while not batch.stopping():
        if time.monotonic() >= batch.deadline:
            result.budget_spent = True
            break
        batch.successes.flush()  # a claim sees the table as this worker left it
        claimed = batch.store.claim_due(result.worker_id, limit, batch.lease_until(), batch.queue)
        if not claimed:
            break
        claimed_at = time.monotonic()
        begun = 0
        try:
            for task in claimed:
                # May write the waiting group. Done first: while the task is still unstarted (if
                # the database is gone it is released with the rest, not left running), and
                # before the budget is checked (a slow write must not start a task past it).
                batch.successes.before_task(task)
                now = time.monotonic()
                task_limit = _start_limit(batch, task, now)
                if task_limit is None:
                    break
                begun += 1  # counted before it runs: a started task is never released
                _run_one(batch, task, task_limit, now)
        finally:
            # Claimed but not started (budget, stop, short lease, or an error on the way out).
            unstarted = [task.id for task in claimed[begun:]]
            if unstarted:
                result.released += _release_or_remember(batch.store, unstarted, result.worker_id)
        if result.budget_spent:
            break
        batch_seconds = time.monotonic() - claimed_at
        if begun == len(claimed) and batch_seconds < FAST_BATCH_SECONDS:
            limit = min(limit * 2, batch.claim_limit)
        elif batch_seconds > SLOW_BATCH_SECONDS:
            limit = max(1, limit // 2)


def _start_limit(batch: _Batch, task: Task, now: float) -> timeouts.Limit | None:
    """How long the next claimed task may run if it may start now, else None (and
    ``budget_spent`` is set when the budget or the hard deadline is why)."""
    if now >= batch.deadline:
        batch.result.budget_spent = True
        return None
    if batch.stopping():
        return None
    heartbeat = batch.heartbeat
    if (
        heartbeat is not None
        and heartbeat.lease_left() < MIN_LEASE_LEFT_FRACTION * heartbeat.full_lease
    ):
        return None  # too little of the lease left: released, and claimed afresh
    task_limit = timeouts.limit_before(task.timeout, batch.tasks_deadline, now)
    if task_limit is None:
        # Its timeout cannot fit before the hard deadline: released for a later run, which would
        # claim it first again, so this batch ends here.
        logger.info(
            "Task %s #%s not started: its timeout of %g s does not fit before the hard deadline; "
            "left for a later run.",
            task.task_name,
            task.id,
            task.timeout,
        )
        batch.result.budget_spent = True
    return task_limit


def _run_one(batch: _Batch, task: Task, task_limit: timeouts.Limit, now: float) -> None:
    """Run one claimed task (``execute`` records its outcome) and count the outcome."""
    successes, heartbeat, result = batch.successes, batch.heartbeat, batch.result
    if heartbeat is not None:
        heartbeat.task_started()
    try:
        outcome = execute(task, batch.store, task_limit, successes)
    finally:
        if heartbeat is not None:
            heartbeat.task_finished()
    successes.task_ran(task, time.monotonic() - now)
    if outcome.kind == SUCCEEDED:
        result.succeeded += 1
    elif outcome.kind == RETRIED:
        result.retried += 1
    elif outcome.kind == FAILED:
        result.failed += 1


def _release_or_remember(store: TaskStore, task_ids: list[int], worker_id: str) -> int:
    """Release unstarted claims; if the database is gone, remember them for the next batch."""
    try:
        return store.release(task_ids, worker_id)
    except (OperationalError, InterfaceError) as exc:
        if outages.is_outage(exc):
            outages.remember_unreleased(store.alias, worker_id, task_ids)
        raise


def _signal_rescued(task_id: int) -> None:
    """Send ``task_retried`` or ``task_failed`` for a task requeued or failed because its worker
    held it past its lease; ``error`` is a ``TaskAbandoned`` carrying the recorded message."""
    task = Task.objects.filter(pk=task_id).first()
    if task is None:
        return
    error = TaskAbandoned(task.last_error)
    signal = task_failed if task.status == Task.FAILED else task_retried
    signal.send(sender=Task, task=task, error=error)
