"""Running one claimed task and recording what happened."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial

from django.db import InterfaceError, OperationalError

from bgtask import clock, conf, registry, signals, timeouts
from bgtask.exceptions import UnknownTask
from bgtask.features import repeating
from bgtask.models import Task
from bgtask.redaction import redact
from bgtask.serialization import UndecodableArguments, decode_arguments, encode_result
from bgtask.store import TaskStore
from bgtask.worker import outages
from bgtask.worker.completer import Success, SuccessBuffer

logger = logging.getLogger("bgtask.execution")

SUCCEEDED, RETRIED, FAILED = "succeeded", "retried", "failed"
# timezone.now() reads settings.USE_TZ on every call; bgtask requires USE_TZ (check bgtask.E001),
# so on the hot path the answer is always an aware UTC now.
_now = partial(datetime.now, UTC)

# What a task may raise without taking the batch down. SystemExit and KeyboardInterrupt raised *by
# a task* are the task's failure; process_tasks turns SIGINT/SIGTERM into a flag, so a real signal
# never arrives as one of these while a task runs.
TASK_ERRORS = (Exception, SystemExit, KeyboardInterrupt)
# last_error keeps at most this many characters (the end of the traceback).
MAX_ERROR_CHARS = 65536


@dataclass(frozen=True, slots=True)
class Outcome:
    kind: str  # SUCCEEDED, RETRIED or FAILED
    recorded: bool  # False when the lease was lost and the write was discarded


def execute(
    task: Task,
    store: TaskStore,
    limit: timeouts.Limit | None = None,
    successes: SuccessBuffer | None = None,
) -> Outcome:
    """Run ``task`` (already claimed by this worker) and record its outcome.

    ``limit``: how long it may run (default: its own ``timeout``); see ``timeouts.limit_before``.
    With ``successes``, a success that may wait is added to that group instead of being written
    now (``bgtask.outcomes``); a retry or failure writes the waiting group first.
    """
    started_at = _now()
    try:
        function = registry.get(task.task_name)
    except UnknownTask as exc:
        # A newer deploy may know this name: retry with backoff rather than fail at once.
        return _record_error(task, store, successes, exc, str(exc), started_at, retryable=True)
    try:
        args, kwargs = decode_arguments(task.arguments)
    except UndecodableArguments as exc:
        # Retrying cannot fix a corrupt row.
        return _record_error(
            task,
            store,
            successes,
            exc,
            f"{exc} (stored: {task.arguments[:200]!r})",
            started_at,
            retryable=False,
        )

    if signals.task_started.receivers:  # Signal.send costs a call and a dict even with none
        signals.task_started.send(sender=Task, task=task)
    # A task function may opt out of retries (the django.tasks backend: one error is a failure).
    retryable = getattr(function, "retry_on_error", True)
    try:
        limit = limit or timeouts.Limit(task.timeout)
        if limit.seconds:
            with timeouts.time_limit(limit.seconds, limit.error):
                value = function.run(args, kwargs)
        else:  # no timer to arm: no context manager either (a share of a short task's cost)
            value = function.run(args, kwargs)
    except timeouts.DeadlineReached as exc:
        # Cut by the invocation's end, not by its own timeout: a later invocation may finish it.
        return _record_error(
            task, store, successes, exc, timeouts.describe(exc), started_at, retryable=True
        )
    except timeouts.TaskTimedOut as exc:
        # A runaway is likely to run away again: fail it now rather than hold a worker 25 times.
        return _record_error(
            task, store, successes, exc, timeouts.describe(exc), started_at, retryable=False
        )
    except TASK_ERRORS as exc:
        text = traceback.format_exc()
        return _record_error(task, store, successes, exc, text, started_at, retryable=retryable)

    finished_at = _now()
    result = encode_result(value)
    if result is None and value is not None:
        logger.warning(
            "Task %s #%s returned a %s, which is not JSON; its result is not stored.",
            task.task_name,
            task.id,
            type(value).__name__,
        )
    elif result is not None and (size := len(result.encode())) > conf.max_result_bytes():
        # A huge value would fail the write (MariaDB's max_allowed_packet) and the batch with it.
        logger.warning(
            "Task %s #%s returned %d bytes of JSON, over BGTASK_MAX_RESULT_BYTES; its result is "
            "not stored.",
            task.task_name,
            task.id,
            size,
        )
        result = None
    if successes is not None and successes.accepts(task):
        successes.add(Success(task, value, result, started_at, finished_at))
        return Outcome(SUCCEEDED, True)  # counted now; a lease lost meanwhile is logged at write
    if successes is not None:
        successes.flush()
    with repeating.outcome_transaction(task, store.alias):
        recorded = store.mark_succeeded(task, result, started_at, finished_at)
        if recorded:
            repeating.enqueue_next(task, store.alias)
    if recorded:
        task.status, task.result, task.finished_at = Task.SUCCEEDED, result, finished_at
        signals.task_succeeded.send(sender=Task, task=task, result=value)
    logger.debug("Task %s #%s succeeded.", task.task_name, task.id)
    return Outcome(SUCCEEDED, recorded)


@contextmanager
def _released_if_the_database_is_lost(task: Task, store: TaskStore) -> Iterator[None]:
    """If the database goes away while a task's outcome is written (often what made the task
    fail), hand the row back once the database answers, to run again with this attempt not
    counted, instead of leaving it 'running' until its lease ends (``bgtask.outages``)."""
    try:
        yield
    except (OperationalError, InterfaceError) as exc:
        if outages.is_outage(exc):
            outages.remember_unreleased(store.alias, task.locked_by, [task.id])
        raise


def _record_error(
    task: Task,
    store: TaskStore,
    successes: SuccessBuffer | None,
    error: BaseException,
    text: str,
    started_at,
    *,
    retryable: bool,
) -> Outcome:
    with _released_if_the_database_is_lost(task, store):
        if successes is not None:
            successes.flush()  # outcomes reach the table in the order they happened
        text = redact(text)  # error text is stored and logged: no secret may reach either
        if len(text) > MAX_ERROR_CHARS:
            # The end of a traceback says what failed; megabytes would fail the write itself.
            text = f"[{len(text) - MAX_ERROR_CHARS} characters cut]\n" + text[-MAX_ERROR_CHARS:]
        attempts = task.attempts + 1
        now = clock.now(store.alias)  # run_at is compared with the database's clock
        # The task's own policy (bgtask.retry_policy): max_attempts, retry_on, backoff.
        policy = registry.retry_policy_for(task.task_name)
        if retryable and policy.should_retry(error, attempts, task.max_attempts):
            run_at = now + policy.delay(attempts)
            recorded = store.mark_retry(task, text, attempts, run_at, started_at)
            if recorded:
                task.status, task.attempts, task.last_error, task.run_at = (
                    Task.QUEUED,
                    attempts,
                    text,
                    run_at,
                )
                signals.task_retried.send(sender=Task, task=task, error=error)
            logger.warning(
                "Task %s #%s failed (attempt %d), retrying at %s: %s",
                task.task_name,
                task.id,
                attempts,
                run_at.isoformat(),
                _summary(error),
            )
            return Outcome(RETRIED, recorded)
        with repeating.outcome_transaction(task, store.alias):
            recorded = store.mark_failed(task, text, attempts, started_at, now)
            if recorded:
                # A failed repetition does not end its chain.
                repeating.enqueue_next(task, store.alias)
        if recorded:
            task.status, task.attempts, task.last_error, task.failed_at = (
                Task.FAILED,
                attempts,
                text,
                now,
            )
            signals.task_failed.send(sender=Task, task=task, error=error)
        logger.error(
            "Task %s #%s failed for good after %d attempt(s): %s",
            task.task_name,
            task.id,
            attempts,
            _summary(error),
        )
        return Outcome(FAILED, recorded)


def _summary(error: BaseException) -> str:
    try:
        text = f"{type(error).__name__}: {error}"
    except Exception:  # an exception whose __str__ raises must not take the batch down
        text = f"{type(error).__name__} (its message cannot be shown)"
    return redact(text)[:500]
