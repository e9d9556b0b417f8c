"""The benchmark's tasks: a no-op, one that notes which row ran (for exactly-once checks), and
the I/O section's tasks that wait 50 ms, sync and ``async def`` (see ``benchmarks/iomarks.py``),
and a long task for the cancel measurement (``benchmarks/cancel_latency.py``)."""

import asyncio
import os
import time
from pathlib import Path

from benchmarks import iomarks
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


@background(name="bench.wait")
def wait(number: int) -> None:
    started = time.time()
    time.sleep(iomarks.WAIT_SECONDS)
    iomarks.stamp(number, started)


@background(name="bench.await")
async def await_(number: int) -> None:
    started = time.time()
    await asyncio.sleep(iomarks.WAIT_SECONDS)
    iomarks.stamp(number, started)


@background(name="bench.busy")
def busy(seconds: float) -> None:
    """Works for ``seconds`` in short steps (as a task that does Python work between its I/O
    does): a cancel lands at its next Python instruction."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(0.01)
