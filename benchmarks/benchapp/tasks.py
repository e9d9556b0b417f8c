"""The benchmark's tasks: a no-op, one that notes which row ran (for exactly-once checks), and
the I/O section's tasks that wait 50 ms, sync and ``async def`` (see ``benchmarks/iomarks.py``)."""

import asyncio
import time

from benchmarks.iomarks import WAIT_SECONDS, stamp
from bgtask import background

#: Arguments of every ``record`` call this process ran, in order.
RAN: list[int] = []


@background(name="bench.noop")
def noop(number: int) -> None:
    pass


@background(name="bench.record")
def record(number: int) -> None:
    RAN.append(number)


@background(name="bench.wait")
def wait(number: int) -> None:
    started = time.time()
    time.sleep(WAIT_SECONDS)
    stamp(number, started)


@background(name="bench.await")
async def await_(number: int) -> None:
    started = time.time()
    await asyncio.sleep(WAIT_SECONDS)
    stamp(number, started)
