"""``timeout=``: stop a task that runs longer than it may, and record that it timed out.

In the main thread (``process_tasks``, Lambda, a plain ``run_batch`` call) a ``SIGALRM`` timer
raises ``TaskTimedOut`` inside the task, which also interrupts ``time.sleep`` and most blocking
I/O. In any other thread a helper thread raises it asynchronously in the worker thread, which takes
effect at the next Python instruction (not inside a blocking C call). ``TaskTimedOut`` derives
from ``BaseException`` so that a task's own ``except Exception`` cannot swallow it.

>>> @background(timeout=30)
... def crunch(n): ...
>>> crunch(10, timeout=5)   # or per call

A caller with a hard deadline (a Lambda invocation, which is killed at its function timeout)
passes it down: ``limit_before`` then gives each task the smaller of its own ``timeout`` and the
time left, raising ``DeadlineReached`` (retried, not failed) when the deadline is what cut it, and
says when a task's declared ``timeout`` cannot fit at all (it is then left for a later run).
"""

from __future__ import annotations

import ctypes
import math
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import Any


class TaskTimedOut(BaseException):
    """Raised inside a task that ran past its ``timeout``."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"Timed out: the task ran longer than its timeout of {seconds:g} s.")
        self.seconds = seconds


class DeadlineReached(TaskTimedOut):
    """Raised inside a task still running at its batch's hard deadline (a Lambda invocation about
    to be killed). Not the task's fault: it is retried, counting the attempt."""

    def __init__(self, seconds: float) -> None:
        BaseException.__init__(
            self,
            f"Stopped after {seconds:g} s at the invocation's deadline (the Lambda function's "
            "timeout less BGTASK_LAMBDA_SAFETY_MARGIN), before the task's own timeout; it will "
            "be retried by a later invocation.",
        )
        self.seconds = seconds


@dataclass(frozen=True, slots=True)
class Limit:
    """How long one task may run, and which exception stops it when that time is up."""

    seconds: float | None  # None: no limit
    error: type[TaskTimedOut] = TaskTimedOut


def limit_before(timeout: float | None, deadline: float | None, now: float) -> Limit | None:
    """The limit for a task with ``timeout`` started at ``now`` under a hard ``deadline``.

    Both times are ``time.monotonic()`` values. Returns None when the task's declared timeout does
    not fit in what is left (do not start it: a later run has the time), else the smaller of the
    two limits.

    >>> limit_before(30.0, deadline=now + 10, now=now)    # None: 30 s cannot fit in 10 s
    >>> limit_before(None, deadline=now + 10, now=now)    # Limit(10.0, DeadlineReached)
    """
    if deadline is None:
        return Limit(timeout)
    left = deadline - now
    if timeout is not None and timeout <= left:
        return Limit(timeout)
    if timeout is not None or left <= 0:
        return None
    return Limit(left, DeadlineReached)


def check_timeout(timeout: Any) -> float | None:
    """A positive finite number of seconds, or ``None`` (no limit)."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"timeout must be a number of seconds or None, got {timeout!r}.")
    if not math.isfinite(timeout) or timeout <= 0:
        raise ValueError(f"timeout must be a finite number of seconds above 0, got {timeout!r}.")
    return float(timeout)


def describe(error: TaskTimedOut) -> str:
    """The ``last_error`` of a timed-out task (in the ``module.Class: message`` shape)."""
    kind = DeadlineReached if isinstance(error, DeadlineReached) else TaskTimedOut
    return f"{kind.__module__}.{kind.__qualname__}: {error}"


@contextmanager
def time_limit(seconds: float | None, error: type[TaskTimedOut] = TaskTimedOut) -> Iterator[None]:
    """Raise ``error`` (``TaskTimedOut``) in the calling thread if the block runs longer than
    ``seconds``."""
    if not seconds:
        yield
        return
    if threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer"):
        with _alarm(seconds, error):
            yield
    else:
        with _async_raise(seconds, error):
            yield


@contextmanager
def _alarm(seconds: float, error: type[TaskTimedOut]) -> Iterator[None]:
    armed = True

    def on_alarm(signum: int, frame: FrameType | None) -> None:
        if armed:
            raise error(seconds)

    previous_handler = signal.signal(signal.SIGALRM, on_alarm)
    previous_delay, _ = signal.setitimer(signal.ITIMER_REAL, seconds)
    started = time.monotonic()
    try:
        yield
    finally:
        armed = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous_handler)
        if previous_delay:
            # Someone else's alarm was pending: put back what is left of it.
            left = previous_delay - (time.monotonic() - started)
            signal.setitimer(signal.ITIMER_REAL, max(left, 0.001))


_set_async_exc = ctypes.pythonapi.PyThreadState_SetAsyncExc
_set_async_exc.argtypes = (ctypes.c_ulong, ctypes.py_object)
# The same function with a NULL exception clears one that is pending but not yet raised.
_clear_async_exc = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p)(
    ("PyThreadState_SetAsyncExc", ctypes.pythonapi)
)


def raise_in_thread(thread_id: int, error: type[BaseException]) -> None:
    """Raise ``error`` (a class: no arguments reach it) in thread ``thread_id`` at its next
    Python instruction (the runner stops a task with it, as a time limit does here)."""
    _set_async_exc(thread_id, ctypes.py_object(error))


def clear_pending_in_thread(thread_id: int) -> None:
    """Drop an exception ``raise_in_thread`` sent to ``thread_id`` and not raised yet."""
    _clear_async_exc(thread_id, None)


def _argumentless(error: type[TaskTimedOut], seconds: float) -> type[TaskTimedOut]:
    """A subclass of ``error`` that needs no arguments: the helper thread raises an exception
    *class*, and no arguments reach it."""

    def __init__(self: TaskTimedOut, *args: Any) -> None:
        error.__init__(self, seconds)

    subclass = type(error.__name__, (error,), {"__init__": __init__})
    subclass.__module__ = error.__module__
    return subclass


@contextmanager
def _async_raise(seconds: float, error: type[TaskTimedOut]) -> Iterator[None]:
    target = threading.get_ident()
    lock = threading.Lock()
    state = {"armed": True, "fired": False}
    error_class = _argumentless(error, seconds)

    def fire() -> None:
        with lock:
            if state["armed"]:
                state["fired"] = True
                raise_in_thread(target, error_class)

    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        with lock:
            state["armed"] = False
            if state["fired"]:
                clear_pending_in_thread(target)
        timer.cancel()
