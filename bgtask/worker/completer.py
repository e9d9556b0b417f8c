"""The completer: the one writer of task outcomes, and what is owed across an outage.

``execute`` decides what happened to a task (an ``Outcome``); the ``Completer`` of the batch writes
it, whichever thread ran the task, always from the batch's own thread and connection:

- **Successes are written in groups**: one guarded statement for many finished tasks, when the
  group is full (``BGTASK_OUTCOME_BATCH``), when its oldest member is ``BGTASK_OUTCOME_MAX_DELAY``
  old, before each claim, before a task that is not known to finish within that delay (when tasks
  run one at a time; the process learns each task name's typical duration), before a retry or
  failure is written (outcomes reach the table in the order they happened), and when the batch
  ends, however it ends. Writing each success alone costs a round trip (and, with a durable
  commit, a disk flush) per task, which is most of a short task's cost.
- **Successes that must be immediate** are written alone: a repeating task (its next repetition is
  written in the same transaction) and a unique task (its key is freed by the write).
- **Retries and failures** are written at once, one by one, after the waiting group.
- **Signals after the write**: ``task_succeeded``, ``task_retried``, ``task_failed`` are sent once
  the row says so, and a receiver that raises is logged, never allowed to stop the batch. The
  in-memory ``Task`` is updated to match the row.

Every write is guarded by the lease the task was claimed under, so a lease lost meanwhile (the task
ran past it and another worker took it over) is detected per task and that outcome discarded.

**What is owed** (``Owed``): when the database goes away, the outcomes the batch could not write are
kept in this process: successes to write later, and tasks to hand back (claimed and never started,
or whose retry/failure could not be written: they run again with that attempt not counted). The
next ``run_batch`` of the process settles them before anything else (``process_tasks`` calls it as
soon as the database answers, and tries for ``BGTASK_EXIT_GRACE`` seconds before it exits). Each
row keeps the guard it was claimed under, so writing late is safe. A crash loses at most what is
owed: those tasks are rescued when their leases expire, and run again.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.db import DatabaseError, InterfaceError, OperationalError
from django.dispatch import Signal

from bgtask import clock, signals
from bgtask.enqueue.announce import announce
from bgtask.features import repeating
from bgtask.models import Task
from bgtask.store import TaskStore
from bgtask.worker import outages
from bgtask.worker.execution import CANCELLED, FAILED, RETRIED, SUCCEEDED, Outcome, summary

logger = logging.getLogger("bgtask.outcomes")
# The lines that say a task failed, was retried or succeeded keep the logger they always had, so
# filters and alerts on it (and the Sentry integration's) go on working.
task_logger = logging.getLogger("bgtask.execution")

#: Weight of the newest run in the running average of a task name's duration.
DURATION_SMOOTHING = 0.2
#: Task names whose typical duration a process remembers.
MAX_TASK_NAMES_TRACKED = 1000

# task name -> typical seconds per run, learned by this process
_typical_seconds: dict[str, float] = {}


def learn_duration(task_name: str, seconds: float) -> None:
    """Learn how long tasks of this name take (a running average, per process)."""
    typical = _typical_seconds.get(task_name)
    if typical is None:
        if len(_typical_seconds) >= MAX_TASK_NAMES_TRACKED:
            _typical_seconds.clear()  # a bound, not an LRU: relearning costs one flush each
        _typical_seconds[task_name] = seconds
    else:
        _typical_seconds[task_name] = typical + DURATION_SMOOTHING * (seconds - typical)


@dataclass
class Owed:
    """What this process still owes its databases: outcomes it could not write, claims it could
    not hand back. Kept across ``run_batch`` calls (a module-level one per process, ``OWED``)."""

    successes: dict[str, list[Outcome]] = field(default_factory=dict)  # alias -> outcomes
    hand_back: dict[tuple[str, str], set[int]] = field(default_factory=dict)  # (alias, worker)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def owe_successes(self, alias: str, outcomes: list[Outcome]) -> None:
        with self.lock:
            self.successes.setdefault(alias, []).extend(outcomes)

    def owe_hand_back(self, alias: str, worker_id: str, task_ids: list[int]) -> None:
        if not task_ids:
            return
        with self.lock:
            held = self.hand_back.setdefault((alias, worker_id), set())
            held |= set(task_ids)
        logger.info(
            "%d task(s) could not be handed back (the database is unavailable); they are "
            "released when it answers again, or claimable once their lease expires.",
            len(task_ids),
        )

    def count(self, alias: str | None = None) -> int:
        with self.lock:
            successes = sum(len(v) for a, v in self.successes.items() if alias in (None, a))
            held = sum(len(v) for (a, _), v in self.hand_back.items() if alias in (None, a))
        return successes + held

    def pending_hand_back(self, alias: str) -> dict[str, list[int]]:
        """worker_id -> ids to hand back on ``alias`` (a copy)."""
        with self.lock:
            return {w: sorted(ids) for (a, w), ids in self.hand_back.items() if a == alias}

    def forget(self) -> None:
        """Drop everything owed (tests; a process giving up on a database for good)."""
        with self.lock:
            self.successes.clear()
            self.hand_back.clear()


#: What this process owes, shared by its batches (``process_tasks`` and a warm Lambda container
#: call ``run_batch`` again and again in one process).
OWED = Owed()


class Completer:
    """Writes the outcomes of one batch (see the module's docstring).

    >>> completer = Completer(store, worker_id, group_size=50, max_delay=0.02)
    >>> completer.record(execute(task))     # buffered or written, signals after the write
    >>> completer.flush()                   # the waiting group, now
    """

    def __init__(
        self,
        store: TaskStore,
        worker_id: str,
        *,
        group_size: int,
        max_delay: float,
        owed: Owed = OWED,
    ) -> None:
        self.store = store
        self.worker_id = worker_id
        self.size = group_size
        self.max_delay = max_delay
        self.owed = owed
        self.pending: list[Outcome] = []
        self.oldest = 0.0  # time.monotonic() when the oldest pending success was added

    # -- recording -----------------------------------------------------------------------------

    def record(self, outcome: Outcome) -> None:
        """Write ``outcome`` (now, or with the group); raises the store's error on an outage,
        after keeping what could not be written as owed."""
        task = outcome.task
        if outcome.kind == SUCCEEDED and self._groupable(task):
            if not self.pending:
                self.oldest = time.monotonic()
            self.pending.append(outcome)
            if len(self.pending) >= self.size:
                self.flush()
            return
        try:
            self.flush()  # outcomes reach the table in the order they happened
            if outcome.kind == SUCCEEDED:
                self._write_success_alone(outcome)
            else:
                self._write_error(outcome)
        except (OperationalError, InterfaceError) as exc:
            if outages.is_outage(exc):
                if outcome.kind == SUCCEEDED:
                    self.owed.owe_successes(self.store.alias, [outcome])
                else:
                    # Often what made the task fail: hand it back to run again, this attempt
                    # not counted, instead of leaving it running until its lease ends.
                    # Claimed by this batch and not yet written: locked_by is its worker's id.
                    self.owed.owe_hand_back(
                        self.store.alias,
                        task.locked_by,  # type: ignore[arg-type]
                        [task.id],
                    )
            raise

    def _groupable(self, task: Task) -> bool:
        return self.size > 1 and not task.repeat and not task.unique_key

    def group_due_in(self) -> float | None:
        """Seconds until the waiting group is old enough to be written; None when empty."""
        if not self.pending:
            return None
        return max(0.0, self.oldest + self.max_delay - time.monotonic())

    def flush_if_old(self) -> None:
        if self.pending and time.monotonic() - self.oldest >= self.max_delay:
            self.flush()

    def before_task(self, task: Task) -> None:
        """Tasks run one at a time: flush when the group is old, or when ``task`` is not known to
        be quick (a slow task would hold the group unwritten while it runs, and a crash
        meanwhile would run the group again)."""
        if self.pending and (
            time.monotonic() - self.oldest >= self.max_delay
            or _typical_seconds.get(task.task_name, self.max_delay) >= self.max_delay
        ):
            self.flush()

    def flush(self) -> int:
        """Write the waiting group; return how many rows were written. On a database error the
        group is owed and the error raised."""
        if not self.pending:
            return 0
        group, self.pending = self.pending, []
        try:
            written = self._write_group(group)
        except DatabaseError:
            self.owed.owe_successes(self.store.alias, group)
            raise
        return written

    # -- hand-back of unstarted claims ----------------------------------------------------------

    def release(self, task_ids: list[int]) -> int:
        """Hand back claimed tasks that never started; owed when the database is away."""
        try:
            return self.store.release(task_ids, self.worker_id)
        except (OperationalError, InterfaceError) as exc:
            if outages.is_outage(exc):
                self.owed.owe_hand_back(self.store.alias, self.worker_id, task_ids)
            raise

    # -- settling what an earlier batch owed ----------------------------------------------------

    def settle_owed(self) -> int:
        """Hand back and write what earlier batches of this process owe this database; return how
        many tasks were handed back. Raises the store's error if the database is still away (what
        was not settled stays owed)."""
        alias = self.store.alias
        handed_back = 0
        for worker_id, ids in self.owed.pending_hand_back(alias).items():
            handed_back += self.store.release(ids, worker_id)
            # Guarded by the lease holder: rows rescued or finished meanwhile are not touched.
            with self.owed.lock:
                self.owed.hand_back.pop((alias, worker_id), None)
        if handed_back:
            logger.info("Released %d task(s) claimed before the database was lost.", handed_back)
        with self.owed.lock:
            owed = list(self.owed.successes.get(alias, ()))
        if owed:
            groupable = [o for o in owed if self._groupable(o.task)]
            written = self._write_group(groupable) if groupable else 0
            for outcome in owed:
                if not self._groupable(outcome.task):
                    self._write_success_alone(outcome)
                    written += bool(outcome.recorded)
            with self.owed.lock:
                del self.owed.successes[alias][: len(owed)]
            logger.info(
                "Wrote %d of %d success(es) a batch could not write while the database was away "
                "(the rest lost their lease meanwhile).",
                written,
                len(owed),
            )
        return handed_back

    # -- the writes -----------------------------------------------------------------------------

    def _write_group(self, group: list[Outcome]) -> int:
        rows = [(o.task.id, o.task.locked_by, o.result, o.started_at, o.finished_at) for o in group]
        began = timed(signals.outcomes_written)
        written = self.store.mark_succeeded_many(rows)
        if began is not None:
            send_statement_signal(
                signals.outcomes_written,
                self.worker_id,
                began,
                count=len(group),
                written=len(written),
            )
        # .receivers first: has_listeners() resolves the live receivers even when there are none.
        send = bool(signals.task_succeeded.receivers) and signals.task_succeeded.has_listeners(Task)
        for outcome in group:
            task = outcome.task
            outcome.recorded = task.id in written
            if not outcome.recorded:
                self.store.log_lost_lease(task)
                continue
            _show_success(outcome)
            if send:
                _send(signals.task_succeeded, task, result=outcome.value)
        return len(written)

    def _write_success_alone(self, outcome: Outcome) -> None:
        task = outcome.task
        with repeating.outcome_transaction(task, self.store.alias):
            recorded = self.store.mark_succeeded(
                task, outcome.result, outcome.started_at, outcome.finished_at
            )
            if recorded:
                repeating.enqueue_next(task, self.store.alias)
        outcome.recorded = recorded
        if recorded:
            _show_success(outcome)
            _send(signals.task_succeeded, task, result=outcome.value)
        task_logger.debug("Task %s #%s succeeded.", task.task_name, task.id)

    def _write_error(self, outcome: Outcome) -> None:
        task, error, text = outcome.task, outcome.error, outcome.error_text
        attempts = task.attempts + 1
        now = clock.now(self.store.alias)  # run_at is compared with the database's clock
        if outcome.kind == CANCELLED:
            recorded = self.store.mark_cancelled(task, text, outcome.started_at, now)
            outcome.recorded = recorded
            if recorded:
                task.status, task.attempts, task.last_error = Task.CANCELLED, attempts, text
                task.finished_at, task.locked_by, task.locked_until = now, None, None
            task_logger.warning("Task %s #%s stopped on a cancel request.", task.task_name, task.id)
            return
        if outcome.kind == RETRIED:
            assert outcome.retry_delay is not None  # every RETRIED outcome has one (execution)
            run_at = now + outcome.retry_delay
            recorded = self.store.mark_retry(task, text, attempts, run_at, outcome.started_at)
            outcome.recorded = recorded
            if recorded:
                task.status, task.attempts, task.last_error, task.run_at = (
                    Task.QUEUED,
                    attempts,
                    text,
                    run_at,
                )
                task.locked_by = task.locked_until = None
                if run_at <= now:  # a retry due at once: wake idle workers for its queue
                    announce([task.queue], self.store.alias)
                _send(signals.task_retried, task, error=error)
            task_logger.warning(
                "Task %s #%s failed (attempt %d), retrying at %s: %s",
                task.task_name,
                task.id,
                attempts,
                run_at.isoformat(),
                summary(error),
            )
            return
        assert outcome.kind == FAILED
        with repeating.outcome_transaction(task, self.store.alias):
            recorded = self.store.mark_failed(task, text, attempts, outcome.started_at, now)
            if recorded:
                # A failed repetition does not end its chain.
                repeating.enqueue_next(task, self.store.alias)
        outcome.recorded = recorded
        if recorded:
            task.status, task.attempts, task.last_error, task.failed_at = (
                Task.FAILED,
                attempts,
                text,
                now,
            )
            task.finished_at, task.locked_by, task.locked_until = now, None, None
            _send(signals.task_failed, task, error=error)
        task_logger.error(
            "Task %s #%s failed for good after %d attempt(s): %s",
            task.task_name,
            task.id,
            attempts,
            summary(error),
        )


def _show_success(outcome: Outcome) -> None:
    """The in-memory task as the row now reads."""
    task = outcome.task
    task.status, task.result = Task.SUCCEEDED, outcome.result
    task.started_at, task.finished_at = outcome.started_at, outcome.finished_at
    task.locked_by = task.locked_until = task.unique_key = None


def _send(signal: Signal, task: Task, **kwargs: object) -> None:
    """Send ``signal`` for a written outcome; a receiver that raises is logged, and the batch goes
    on (the row already says what happened)."""
    if not signal.receivers:
        return
    for receiver, response in signal.send_robust(sender=Task, task=task, **kwargs):
        if isinstance(response, Exception):
            logger.error(
                "A receiver of a bgtask signal (%s) raised for task %s #%s: %s",
                getattr(receiver, "__qualname__", receiver),
                task.task_name,
                task.id,
                summary(response),
            )  # Django's send_robust logs the traceback (logger django.dispatch)


def timed(signal: Signal) -> datetime | None:
    """The wall time now if ``signal`` has receivers, else None: a statement's signal costs one
    list look-up when nobody listens."""
    return datetime.now(UTC) if signal.receivers else None


def send_statement_signal(
    signal: Signal, worker_id: str, started: datetime, **kwargs: object
) -> None:
    """Send ``tasks_claimed`` or ``outcomes_written`` for a statement that began at ``started``
    and just ended; a receiver that raises is logged, and the batch goes on."""
    finished = datetime.now(UTC)
    responses = signal.send_robust(
        sender=Task, worker_id=worker_id, started=started, finished=finished, **kwargs
    )
    for receiver, response in responses:
        if isinstance(response, Exception):
            logger.error(
                "A receiver of a bgtask signal (%s) raised: %s",
                getattr(receiver, "__qualname__", receiver),
                summary(response),
            )  # Django's send_robust logs the traceback (logger django.dispatch)
