"""The stop flag of ``process_tasks``, which pool threads can read before the main thread has
run the signal handler that sets it.

Python runs a signal handler in the main thread only, at its next bytecode. With N tasks at
once a pool thread whose task ended starts the next claimed task itself
(``bgtask.worker.runner``); on a busy machine it could do so after SIGTERM arrived but before the
main thread ran the handler, and a task would start after the stop. ``signal.set_wakeup_fd``
makes the C-level handler write each signal's number to a pipe at once, in whichever thread it
lands: ``signalled()`` reads that pipe, so a pool thread sees the stop as soon as the signal
arrives.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterable


class SignalStop(threading.Event):
    """An ``Event`` that ``process_tasks``'s SIGTERM/SIGINT handler sets, plus ``signalled()``:
    true once one of ``signals`` has arrived, handled yet or not."""

    def __init__(self, signals: Iterable[int]) -> None:
        super().__init__()
        self._numbers = {int(s) for s in signals}
        self._arrived = False
        self._lock = threading.Lock()
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)
        self._previous: int | None = None

    def install(self) -> None:
        """Point the process's signal wakeup fd at this flag's pipe (main thread only)."""
        self._previous = signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)

    def uninstall(self) -> None:
        """Give the wakeup fd back (main thread only) and close the pipe."""
        if self._previous is not None:
            signal.set_wakeup_fd(self._previous)
            self._previous = None
        for fd in (self._read, self._write):
            with contextlib.suppress(OSError):
                os.close(fd)

    def signalled(self) -> bool:
        """True once a stop signal arrived (or the flag is set). Other signals' numbers in the
        pipe (SIGALRM of a task's time limit) are read and ignored."""
        if self._arrived or self.is_set():
            return True
        with self._lock:
            try:
                data = os.read(self._read, 4096)
            except (BlockingIOError, OSError):
                return self._arrived
            if any(number in self._numbers for number in data):
                self._arrived = True
        return self._arrived
