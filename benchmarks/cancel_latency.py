"""How long a cancel of a running task takes to stop it (issue 19: within 5 s at the default
settings). Prints figures, asserts nothing.

    BENCH_DB=sqlite|postgres|mariadb .venv/bin/python -m benchmarks.cancel_latency [--rounds 5]

One ``manage.py process_tasks`` with its default settings (``BGTASK_CANCEL_CHECK_SECONDS`` 1 s,
concurrency 1) runs ``bench.busy`` (a task that works for 60 s in 10 ms steps); once its row is
running, ``bgtask.cancel()`` is called, and the time until the row reads ``cancelled`` is taken
(polled every 10 ms). JSON on the last line.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time

import django


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.settings")
    django.setup()
    from benchmarks.benchapp.tasks import busy
    from benchmarks.workloads import reset
    from bgtask import cancel
    from bgtask.models import Task

    reset()
    worker = subprocess.Popen(
        [sys.executable, "-m", "django", "process_tasks"],
        env=dict(os.environ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    stops = []
    try:
        for _ in range(options.rounds):
            task = busy(60)
            deadline = time.monotonic() + 60
            while Task.objects.get(pk=task.pk).status != Task.RUNNING:
                if time.monotonic() > deadline:
                    raise RuntimeError("the task did not start within 60 s")
                time.sleep(0.01)
            asked = time.monotonic()
            cancel(task)
            while Task.objects.get(pk=task.pk).status != Task.CANCELLED:
                if time.monotonic() - asked > 60:
                    raise RuntimeError("the task was not cancelled within 60 s")
                time.sleep(0.01)
            stops.append(time.monotonic() - asked)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(60)
    print(
        json.dumps(
            {
                "rounds": len(stops),
                "stop_seconds": [round(s, 3) for s in stops],
                "median_seconds": round(statistics.median(stops), 3),
                "max_seconds": round(max(stops), 3),
                "load": os.getloadavg(),
            }
        )
    )


if __name__ == "__main__":
    main()
