"""The message-queue peers of the benchmark (Celery, Huey, RQ, Procrastinate), run from
``benchmarks/.peers-venv``; ``workloads`` drives them, one small module per peer defines its app.

Each peer's no-op task calls :func:`noop_body`, which stamps the wall-clock time of the first task
(argument 0) and of the last one (argument N - 1) into ``BENCH_MARK_DIR`` when that is set, so the
drain is timed from the first task to the last inside the worker: the worker's start-up (imports,
broker connection) is reported apart, and bgtask's figure is likewise timed inside its process.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA_DIR = HERE.parent / ".data"

#: Redis database of the benchmark: its own number, flushed alone (never FLUSHALL).
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
PROCRASTINATE_URL = os.environ.get(
    "BENCH_PROCRASTINATE_URL", "postgres://postgres@127.0.0.1:5432/bgtask_bench_procrastinate"
)
HUEY_PATH = os.environ.get("BENCH_HUEY_PATH", str(DATA_DIR / "huey.sqlite3"))

_MARK_DIR = os.environ.get("BENCH_MARK_DIR")
_MARKED = {0, int(os.environ.get("BENCH_MARK_LAST", "-1"))} if _MARK_DIR else set()
#: Mark every task (the enqueue-to-start workload, benchmarks/peerqueues/latency.py).
_MARK_ALL = bool(_MARK_DIR) and os.environ.get("BENCH_MARK_ALL") == "1"


def noop_body(number: int) -> None:
    if number in _MARKED or _MARK_ALL:
        stamp = repr(time.time())
        partial = Path(_MARK_DIR, f"{number}.partial")
        partial.write_text(stamp)
        partial.rename(partial.with_suffix(""))  # whole, or not there: the parent polls for it


def io_body(number: int) -> None:
    """The I/O section's task body: wait 50 ms, then stamp (``benchmarks/iomarks.py``)."""
    from benchmarks.iomarks import WAIT_SECONDS, stamp

    started = time.time()
    time.sleep(WAIT_SECONDS)
    stamp(number, started)
