"""At most one go per interval, per process: the wake-up of the worker on enqueue and the re-read
of a database secret after a refused login share this."""

from __future__ import annotations

import threading
import time


class Throttle:
    """``take(interval)`` is True at most once per ``interval`` seconds (thread-safe).

    >>> throttle = Throttle()
    >>> throttle.take(10.0), throttle.take(10.0)
    (True, False)
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: float | None = None  # time.monotonic() of the last go

    def take(self, interval: float) -> bool:
        now = time.monotonic()
        with self._lock:
            if self._last is not None and now - self._last < interval:
                return False
            self._last = now
            return True

    def reset(self) -> None:
        """Forget the last go, so the next ``take`` is allowed (tests)."""
        with self._lock:
            self._last = None
