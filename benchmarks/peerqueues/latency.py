"""Enqueue to start for Procrastinate, the same workload as ``benchmarks/latency.py`` (peers venv).

benchmarks/.peers-venv/bin/python -m benchmarks.peerqueues.latency --n 40 --interval 0.5

Its worker is started the way its users start one (``run_worker`` waiting for jobs, LISTEN/NOTIFY
on, its default polling), left idle, then one no-op is deferred every ``interval`` seconds (the
time taken just before the call: ``defer`` is one autocommitted statement) and its first line
notes when it started; then ``scheduled`` jobs are deferred 2 s ahead and their start is compared
with their scheduled time. JSON on the last line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks.latency import SCHEDULE_AHEAD, percentiles, wait_mark  # noqa: E402


def run_worker() -> None:
    from benchmarks.peerqueues.procrastinate_app import app

    app.run_worker(concurrency=1)  # waits for jobs until SIGTERM


def measure(n: int, interval: float, scheduled: int) -> dict:
    from benchmarks.peerqueues.procrastinate_app import app, noop
    from benchmarks.peerqueues.workloads import prepare

    prepare("procrastinate", 0)
    marks = Path(tempfile.mkdtemp(prefix="bench-latency-"))
    env = dict(os.environ, BENCH_MARK_DIR=str(marks), PYTHONPATH=str(ROOT))
    env["BENCH_MARK_ALL"] = "1"
    worker = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.peerqueues.latency", "--worker"],
        env=env,
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with app.open():
            noop.defer(number=-1)
            if wait_mark(marks, -1) is None:
                raise RuntimeError("the Procrastinate worker did not start the warm-up job")
            time.sleep(3.0)
            immediate = []
            for i in range(n):
                enqueued = time.time()
                noop.defer(number=i)
                started = wait_mark(marks, i)
                if started is not None:
                    immediate.append(started - enqueued)
                time.sleep(max(0.0, interval - (time.time() - enqueued)))
            lateness = []
            for i in range(scheduled):
                run_at = time.time() + SCHEDULE_AHEAD
                noop.configure(schedule_in={"seconds": SCHEDULE_AHEAD}).defer(number=10_000 + i)
                started = wait_mark(marks, 10_000 + i)
                if started is not None:
                    lateness.append(started - run_at)
                time.sleep(interval)
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.communicate()
        shutil.rmtree(marks, ignore_errors=True)
    return {
        "peer": "procrastinate",
        "interval": interval,
        "immediate": percentiles(immediate),
        "missing": n - len(immediate),
        "scheduled_lateness": percentiles(lateness),
        "scheduled_early": sum(1 for x in lateness if x < 0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=40)
    parser.add_argument("--interval", type=float, default=0.5)
    parser.add_argument("--scheduled", type=int, default=10)
    parser.add_argument("--worker", action="store_true", help="Run the worker (internal).")
    options = parser.parse_args()
    if options.worker:
        run_worker()
        return
    print(json.dumps(measure(options.n, options.interval, options.scheduled)), flush=True)


if __name__ == "__main__":
    main()
