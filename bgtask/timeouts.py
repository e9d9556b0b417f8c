"""``timeout=``: stop a task that runs longer than it may, and record that it timed out.

In the main thread (``process_tasks``, Lambda, a plain ``run_batch`` call) a ``SIGALRM`` timer
raises ``TaskTimedOut`` inside the task, which also interrupts ``time.sleep`` and most blocking
I/O. In any other thread a helper thread raises it asynchronously in the worker thread, which takes
effect at the next Python instruction (not inside a blocking C call). ``TaskTimedOut`` derives
from ``BaseException`` so that a task's own ``except Exception`` cannot swallow it.

>>> @background(timeout=30)
... def crunch(n): ...
>>> crunch(10, timeout=5)   # or per call
"""

from __future__ import annotations

import ctypes
import math
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class TaskTimedOut(BaseException):
    """Raised inside a task that ran past its ``timeout``."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"Timed out: the task ran longer than its timeout of {seconds:g} s.")
        self.seconds = seconds


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
    return f"{TaskTimedOut.__module__}.{TaskTimedOut.__qualname__}: {error}"


@contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Raise ``TaskTimedOut`` in the calling thread if the block runs longer than ``seconds``."""
    if not seconds:
        yield
        return
    if threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer"):
        with _alarm(seconds):
            yield
    else:
        with _async_raise(seconds):
            yield


@contextmanager
def _alarm(seconds: float) -> Iterator[None]:
    armed = True

    def on_alarm(signum, frame):
        if armed:
            raise TaskTimedOut(seconds)

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


class _Timeout(TaskTimedOut):
    """What the helper thread raises: an exception *class* (no arguments reach it)."""

    seconds = 0.0

    def __init__(self, *args: Any) -> None:
        BaseException.__init__(
            self, f"Timed out: the task ran longer than its timeout of {self.seconds:g} s."
        )


@contextmanager
def _async_raise(seconds: float) -> Iterator[None]:
    target = threading.get_ident()
    lock = threading.Lock()
    state = {"armed": True, "fired": False}
    error_class = type("TaskTimedOut", (_Timeout,), {"seconds": seconds})
    error_class.__module__ = TaskTimedOut.__module__

    def fire() -> None:
        with lock:
            if state["armed"]:
                state["fired"] = True
                _set_async_exc(target, ctypes.py_object(error_class))

    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        with lock:
            state["armed"] = False
            if state["fired"]:
                _clear_async_exc(target, None)
        timer.cancel()
