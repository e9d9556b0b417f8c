"""The benchmark's tasks: a no-op, and one that notes which row ran (for exactly-once checks)."""

import os
import time
from pathlib import Path

from bgtask import background

#: Arguments of every ``record`` call this process ran, in order.
RAN: list[int] = []


@background(name="bench.noop")
def noop(number: int) -> None:
    pass


@background(name="bench.record")
def record(number: int) -> None:
    RAN.append(number)


@background(name="bench.stamp")
def stamp(number: int) -> None:
    """The enqueue-to-start workload's task: its first line notes the wall-clock time."""
    now = repr(time.time())
    marks = os.environ.get("BENCH_MARK_DIR")
    if marks:
        partial = Path(marks, f"{number}.partial")
        partial.write_text(now)
        partial.rename(partial.with_suffix(""))  # whole, or not there: the parent polls for it
