"""Running one claimed task and deciding what happened: an ``Outcome``, with no database write.

``execute`` (sync functions) and ``aexecute`` (``async def`` functions, on an event loop) call the
task and return an ``Outcome``: succeeded with its value, to be retried, or failed for good, with
the error text to store. Writing it is the completer's job (``bgtask.worker.completer``), so the
runner can call these from any thread, and an outcome is written the same way whoever ran it.

Whatever goes wrong with one row becomes that row's outcome and never escapes: an unregistered
name (retried: a newer deploy may know it), arguments that cannot be decoded however deep or
broken (failed), a ``task_started`` receiver that raises (the task's error), a result that cannot
be encoded (a success whose result is not stored, with a warning: the task ran).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import traceback
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from bgtask import conf, current, registry, signals, timeouts
from bgtask.exceptions import TaskAbandoned, TaskCancelled, UnknownTask
from bgtask.models import Task
from bgtask.redaction import redact
from bgtask.serialization import UndecodableArguments, decode_arguments, encode_result

logger = logging.getLogger("bgtask.execution")

SUCCEEDED, RETRIED, FAILED, CANCELLED = "succeeded", "retried", "failed", "cancelled"
# timezone.now() reads settings.USE_TZ on every call; bgtask requires USE_TZ (check bgtask.E001),
# so on the hot path the answer is always an aware UTC now.
_now = partial(datetime.now, UTC)

# What a task may raise without taking the batch down. SystemExit and KeyboardInterrupt raised *by
# a task* are the task's failure; process_tasks turns SIGINT/SIGTERM into a flag, so a real signal
# never arrives as one of these while a task runs.
TASK_ERRORS = (Exception, SystemExit, KeyboardInterrupt)
# last_error keeps at most this many characters (the end of the traceback).
MAX_ERROR_CHARS = 65536


@dataclass(slots=True)
class Outcome:
    """What running one task came to, before anything is written.

    ``kind`` is ``SUCCEEDED``, ``RETRIED``, ``FAILED`` or ``CANCELLED`` (stopped on a cancel
    request: never retried). A success carries the function's
    ``value`` and its stored JSON ``result``; a retry or failure the ``error`` and the redacted
    ``error_text`` to store, and a retry its ``retry_delay``. ``recorded`` is set by the completer:
    False when the lease was lost meanwhile and the outcome was discarded.
    """

    task: Task
    kind: str
    started_at: datetime
    finished_at: datetime
    value: Any = None
    result: str | None = None
    error: BaseException | None = None
    error_text: str = ""
    retry_delay: timedelta | None = None
    recorded: bool | None = None


@dataclass(slots=True)
class _Ready:
    """A task whose function was found and whose arguments decoded: ready to be called."""

    function: Any
    args: list[Any]
    kwargs: dict[str, Any]
    retryable: bool


def is_async(task: Task) -> bool:
    """True when ``task`` names an ``async def`` function (run it with ``aexecute``)."""
    try:
        function = registry.get(task.task_name)
    except UnknownTask:
        return False
    return bool(getattr(function, "is_async", False))


def execute(task: Task, limit: timeouts.Limit | None = None) -> Outcome:
    """Run ``task`` (already claimed by this worker) in this thread; return its ``Outcome``.

    ``limit``: how long it may run (default: its own ``timeout``); see ``timeouts.limit_before``.
    An ``async def`` function (or one that returns an awaitable) is run to completion on an event
    loop of this thread, so it never counts as done without its body having run.
    """
    started_at = _now()
    ready = _prepare(task, started_at)
    if isinstance(ready, Outcome):
        return ready
    limit = limit or timeouts.Limit(task.timeout)
    token = current.enter(task)
    try:
        if limit.seconds:
            with timeouts.time_limit(limit.seconds, limit.error):
                value = _call(ready)
        else:  # no timer to arm: no context manager either (a share of a short task's cost)
            value = _call(ready)
    except BaseException as exc:
        return _error_outcome(task, exc, started_at, ready.retryable)
    finally:
        current.leave(token, task)
    return _success(task, value, started_at)


async def aexecute(task: Task, limit: timeouts.Limit | None = None) -> Outcome:
    """Await ``task``'s ``async def`` function on the running loop; return its ``Outcome``.

    Its time limit cancels it (``asyncio.timeout``) and is recorded as ``TaskTimedOut`` (or
    ``DeadlineReached``), as for a sync task."""
    started_at = _now()
    ready = _prepare(task, started_at)
    if isinstance(ready, Outcome):
        return ready
    limit = limit or timeouts.Limit(task.timeout)
    token = current.enter(task)
    try:
        try:
            async with asyncio.timeout(limit.seconds):
                value = await _acall(ready)
        except TimeoutError as exc:
            if limit.seconds is None:
                raise
            raise limit.error(limit.seconds) from exc
    except asyncio.CancelledError as exc:
        # Cancelled by the runner, which says why: a cancel request, or a lost lease.
        stop = stop_reason(exc) or TaskAbandoned("The task was cancelled: its lease was lost.")
        return _error_outcome(task, stop, started_at, True)
    except BaseException as exc:
        return _error_outcome(task, exc, started_at, ready.retryable)
    finally:
        current.leave(token, task)
    return _success(task, value, started_at)


def stop_reason(cancelled: asyncio.CancelledError) -> BaseException | None:
    """The ``TaskCancelled`` or ``TaskAbandoned`` the runner cancelled a coroutine with."""
    for arg in cancelled.args:
        if isinstance(arg, (TaskCancelled, TaskAbandoned)):
            return arg
    return None


def _prepare(task: Task, started_at: datetime) -> _Ready | Outcome:
    """Find the function and decode the arguments; an ``Outcome`` when the row cannot run."""
    try:
        function = registry.get(task.task_name)
    except UnknownTask as exc:
        # A newer deploy may know this name: retry with backoff rather than fail at once.
        return _error_outcome(task, exc, started_at, True, text=str(exc))
    try:
        args, kwargs = decode_arguments(task.arguments)
    except UndecodableArguments as exc:
        return _error_outcome(task, exc, started_at, False, text=f"{exc} ({_stored(task)})")
    except Exception as exc:  # RecursionError, MemoryError-free oddities: the row is corrupt
        text = f"Stored arguments cannot be decoded: {type(exc).__name__} ({_stored(task)})"
        return _error_outcome(task, UndecodableArguments(text), started_at, False, text=text)
    if signals.task_started.receivers:  # Signal.send costs a call and a dict even with none
        try:
            signals.task_started.send(sender=Task, task=task)
        except Exception as exc:
            # A receiver's error is this task's error (recorded on its row), not the batch's.
            return _error_outcome(task, exc, started_at, True)
    # A task function may opt out of retries (the django.tasks backend: one error is a failure).
    return _Ready(function, args, kwargs, getattr(function, "retry_on_error", True))


def _stored(task: Task) -> str:
    arguments = task.arguments if isinstance(task.arguments, str) else repr(task.arguments)
    return f"stored: {arguments[:200]!r}"


# Values no awaitable can be: most results, told apart with one C-level check instead of
# inspect.isawaitable's three (a share of a short task's cost).
_NOT_AWAITABLE = (type(None), str, int, float, bool, dict, list, tuple)


def _call(ready: _Ready) -> Any:
    value = ready.function.run(ready.args, ready.kwargs)
    if not isinstance(value, _NOT_AWAITABLE) and inspect.isawaitable(value):
        # An async function registered without being seen as one (a wrapper, a callable object):
        # run it here rather than record a coroutine that never ran as a success.
        value = run_to_completion(value)
    return value


async def _acall(ready: _Ready) -> Any:
    arun = getattr(ready.function, "arun", None)
    value = arun(ready.args, ready.kwargs) if arun else ready.function.run(ready.args, ready.kwargs)
    if inspect.isawaitable(value):
        value = await value
    return value


def run_to_completion(awaitable: Any) -> Any:
    """Await ``awaitable`` on a new event loop of this thread and return its result. The loop is
    not made the thread's current one (``asyncio.run`` would, and would leave the thread without
    one afterwards, which breaks ``asyncio.get_event_loop()`` callers such as Mangum)."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(_await(awaitable))
    finally:
        close_loop(loop)


def close_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Close an event loop bgtask made, after its async generators."""
    try:
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        loop.close()


async def _await(awaitable: Any) -> Any:
    return await awaitable


def _success(task: Task, value: Any, started_at: datetime) -> Outcome:
    finished_at = _now()
    try:
        result = encode_result(value)
    except Exception as exc:  # nested past the recursion limit, and the like: the task did run
        logger.warning(
            "Task %s #%s returned a value that cannot be stored as JSON (%s); its result is not "
            "stored.",
            task.task_name,
            task.id,
            type(exc).__name__,
        )
        result = None
    else:
        if result is None and value is not None:
            logger.warning(
                "Task %s #%s returned a %s, which is not JSON; its result is not stored.",
                task.task_name,
                task.id,
                type(value).__name__,
            )
        elif result is not None and (size := len(result.encode())) > conf.max_result_bytes():
            # A huge value would fail the write (MariaDB's max_allowed_packet) and the batch.
            logger.warning(
                "Task %s #%s returned %d bytes of JSON, over BGTASK_MAX_RESULT_BYTES; its result "
                "is not stored.",
                task.task_name,
                task.id,
                size,
            )
            result = None
    return Outcome(task, SUCCEEDED, started_at, finished_at, value=value, result=result)


def _error_outcome(
    task: Task,
    error: BaseException,
    started_at: datetime,
    retryable: bool,
    *,
    text: str | None = None,
) -> Outcome:
    """The outcome of a task that raised (or could not run): retried or failed by its policy."""
    if isinstance(error, timeouts.DeadlineReached):
        # Cut by the invocation's end, not by its own timeout: a later invocation may finish it.
        text, retryable = timeouts.describe(error), True
    elif isinstance(error, timeouts.TaskTimedOut):
        # A runaway is likely to run away again: fail it now rather than hold a worker 25 times.
        text, retryable = timeouts.describe(error), False
    elif isinstance(error, TaskAbandoned):
        text, retryable = text or _exception_line(error), True
    elif isinstance(error, TaskCancelled):
        text = redact(text or _exception_line(error))
        return Outcome(task, CANCELLED, started_at, _now(), error=error, error_text=text)
    elif text is None:
        text = _traceback_text(error)
    text = redact(text)  # error text is stored and logged: no secret may reach either
    if len(text) > MAX_ERROR_CHARS:
        # The end of a traceback says what failed; megabytes would fail the write itself.
        text = f"[{len(text) - MAX_ERROR_CHARS} characters cut]\n" + text[-MAX_ERROR_CHARS:]
    attempts = task.attempts + 1
    # The task's own policy (bgtask.retry_policy): max_attempts, retry_on, backoff.
    policy = registry.retry_policy_for(task.task_name)
    if retryable and policy.should_retry(error, attempts, task.max_attempts):
        kind, delay = RETRIED, policy.delay(attempts)
    else:
        kind, delay = FAILED, None
    return Outcome(task, kind, started_at, _now(), error=error, error_text=text, retry_delay=delay)


def outcome_of_error(task: Task, error: BaseException) -> Outcome:
    """The outcome of ``task`` stopped by ``error`` outside ``execute`` (the runner's own
    bookkeeping): retried or failed by its policy, like any error."""
    now = _now()
    return _error_outcome(task, error, now, True)


def _traceback_text(error: BaseException) -> str:
    try:
        return "".join(traceback.format_exception(error))
    except Exception:  # a traceback too deep or too odd to format still names the exception
        return _exception_line(error)


def _exception_line(error: BaseException) -> str:
    kind = type(error)
    return f"{kind.__module__}.{kind.__qualname__}: {summary(error)}"


def summary(error: BaseException | None) -> str:
    """``Type: message`` of ``error`` on one line, redacted and short (for log lines)."""
    if error is None:
        return ""
    try:
        text = f"{type(error).__name__}: {error}"
    except Exception:  # an exception whose __str__ raises must not take the batch down
        text = f"{type(error).__name__} (its message cannot be shown)"
    return redact(text)[:500]
