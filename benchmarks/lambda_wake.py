"""Enqueue → invoke → start on Lambda's wake-on-enqueue (issue 18), and the throttle's trade.

python -m benchmarks.lambda_wake --n 20 --interval 0.5 --wake-interval 5   (BENCH_DB=...)

The worker runs under the real runtime client (``python -m awslambdaric handlers.worker.handler``)
against the fake Runtime API of the tests. A small stand-in for Lambda's Invoke API receives the
asynchronous invoke that ``BGTASK_WAKE_FUNCTION`` sends on each enqueue's commit and hands the
event to the fake Runtime API, as Lambda's own queue for asynchronous invocations does (what that
queue adds in AWS, typically tens of milliseconds, is not in these figures). One no-op is enqueued
every ``interval`` seconds; the time runs from just before the enqueue's commit to the task's
first line. With ``BGTASK_WAKE_INTERVAL`` above the interval most enqueues send no wake-up, so
their tasks wait for a later wake-up (or, in AWS, the schedule's next tick): the trade this
measures. The runtime is warm (one untimed invocation first), as a container kept by recent
traffic is. JSON on the last line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import django

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.latency import percentiles, wait_mark  # noqa: E402

FUNCTION = "bench-worker"
INVOCATION_SECONDS = 60.0  # the deadline each invocation gets, as the function's timeout


def invoke_api(runtime, invoked: list[float]) -> ThreadingHTTPServer:
    """Lambda's Invoke endpoint, enough for ``InvocationType=Event``: queue the event, 202."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            invoked.append(time.time())
            runtime.invoke(json.loads(body or b"{}"), INVOCATION_SECONDS)
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def measure(n: int, interval: float, wake_interval: float) -> dict:
    from django.db import transaction

    from benchmarks.benchapp.tasks import stamp
    from benchmarks.workloads import reset
    from bgtask.aws import wake
    from tests.handlers.fake_runtime_api import FakeRuntimeApi

    reset()
    marks = Path(tempfile.mkdtemp(prefix="bench-lambda-"))
    runtime = FakeRuntimeApi()
    invoked: list[float] = []
    server = invoke_api(runtime, invoked)
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    for name, value in {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        os.environ[name] = value
    env = dict(
        os.environ,
        BENCH_MARK_DIR=str(marks),
        PYTHONPATH=str(ROOT),
        DJANGO_SETTINGS_MODULE="benchmarks.settings",
        AWS_LAMBDA_RUNTIME_API=runtime.address,
        AWS_LAMBDA_FUNCTION_NAME=FUNCTION,
        AWS_EXECUTION_ENV="AWS_Lambda_python3.12",
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "awslambdaric", "handlers.worker.handler"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        from django.test import override_settings

        with override_settings(BGTASK_WAKE_FUNCTION=FUNCTION, BGTASK_WAKE_INTERVAL=wake_interval):
            wake.reset_throttle()
            stamp(-1)  # warm-up: the container starts and runs a task, untimed
            if wait_mark(marks, -1) is None:
                raise RuntimeError("the runtime client did not run the warm-up task")
            time.sleep(max(wake_interval, 1.0))  # the warm-up's wake-up is out of the interval
            started_at: dict[int, float] = {}
            enqueued_at: dict[int, float] = {}
            invokes_before = len(invoked)
            for i in range(n):
                with transaction.atomic():
                    stamp(i)
                    enqueued_at[i] = time.time()  # just before the commit (and the wake-up)
                deadline = time.monotonic() + interval
                while time.monotonic() < deadline:
                    for j in list(enqueued_at):
                        if j not in started_at and (marks / str(j)).exists():
                            started_at[j] = float((marks / str(j)).read_text())
                    time.sleep(0.002)
            # Tasks still waiting when the enqueues stop wait for the next wake-up; in AWS the
            # schedule's next tick (up to a minute). Here: one more enqueue after the interval.
            time.sleep(wake_interval)
            stamp(n)
            for j in range(n + 1):
                if j not in started_at:
                    mark = wait_mark(marks, j)
                    if mark is not None:
                        started_at[j] = mark
            invokes = len(invoked) - invokes_before
    finally:
        process.kill()
        process.wait()
        server.shutdown()
        runtime.close()
        shutil.rmtree(marks, ignore_errors=True)
    waits = [started_at[i] - enqueued_at[i] for i in range(n) if i in started_at]
    woken = [w for w in waits if w < interval]
    return {
        "n": n,
        "interval": interval,
        "wake_interval": wake_interval,
        "invokes": invokes,
        "all": percentiles(waits),
        "started_by_their_own_wakeup_or_within_the_interval": percentiles(woken),
        "missing": n - len(waits),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--interval", type=float, default=0.5)
    parser.add_argument("--wake-interval", type=float, default=5.0)
    options = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.settings")
    django.setup()
    print(json.dumps(measure(options.n, options.interval, options.wake_interval)), flush=True)


if __name__ == "__main__":
    main()
