"""Enqueue to start (issue 18): how long a task waits for an idle worker that is already running.

python -m benchmarks.latency --n 40 --interval 0.5 [--scheduled 10] [--listen auto|off]
                                                           (BENCH_DB=sqlite|postgres|mariadb)

A ``process_tasks`` with its default settings (``benchmarks/latency_worker.py``, which counts its
statements) is started and left idle; then one no-op ``bench.stamp`` is enqueued every
``interval`` seconds, each in a transaction, the time taken just before its commit. The task's
first line writes the time it started. Then ``scheduled`` tasks are enqueued 2 s ahead, one every
``interval``, and their start is compared with their ``run_at``. Last, the worker is left alone
for ``IDLE_SECONDS`` and the statements it sent meanwhile give its idle query rate. JSON on the
last line. Nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import django

ROOT = Path(__file__).resolve().parents[1]
IDLE_SECONDS = 20.0
SCHEDULE_AHEAD = 2.0
START_CEILING = 60.0  # a task that has not started by then is reported as missing


def percentiles(samples: list[float]) -> dict:
    """p50, p95 and max of ``samples`` (seconds) in milliseconds."""
    if not samples:
        return {"n": 0}
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {
        "n": len(ordered),
        "p50_ms": statistics.median(ordered) * 1000,
        "p95_ms": p95 * 1000,
        "max_ms": ordered[-1] * 1000,
        "min_ms": ordered[0] * 1000,
    }


def wait_mark(marks: Path, number: int) -> float | None:
    path = marks / str(number)
    deadline = time.monotonic() + START_CEILING
    while not path.exists():
        if time.monotonic() > deadline:
            return None
        time.sleep(0.002)
    return float(path.read_text())


def read_count(path: Path) -> int:
    try:
        return int(path.read_text() or 0)
    except (FileNotFoundError, ValueError):
        return 0


def measure(n: int, interval: float, scheduled: int, listen: str) -> dict:
    from django.db import connection, transaction

    from benchmarks.benchapp.tasks import stamp
    from benchmarks.workloads import reset

    reset()
    marks = Path(tempfile.mkdtemp(prefix="bench-latency-"))
    counts = marks / "queries"
    env = dict(os.environ, BENCH_MARK_DIR=str(marks), PYTHONPATH=str(ROOT))
    if listen == "off":
        env["BENCH_LISTEN"] = "off"
    worker = subprocess.Popen(
        [sys.executable, str(ROOT / "benchmarks" / "latency_worker.py"), str(counts)],
        env=env,
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        stamp(-1)  # warm-up: the worker is up and has run a task
        if wait_mark(marks, -1) is None:
            raise RuntimeError("the worker did not start the warm-up task")
        time.sleep(3.0)  # idle now, past its first empty claims
        immediate = []
        for i in range(n):
            with transaction.atomic():
                stamp(i)
                enqueued = time.time()  # just before the commit
            started = wait_mark(marks, i)
            if started is not None:
                immediate.append(started - enqueued)
            time.sleep(max(0.0, interval - (time.time() - enqueued)))
        lateness = []
        for i in range(scheduled):
            task = stamp(10_000 + i, schedule=SCHEDULE_AHEAD)
            run_at = task.run_at.timestamp()
            started = wait_mark(marks, 10_000 + i)
            if started is not None:
                lateness.append(started - run_at)
            time.sleep(interval)
        time.sleep(2.0)
        before, since = read_count(counts), time.monotonic()
        time.sleep(IDLE_SECONDS)
        idle_qps = (read_count(counts) - before) / (time.monotonic() - since)
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            _, err = worker.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            worker.kill()
            _, err = worker.communicate()
        shutil.rmtree(marks, ignore_errors=True)
    if worker.returncode != 0:
        raise RuntimeError(f"worker exited {worker.returncode}: {err[-2000:]}")
    return {
        "vendor": connection.vendor,
        "listen": listen,
        "interval": interval,
        "immediate": percentiles(immediate),
        "missing": n - len(immediate),
        "scheduled_lateness": percentiles(lateness),
        "scheduled_early": sum(1 for x in lateness if x < 0),
        "idle_queries_per_second": idle_qps,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=40)
    parser.add_argument("--interval", type=float, default=0.5)
    parser.add_argument("--scheduled", type=int, default=10)
    parser.add_argument("--listen", choices=["auto", "off"], default="auto")
    options = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.settings")
    if options.listen == "off":
        os.environ["BENCH_LISTEN"] = "off"
    django.setup()
    figures = measure(options.n, options.interval, options.scheduled, options.listen)
    print(json.dumps(figures), flush=True)


if __name__ == "__main__":
    main()
