"""``run_batch``: drain the due tasks within a time budget, then return.

Cron, Lambda and tests all call this one function. It keeps no state between calls: everything it
needs is in the database, so calls may overlap or die at any instruction without losing a task.

The batch's own thread claims, starts and records; the runner (``bgtask.worker.runner``) runs up to
``concurrency`` tasks at once; the completer (``bgtask.worker.completer``) writes every outcome;
the heartbeat (``bgtask.worker.heartbeat``) keeps the leases of the tasks in flight, rescues dead
workers' tasks and stops a task whose lease was lost.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime

from django.db import InterfaceError, OperationalError, router
from django.utils import timezone

from bgtask import clock, conf, timeouts
from bgtask.enqueue.validation import check_queue
from bgtask.exceptions import TaskAbandoned
from bgtask.features import hooks
from bgtask.features.limits import current_limits
from bgtask.limits import LimitSet
from bgtask.models import Task
from bgtask.signals import task_failed, task_retried, tasks_claimed
from bgtask.store import TaskStore
from bgtask.worker import outages
from bgtask.worker.completer import (
    OWED,
    Completer,
    Owed,
    learn_duration,
    send_statement_signal,
    timed,
)
from bgtask.worker.execution import CANCELLED, FAILED, RETRIED, SUCCEEDED, Outcome
from bgtask.worker.heartbeat import Heartbeat
from bgtask.worker.runner import Runner

logger = logging.getLogger("bgtask.batch")

# The claim size grows while claimed batches finish quickly and shrinks when they are slow, so a
# worker with slow tasks does not sit on work that an idle worker could be running.
FAST_BATCH_SECONDS = 0.25
SLOW_BATCH_SECONDS = 1.0
# A claimed task is only started while most of its lease (as last set or renewed by the
# heartbeat) is left; otherwise the rest is released and claimed afresh with a new lease.
MIN_LEASE_LEFT_FRACTION = 0.5
# While tasks are in flight the batch's thread looks at the clock, the stop flag and the waiting
# group at least this often.
WAIT_SLICE_SECONDS = 0.5
# With a hard deadline (Lambda), how long after it the batch still waits for a task in flight that
# its DeadlineReached has not stopped yet (a thread inside a blocking call) before it leaves that
# task to its lease and returns: less than BGTASK_LAMBDA_SAFETY_MARGIN's default of 5 s.
DEADLINE_WAIT_SECONDS = 1.0


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
    cancelled: int = 0
    """Running tasks stopped because ``bgtask.cancel()`` asked (never retried)."""
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
    concurrency: int = field(default=1, repr=False)
    """The most tasks this call ran at once."""
    held_back_for: float | None = field(default=None, repr=False)
    """When it ended with nothing to claim while a limit (``bgtask.limits``) held due tasks
    back: seconds until that limit may have room, so a polling worker looks again then."""

    @property
    def ran(self) -> int:
        """Tasks started by this call: ``succeeded + failed + retried + cancelled``."""
        return self.succeeded + self.failed + self.retried + self.cancelled

    def as_dict(self) -> dict[str, object]:
        """The counts as a JSON-ready dict (what the log line and the Lambda answer carry)."""
        return {
            "succeeded": self.succeeded,
            "failed": self.failed,
            "retried": self.retried,
            "cancelled": self.cancelled,
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
    concurrency: int | None = None,
    owed: Owed | None = None,
) -> BatchResult:
    """Run due tasks until none is due or ``duration`` seconds have passed; return the counts.

    ``queue``: only this queue (default: all). ``concurrency``: how many tasks may run at once
    (default ``BGTASK_CONCURRENCY``): sync tasks on that many threads, ``async def`` tasks on one
    event loop, never more than ``concurrency`` in all; 1 runs each task in this thread.
    ``lease_expires_at``: when a caller has a hard deadline (a Lambda invocation), the lock of
    every claimed task expires then instead of after ``MAX_RUN_TIME``, so a killed invocation's
    task is claimable soon after. ``stop``: an event that, once set, ends the batch: nothing more
    starts, the tasks in flight finish, the claimed ones that never started are released.
    ``hard_deadline``: no task may still run then (a Lambda invocation's end less its safety
    margin): each task's time limit is cut to it (a task it stops is retried), and a task whose
    ``timeout`` cannot fit is left for a later run. ``owed``: where outcomes that could not be
    written are kept for the next call (default: this process's, ``completer.OWED``).

    Raises ``bgtask.exceptions.DatabaseUnavailable`` (an ``OperationalError``, one line, no
    chained driver traceback) when the database is lost and one reconnect does not bring it back.
    What the batch still owed the database (claimed tasks to release, outcomes to write) is
    settled by the next ``run_batch`` in this process.

    >>> result = run_batch(55, concurrency=8)
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
            concurrency=concurrency,
            owed=owed,
        )
    except (OperationalError, InterfaceError) as exc:
        if not outages.is_outage(exc):
            raise
        alias = router.db_for_write(Task)
        outages.close_quietly(alias)
        raise outages.unavailable(alias, exc) from None


def check_concurrency(concurrency: object) -> int:
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ValueError(f"concurrency must be an int of 1 or more, got {concurrency!r}.")
    return concurrency


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
    heartbeat: Heartbeat
    stop: threading.Event | None
    completer: Completer
    runner: Runner
    limits: LimitSet = field(default_factory=LimitSet)  # of this process, for this queue
    pending: deque[Task] = field(default_factory=deque)  # claimed, not started yet

    def stopping(self) -> bool:
        if self.stop is None:
            return False
        signalled = getattr(self.stop, "signalled", None)  # a SignalStop (process_tasks)
        return self.stop.is_set() or (signalled is not None and signalled())

    def lease_until(self) -> datetime:
        return self.lease_expires_at or self.heartbeat.lease_until()

    def admit(self, task: Task) -> timeouts.Limit | None:
        """The time limit of ``task`` if it may start now, else None (see ``_start_limit``).
        Called from the batch's thread and, with N at once, from pool threads (``Runner``),
        which also ask a ``SignalStop`` whether a stop signal arrived that the main thread has
        not handled yet (``bgtask.worker.stopping``)."""
        signalled = getattr(self.stop, "signalled", None)
        if signalled is not None and signalled():
            return None
        return _start_limit(self, task, time.monotonic())


def _run_batch(
    duration: float,
    *,
    queue: str | None,
    lease_expires_at: datetime | None,
    stop: threading.Event | None,
    hard_deadline: datetime | None,
    concurrency: int | None,
    owed: Owed | None,
) -> BatchResult:
    budget = check_duration(duration)
    if queue is not None:
        check_queue(queue)
    if lease_expires_at is not None and timezone.is_naive(lease_expires_at):
        raise ValueError("lease_expires_at must be an aware datetime.")
    if hard_deadline is not None and timezone.is_naive(hard_deadline):
        raise ValueError("hard_deadline must be an aware datetime.")
    concurrency = check_concurrency(conf.concurrency() if concurrency is None else concurrency)
    started = time.monotonic()
    tasks_deadline = (
        None if hard_deadline is None else started + (hard_deadline - clock.now()).total_seconds()
    )
    max_run_time = conf.max_run_time()
    store = TaskStore()
    result = BatchResult(worker_id=new_worker_id(), concurrency=concurrency)
    completer = Completer(
        store,
        result.worker_id,
        group_size=conf.outcome_batch(),
        max_delay=conf.outcome_max_delay(),
        owed=OWED if owed is None else owed,
    )
    # What an earlier batch of this process still owes the database, first.
    result.released += completer.settle_owed()
    result.rescued = store.rescue_abandoned(clock.now(store.alias), on_rescued=_signal_rescued)
    hooks.before_batch()
    runner = Runner(concurrency)
    # Lambda has its deadline lease; a cron/CLI worker a short lease its heartbeat renews. Both
    # have a heartbeat thread while tasks run: it looks for cancel requests and rescues dead
    # workers' tasks.
    heartbeat = Heartbeat(
        store.alias,
        result.worker_id,
        lease_seconds=conf.lease_seconds(),
        max_run_time=max_run_time,
        on_lease_lost=runner.stop_abandoned,
        on_rescued=_signal_rescued,
        on_cancel_requested=runner.stop_cancelled,
        cancel_check=conf.cancel_check_seconds(),
        renewing=lease_expires_at is None,
    )
    runner.on_started, runner.on_finished = heartbeat.task_started, heartbeat.task_finished
    batch = _Batch(
        store=store,
        result=result,
        deadline=started + budget,
        tasks_deadline=tasks_deadline,
        claim_limit=conf.claim_limit(),
        queue=queue,
        lease_expires_at=lease_expires_at,
        heartbeat=heartbeat,
        stop=stop,
        completer=completer,
        runner=runner,
        # Read once per batch: the registry and settings do not change while it drains.
        limits=current_limits().for_queue(queue),
    )
    if concurrency > 1:
        runner.refill_from(batch.pending, batch.admit)
    failing: BaseException | None = None
    try:
        _drain(batch)
    except BaseException as exc:
        failing = exc
        raise
    finally:
        try:
            _wind_down(batch, failing)
        finally:
            runner.close()
            heartbeat.stop()
            result.lease_renewals = heartbeat.renewals
            result.rescued += heartbeat.rescued

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
    """Claim and start due tasks until none is due, the budget is spent or a stop is asked.

    Only what can start soon is claimed: a claim whose size doubles while claimed tasks start
    quickly and halves when they are slow (``_resized``); with N at once, see
    ``_drain_concurrently``."""
    if batch.runner.concurrency > 1:
        _drain_concurrently(batch)
        return
    result, completer, pending = batch.result, batch.completer, batch.pending
    limit = 1
    while True:
        if not pending:
            if _no_more_claims(batch):
                return
            completer.flush()  # a claim sees the table as this worker left it
            claimed = _claim(batch, limit)
            if not claimed:
                if _wait_for_a_rate(batch):
                    continue
                return
            pending.extend(claimed)
            claimed_at = time.monotonic()
        if _start_pending(batch):
            _release_pending(batch)
            if result.budget_spent or batch.stopping():
                return
            continue
        # Every claimed task has run: size the next claim on how long that took.
        limit = _resized(limit, time.monotonic() - claimed_at, batch.claim_limit)


def _drain_concurrently(batch: _Batch) -> None:
    """``_drain`` with up to N tasks at once. The batch's thread claims, records outcomes and
    writes them; pool threads start the next claimed task themselves when theirs ends
    (``Runner.refill_from``), so a slot never waits for this thread's round trips. A claim is
    made once no more than N/2 claimed tasks wait for a slot (they start within about half a
    task's time), of at least the free slots."""
    result, runner, completer, pending = batch.result, batch.runner, batch.completer, batch.pending
    limit = 1
    low_water = runner.concurrency // 2
    claimed_at: float | None = None
    while True:
        _record(batch, runner.finished(0.0))
        if _start_pending(batch):
            _release_pending(batch)
            if result.budget_spent or batch.stopping():
                return
            continue
        if not pending and claimed_at is not None:
            limit = _resized(limit, time.monotonic() - claimed_at, batch.claim_limit)
            claimed_at = None
        if len(pending) > low_water:
            _wait_for_a_slot(batch)
            continue
        if _no_more_claims(batch):
            return
        completer.flush()  # a claim sees the table as this worker left it
        claimed = _claim(batch, min(max(limit, runner.free_slots()), batch.claim_limit))
        if claimed:
            pending.extend(claimed)
            if claimed_at is None:
                claimed_at = time.monotonic()
        elif pending or runner.in_flight() or runner.has_outcomes():
            # Nothing due now, but what is in flight may end in a retry due at once, and new
            # work may come: look again once a task ends (or a slice passes). An outcome not
            # yet recorded leaves its row running for the claim, and under a limit it may be
            # the very row that held the next one back.
            _wait_for_a_slot(batch)
        elif not _wait_for_a_rate(batch):
            return


def _no_more_claims(batch: _Batch) -> bool:
    """True when a stop was asked or the budget is spent (``budget_spent`` is then set)."""
    if batch.stopping():
        return True
    if time.monotonic() >= batch.deadline:
        batch.result.budget_spent = True
        return True
    return False


def _claim(batch: _Batch, size: int) -> list[Task]:
    result = batch.result
    began = timed(tasks_claimed)
    # A limited scope's tasks are claimed no more than the free slots: claimed, they count as
    # running, and a worker must not hold a scope's slots while it cannot run them.
    claimed = batch.store.claim_due(
        result.worker_id,
        size,
        batch.lease_until(),
        batch.queue,
        limits=batch.limits,
        limited_limit=batch.runner.free_slots(),
    )
    if began is not None and claimed:
        send_statement_signal(
            tasks_claimed, result.worker_id, began, tasks=tuple(claimed), queue=batch.queue
        )
    return claimed


def _wait_for_a_rate(batch: _Batch) -> bool:
    """Nothing was claimed. True (after waiting) when due tasks wait for a rate's next start
    that comes within the budget: the batch claims again rather than ending (a Lambda invocation
    would otherwise start one task per schedule tick). A full concurrency limit ends the batch
    (False): its slots are held by other workers, for as long as their tasks run."""
    held = batch.store.held_back_for
    if (
        held is not None
        and batch.store.held_back_by_rate
        and time.monotonic() + held < batch.deadline
    ):
        if batch.stop is not None:
            batch.stop.wait(held)
        else:
            time.sleep(held)
        return True
    batch.result.held_back_for = held
    return False


def _resized(limit: int, batch_seconds: float, claim_limit: int) -> int:
    """The next claim's size after the last claim's tasks all started in ``batch_seconds``."""
    if batch_seconds < FAST_BATCH_SECONDS:
        return min(limit * 2, claim_limit)
    if batch_seconds > SLOW_BATCH_SECONDS:
        return max(1, limit // 2)
    return limit


def _start_pending(batch: _Batch) -> bool:
    """Start claimed tasks while slots are free. True when no more may start from this claim
    (budget, stop, hard deadline, or too little lease left): the rest is then released."""
    runner, completer, pending = batch.runner, batch.completer, batch.pending
    if runner.concurrency == 1:
        return _run_pending_here(batch)
    while pending:
        completer.flush_if_old()
        started = runner.start_ready(pending, batch.admit)
        if started is None:
            return True
        if not started and runner.free_slots() == 0:
            break
    return False


def _run_pending_here(batch: _Batch) -> bool:
    """``_start_pending`` with one task at a time: each runs in this thread to its end, and its
    outcome is recorded before the next starts (the loop every no-op drain is made of)."""
    runner, completer, pending = batch.runner, batch.completer, batch.pending
    while pending:
        task = pending[0]
        # May write the waiting group. Done first: while the task is still unstarted (if the
        # database is gone it is released with the rest, not left running), and before the
        # budget is checked (a slow write must not start a task past it).
        completer.before_task(task)
        task_limit = _start_limit(batch, task, time.monotonic())
        if task_limit is None:
            return True
        pending.popleft()  # started: never released
        outcome = runner.start(task, task_limit)
        assert outcome is not None  # concurrency 1 runs the task in this thread, to its end
        _record_one(batch, outcome)
    return False


def _wait_for_a_slot(batch: _Batch) -> None:
    """Wait until a task in flight ends (recording what ended), or until the waiting group is due,
    or a slice passes (the budget and the stop flag are looked at again)."""
    due = batch.completer.group_due_in()
    timeout = WAIT_SLICE_SECONDS if due is None else min(due, WAIT_SLICE_SECONDS)
    _record(batch, batch.runner.finished(timeout))
    batch.completer.flush_if_old()


def _record(batch: _Batch, outcomes: list[Outcome]) -> None:
    for outcome in outcomes:
        _record_one(batch, outcome)


def _record_one(batch: _Batch, outcome: Outcome) -> None:
    result, kind = batch.result, outcome.kind
    learn_duration(
        outcome.task.task_name, (outcome.finished_at - outcome.started_at).total_seconds()
    )
    if kind == SUCCEEDED:
        result.succeeded += 1
    elif kind == RETRIED:
        result.retried += 1
    elif kind == FAILED:
        result.failed += 1
    elif kind == CANCELLED:
        result.cancelled += 1
    batch.completer.record(outcome)


def _release_pending(batch: _Batch) -> None:
    """Hand back claimed tasks that never started (budget, stop, short lease, an error)."""
    if batch.pending:
        # Taken one by one: a pool thread may take the first at the same time (deque pops are
        # atomic), and a task is either started by it or released here, never both.
        unstarted = []
        with contextlib.suppress(IndexError):
            while True:
                unstarted.append(batch.pending.popleft().id)
        if unstarted:
            batch.result.released += batch.completer.release(unstarted)


def _wind_down(batch: _Batch, failing: BaseException | None) -> None:
    """However the drain ended: release what never started, let the tasks in flight end, write
    their outcomes and the waiting group. When the database is gone (``failing``, or lost now),
    what cannot be written is owed (``bgtask.worker.completer.Owed``) and the error goes on."""
    error = failing
    try:
        _release_pending(batch)
    except (OperationalError, InterfaceError) as exc:  # owed by the completer
        error = error or exc
    runner, completer = batch.runner, batch.completer
    while runner.in_flight() and not _past_the_deadline(batch):
        error = _record_or_owe(batch, runner.finished(WAIT_SLICE_SECONDS), error)
    error = _record_or_owe(batch, runner.finished(0.0), error)
    try:
        completer.flush()  # on budget end, on stop, and on the way out of an error
    except (OperationalError, InterfaceError) as exc:
        # The group is owed; an error already on its way out says enough.
        error = error or exc
    if error is not None and failing is None:
        raise error


def _past_the_deadline(batch: _Batch) -> bool:
    """True once a batch with a hard deadline has waited ``DEADLINE_WAIT_SECONDS`` past it for
    tasks in flight: those are left to their lease (the invocation's deadline plus its grace)."""
    if batch.tasks_deadline is None:
        return False
    if time.monotonic() < batch.tasks_deadline + DEADLINE_WAIT_SECONDS:
        return False
    logger.warning(
        "%d task(s) still running %g s after the hard deadline (inside a blocking call that "
        "DeadlineReached cannot interrupt); left to their lease, they run again later.",
        batch.runner.in_flight(),
        DEADLINE_WAIT_SECONDS,
    )
    batch.runner.abandon_in_flight = True
    return True


def _record_or_owe(
    batch: _Batch, outcomes: list[Outcome], error: BaseException | None
) -> BaseException | None:
    """Record ``outcomes`` while the database answers; from the first failure (``error``) on,
    owe them. Returns the error, if any, for the caller to raise once all is owed."""
    for outcome in outcomes:
        if error is None:
            try:
                _record(batch, [outcome])
                continue
            except (OperationalError, InterfaceError) as exc:
                error = exc  # this outcome is owed by the completer; the rest below
                continue
        _owe(batch, outcome)
    return error


def _owe(batch: _Batch, outcome: Outcome) -> None:
    """An outcome that cannot be written now (the database is gone): a success is owed, a retry
    or failure handed back later to run again with this attempt not counted."""
    result, owed, alias = batch.result, batch.completer.owed, batch.store.alias
    if outcome.kind == SUCCEEDED:
        result.succeeded += 1
        owed.owe_successes(alias, [outcome])
    else:
        result.retried += outcome.kind == RETRIED
        result.failed += outcome.kind == FAILED
        result.cancelled += outcome.kind == CANCELLED
        # A task this batch claimed and has not written: locked_by is its worker's id.
        owed.owe_hand_back(alias, outcome.task.locked_by, [outcome.task.id])  # type: ignore[arg-type]


def _start_limit(batch: _Batch, task: Task, now: float) -> timeouts.Limit | None:
    """How long the next claimed task may run if it may start now, else None (and
    ``budget_spent`` is set when the budget or the hard deadline is why)."""
    if now >= batch.deadline:
        batch.result.budget_spent = True
        return None
    if batch.stop is not None and batch.stop.is_set():
        return None
    heartbeat = batch.heartbeat
    if (
        batch.lease_expires_at is None
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


def _signal_rescued(task_id: int) -> None:
    """Send ``task_retried`` or ``task_failed`` for a task requeued or failed because its worker
    held it past its lease; ``error`` is a ``TaskAbandoned`` carrying the recorded message."""
    task = Task.objects.filter(pk=task_id).first()
    if task is None:
        return
    error = TaskAbandoned(task.last_error)
    signal = task_failed if task.status == Task.FAILED else task_retried
    signal.send_robust(sender=Task, task=task, error=error)
