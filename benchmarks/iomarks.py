"""The I/O section's stopwatch, shared by bgtask's bench app and the peers (no dependencies).

Every I/O-bound task, in every implementation, calls :func:`stamp` when its body ends: one line
``number start end`` (wall-clock seconds) appended to ``BENCH_IO_MARKS`` with a single
``write`` on an ``O_APPEND`` file, which Linux keeps whole however many threads or processes
write at once. The parent reads the file with :func:`read`: the first start, the last end, how
many ran and which ran twice, for every implementation the same way.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

#: Seconds each I/O-bound task waits (``time.sleep`` or ``asyncio.sleep``).
WAIT_SECONDS = 0.05

_fd: int | None = None


def stamp(number: int, started: float) -> None:
    """Note that task ``number``, started at ``started`` (``time.time()``), has ended now."""
    import time

    global _fd
    path = os.environ.get("BENCH_IO_MARKS")
    if not path:
        return
    if _fd is None:
        _fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.write(_fd, f"{number} {started!r} {time.time()!r}\n".encode())


@dataclass
class Marks:
    lines: int  # task ends written
    distinct: int  # distinct task numbers among them
    first_start: float | None
    last_end: float | None
    busy_seconds: float  # the sum of every task's own span (start to end)

    def mean_in_flight(self, until: float) -> float:
        """Tasks in flight on average from the first start to ``until``: slots the worker kept
        busy (at most its concurrency; the gap to it is time lost between tasks)."""
        return self.busy_seconds / (until - self.first_start)

    @property
    def duplicates(self) -> int:
        return self.lines - self.distinct


def count(path: str) -> int:
    """Task ends written so far (cheap enough to poll)."""
    try:
        with open(path, "rb") as marks:
            return marks.read().count(b"\n")
    except FileNotFoundError:
        return 0


def read(path: str) -> Marks:
    numbers, starts, ends = set(), [], []
    lines = 0
    with open(path) as marks:
        for line in marks:
            number, started, ended = line.split()
            lines += 1
            numbers.add(int(number))
            starts.append(float(started))
            ends.append(float(ended))
    return Marks(
        lines,
        len(numbers),
        min(starts, default=None),
        max(ends, default=None),
        sum(e - s for s, e in zip(starts, ends, strict=True)),
    )
